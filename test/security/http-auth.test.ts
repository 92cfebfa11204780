/**
 * Every REST route (enumerated from the Elysia app, so a route added later is
 * covered without touching this file) answers 401 without a token or with a
 * wrong one, and 403 to a viewer that tries to change something. Only the
 * probes are public.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHttpApp } from "../../src/http/http-app.ts";
import type { TaskService } from "../../src/tasks/task-service.ts";
import { commandSpec } from "../helpers/start-agent.ts";
import { startSecureAgent, type SecureAgent } from "./secure-agent.ts";

/** Routes that answer without a token (liveness/readiness probes). */
const PUBLIC = new Set(["GET /healthz", "GET /readyz"]);

/** The routes of the real app (built with inert deps; only the route table is read). */
function appRoutes(): { method: string; path: string }[] {
  const app = createHttpApp({
    service: {} as TaskService,
    info: () => ({}),
    metricsJson: () => ({}),
    metricsText: async () => ["text/plain", ""],
    health: () => ({ live: true, ready: true, checks: {} }),
  });
  return app.routes.map((r) => ({ method: r.method, path: r.path }));
}

let a: SecureAgent;
let taskId: string;

beforeAll(async () => {
  a = await startSecureAgent();
  const r = await a.json("POST", "/api/v1/tasks", { spec: commandSpec("true") }, a.bearer("bob"));
  expect(r.status).toBe(201);
  taskId = r.body.task_id;
});
afterAll(() => a[Symbol.asyncDispose]());

/** A request for a route template: params filled with bob's task, a valid body for POST. */
function requestFor(method: string, path: string): { method: string; path: string; body?: unknown } {
  const concrete = path.replace(/:[A-Za-z]+/g, taskId);
  if (method === "WS") return { method: "GET", path: concrete };
  if (method === "POST" && concrete === "/api/v1/tasks") return { method, path: concrete, body: { spec: commandSpec("true") } };
  return { method, path: method === "GET" && concrete.endsWith("/wait") ? `${concrete}?timeoutMs=0` : concrete };
}

const routes = appRoutes();

describe("REST auth on every route", () => {
  test("the route table is what this suite expects to see (a new route shows up here)", () => {
    expect(routes.length).toBeGreaterThanOrEqual(18);
    for (const p of PUBLIC) expect(routes.map((r) => `${r.method} ${r.path}`)).toContain(p);
  });

  for (const { method, path } of routes) {
    const key = `${method} ${path}`;
    if (PUBLIC.has(key)) {
      test(`${key} is public`, async () => {
        const r = requestFor(method, path);
        const res = await a.request(r.method, r.path);
        expect(res.status).toBe(200);
      });
      continue;
    }
    test(`${key}: 401 without a token, with a wrong token and with a malformed header`, async () => {
      const r = requestFor(method, path);
      const variants: Record<string, string>[] = [{}, { authorization: "Bearer wrong-token" }, { authorization: `Basic ${btoa("alice:x")}` }, { authorization: "Bearer" }];
      for (const headers of variants) {
        const res = await a.json(r.method, r.path, r.body, headers);
        expect({ status: res.status, error: res.body?.error }).toEqual({ status: 401, error: "Unauthenticated" });
        expect(typeof res.body.message).toBe("string");
      }
    });
    if (method === "POST" || method === "DELETE" || method === "PUT" || method === "PATCH") {
      test(`${key}: 403 for a viewer`, async () => {
        const r = requestFor(method, path);
        const res = await a.json(r.method, r.path, r.body, a.bearer("vic"));
        expect(res).toEqual({
          status: 403,
          body: { error: "PermissionDenied", message: "principal vic (viewer) may not change tasks" },
        });
      });
    } else if (method === "GET") {
      test(`${key}: a viewer with a token gets past auth`, async () => {
        const r = requestFor(method, path);
        const res = await a.request(r.method, r.path, undefined, a.bearer("vic"));
        await res.body?.cancel();
        // vic owns nothing, so task routes look missing; the rest answer normally.
        expect([200, 404]).toContain(res.status);
      });
    }
  }

  test("an unknown route is 401 without a token (routes are not revealed) and 404 with one", async () => {
    expect((await a.json("GET", "/api/v1/nope")).status).toBe(401);
    expect(await a.json("GET", "/api/v1/nope", undefined, a.bearer("vic"))).toEqual({
      status: 404,
      body: { error: "NotFound", message: "no such route" },
    });
  });

  test("a 401 names the scheme (RFC 6750): WWW-Authenticate: Bearer", async () => {
    const res = await a.request("GET", "/api/v1/tasks");
    await res.body?.cancel();
    expect({ status: res.status, scheme: res.headers.get("www-authenticate") }).toEqual({ status: 401, scheme: 'Bearer realm="tasklane"' });
  });

  test("an unauthenticated body is never parsed: malformed JSON still gets 401", async () => {
    const res = await a.json("POST", "/api/v1/tasks", "{not json", {});
    expect(res.status).toBe(401);
  });

  test("a viewer's submit is refused with 403 before its body is read: malformed JSON, a wrong content type", async () => {
    const denied = { status: 403, error: "PermissionDenied" };
    const malformed = await a.json("POST", "/api/v1/tasks", "{not json", a.bearer("vic"));
    expect({ status: malformed.status, error: malformed.body.error }).toEqual(denied);
    const res = await fetch(`${a.url}/api/v1/tasks`, { method: "POST", headers: { ...a.bearer("vic"), "content-type": "text/plain" }, body: "x" });
    expect({ status: res.status, error: ((await res.json()) as { error: string }).error }).toEqual(denied);
    // A user's malformed body is still a 400.
    expect((await a.json("POST", "/api/v1/tasks", "{not json", a.bearer("bob"))).status).toBe(400);
  });

  test("/openapi.json, /metrics and /api/v1/info work with any principal's token", async () => {
    for (const path of ["/openapi.json", "/metrics", "/api/v1/metrics", "/api/v1/info"]) {
      const res = await a.request("GET", path, undefined, a.bearer("vic"));
      await res.body?.cancel();
      expect({ path, status: res.status }).toEqual({ path, status: 200 });
    }
  });

  test("info reports auth without naming principals or showing hashes", async () => {
    const { body } = await a.json("GET", "/api/v1/info", undefined, a.bearer("root"));
    expect(body.auth).toEqual({ enabled: true, mode: "on", principals: 4, tls: false, rateLimits: true });
    expect(body.capabilities).toEqual(expect.arrayContaining(["auth", "rate_limits"]));
    const text = JSON.stringify(body);
    for (const t of Object.values(a.tokens)) expect(text).not.toContain(t);
    expect(text).not.toContain("alice");
  });
});

describe("WebSocket auth", () => {
  /** Open /ws/tasks and report either the first message or how the handshake failed. */
  function open(query: string, protocols?: string[], headers?: Record<string, string>): Promise<{ opened: boolean; protocol?: string; first?: unknown; error?: string }> {
    return new Promise((resolve) => {
      const url = `${a.url.replace("http", "ws")}/ws/tasks${query}`;
      const ws = headers ? new WebSocket(url, { headers }) : new WebSocket(url, protocols);
      let opened = false;
      ws.onopen = () => {
        opened = true;
        resolve({ opened, protocol: ws.protocol });
        ws.close();
      };
      ws.onerror = (e) => resolve({ opened, error: (e as ErrorEvent).message });
    });
  }

  test("no token or a wrong one: the handshake is refused with 401", async () => {
    for (const r of [await open(""), await open("?token=wrong"), await open("", ["tasklane", "bearer.wrong"])]) {
      expect(r.opened).toBe(false);
      expect(r.error).toContain("401");
    }
  });

  test("header, ?token= and the bearer.<token> subprotocol all work; the token is not echoed back", async () => {
    expect((await open("", undefined, a.bearer("alice"))).opened).toBe(true);
    expect((await open(`?token=${a.tokens.alice}`)).opened).toBe(true);
    const viaProtocol = await open("", ["tasklane", `bearer.${a.tokens.alice}`]);
    expect(viaProtocol).toEqual({ opened: true, protocol: "tasklane" });
  });

  test("the bearer.<token> subprotocol alone is refused with 400: the answer would have to echo the token", async () => {
    const r = await open("", [`bearer.${a.tokens.alice}`]);
    expect(r.opened).toBe(false);
    expect(r.error).toContain("400");
    // The raw handshake: 400 with the envelope, no token anywhere in the answer.
    const res = await fetch(`${a.url}/ws/tasks`, {
      headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-key": btoa("0123456789abcdef"), "sec-websocket-version": "13", "sec-websocket-protocol": `bearer.${a.tokens.alice}` },
    });
    const text = await res.text();
    expect(res.status).toBe(400);
    expect(JSON.parse(text).error).toBe("InvalidRequest");
    expect(JSON.stringify([...res.headers]) + text).not.toContain(a.tokens.alice);
  });
});
