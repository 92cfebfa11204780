/**
 * Routing and authentication read the same path (src/http/request-path.ts):
 * a request whose URL the router would read another path from — no Host
 * (Bun then hands over the bare target), an HTTPS Host under 3 characters —
 * is a 400, never routed by a "/" inside its query or path, and never a 500.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { requestPath, requestQuery, routable } from "../../src/http/request-path.ts";
import { rawExchange } from "../helpers/raw-http.ts";
import { startAgent, type TestAgent } from "../helpers/start-agent.ts";
import { startSecureAgent, type SecureAgent } from "../security/secure-agent.ts";

describe("requestPath, requestQuery, routable", () => {
  const cases: [url: string, path: string, query: string][] = [
    ["http://127.0.0.1:8080/api/v1/tasks?limit=1", "/api/v1/tasks", "limit=1"],
    ["http://127.0.0.1:8080/healthz", "/healthz", ""],
    ["https://web/api/v1/tasks/x/logs?after=3&follow=false", "/api/v1/tasks/x/logs", "after=3&follow=false"],
    ["https://a/healthz?x=/api/v1/metrics", "/healthz", "x=/api/v1/metrics"],
    ["/api/v1/tasks?status=running", "/api/v1/tasks", "status=running"],
    ["/healthz?u=http://x/y", "/healthz", "u=http://x/y"],
    ["http://h", "/", ""],
  ];
  for (const [url, path, query] of cases) {
    test(url, () => {
      expect({ path: requestPath(url), query: requestQuery(url) }).toEqual({ path, query });
    });
  }

  test("routable: Elysia's own search finds the real path", () => {
    expect(routable("http://127.0.0.1:8080/api/v1/tasks", false)).toBe(true);
    expect(routable("http://x/api/v1/tasks", false)).toBe(true);
    expect(routable("https://web/api/v1/tasks", true)).toBe(true);
    expect(routable("https://localhost:8443/api/v1/tasks?x=/y", true)).toBe(true);
    // A bare target: only short paths happen to route right.
    expect(routable("/healthz", false)).toBe(true);
    expect(routable("/api/v1/tasks", false)).toBe(false);
    // HTTPS with a Host of 1–2 characters: the search starts past the path's own "/".
    expect(routable("https://a/healthz?x=/api/v1/metrics", true)).toBe(false);
    expect(routable("https://ab/api/v1/tasks", true)).toBe(false);
  });
});

const http10 = (target: string, headers = "") => new TextEncoder().encode(`GET ${target} HTTP/1.0\r\n${headers}\r\n`);
const statusOf = (head: string) => Number(head.split(" ")[1]);

describe("requests without a Host header", () => {
  let a: TestAgent;
  let s: SecureAgent;
  beforeAll(async () => {
    [a, s] = await Promise.all([startAgent(), startSecureAgent()]);
  });
  afterAll(async () => {
    await Promise.all([a?.[Symbol.asyncDispose](), s?.[Symbol.asyncDispose]()]);
  });

  test("HTTP/1.0 probes without Host (a load balancer's health check) answer, with auth off and on", async () => {
    for (const agent of [a, s]) {
      for (const probe of ["/healthz", "/readyz"]) {
        const r = await rawExchange(agent.agent.httpPort, [http10(probe)]);
        expect({ probe, status: statusOf(r.head) }).toEqual({ probe, status: 200 });
      }
    }
  });

  test("any other route without Host is a 400 naming the cause: not routed elsewhere, not a 500", async () => {
    for (const [agent, headers] of [[a, ""], [s, `Authorization: Bearer ${s.tokens.bob}\r\n`]] as const) {
      const r = await rawExchange(agent.agent.httpPort, [http10("/api/v1/tasks", headers)]);
      expect({ status: statusOf(r.head), body: JSON.parse(r.body) }).toEqual({
        status: 400,
        body: {
          error: "InvalidRequest",
          message: 'cannot route "/api/v1/tasks": the Host header is missing, malformed or shorter than 3 characters over HTTPS; send the name or address you connect to',
        },
      });
    }
    // An empty Host over HTTP/1.1, and one Bun does not accept as a name: the same.
    for (const host of ["", "a/b"]) {
      const raw = new TextEncoder().encode(`GET /api/v1/tasks HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      expect({ host, status: statusOf((await rawExchange(s.agent.httpPort, [raw])).head) }).toEqual({ host, status: 400 });
    }
  });
});

describe("Host headers", () => {
  let s: SecureAgent;
  beforeAll(async () => {
    s = await startSecureAgent();
  });
  afterAll(async () => {
    await s?.[Symbol.asyncDispose]();
  });

  test("with auth on, a short Host (a container name, `x:1`) routes like any other", async () => {
    for (const host of ["web", "x:1", "a.b", "n1"]) {
      const res = await fetch(`${s.url}/healthz`, { headers: { host } });
      expect({ host, status: res.status, body: await res.json() }).toEqual({ host, status: 200, body: { status: "alive" } });
    }
    const list = await fetch(`${s.url}/api/v1/tasks?limit=1`, { headers: { host: "api", ...s.bearer("bob") } });
    expect(list.status).toBe(200);
  });
});

