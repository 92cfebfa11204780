/**
 * GET /openapi.json: a valid OpenAPI 3.1 document that covers every
 * registered route (read from the Elysia app itself) and every route of
 * CONTRACT §2, with the error envelope on error responses.
 */
import { describe, expect, test } from "bun:test";
import { Validator } from "@seriousme/openapi-schema-validator";
import { Value } from "@sinclair/typebox/value";
import { createHttpApp } from "../../src/http/http-app.ts";
import { InfoSchema, openApiPath } from "../../src/http/openapi.ts";
import { TaskRunSchema, TaskSchema } from "../../src/tasks/model.ts";
import type { TaskService } from "../../src/tasks/task-service.ts";
import { commandSpec, startAgent } from "../helpers/start-agent.ts";
import { rawExchange } from "../helpers/raw-http.ts";
import { startHttpControlPlane } from "../fleet/fake-control-plane.ts";
import { submitOk, waitTerminal } from "../helpers/task-control.ts";

type Json = Record<string, any>;

/** CONTRACT §2, as "METHOD path" with OpenAPI templating. */
const CONTRACT_ROUTES = [
  "POST /api/v1/tasks",
  "GET /api/v1/tasks",
  "GET /api/v1/tasks/{id}",
  "GET /api/v1/tasks/{id}/runs",
  "GET /api/v1/tasks/{id}/logs",
  "DELETE /api/v1/tasks/{id}",
  "POST /api/v1/tasks/{id}/cancel",
  "POST /api/v1/tasks/{id}/start",
  "POST /api/v1/tasks/{id}/restart",
  "GET /api/v1/tasks/{id}/wait",
  "GET /api/v1/events",
  "GET /ws/tasks",
  "GET /api/v1/info",
  "GET /api/v1/metrics",
  "GET /metrics",
  "GET /healthz",
  "GET /readyz",
  "GET /openapi.json",
];

const HTTP_METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

function operations(doc: Json): string[] {
  const out: string[] = [];
  for (const [path, item] of Object.entries(doc.paths as Json)) for (const m of Object.keys(item)) if (HTTP_METHODS.includes(m)) out.push(`${m.toUpperCase()} ${path}`);
  return out.sort();
}

/** Every `$ref` in the document, with the JSON pointer it names. */
function refs(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) for (const x of node) refs(x, out);
  else if (node && typeof node === "object") {
    for (const [k, v] of Object.entries(node)) {
      if (k === "$ref" && typeof v === "string") out.push(v);
      else refs(v, out);
    }
  }
  return out;
}

function resolvePointer(doc: Json, ref: string): unknown {
  if (!ref.startsWith("#/")) return undefined;
  let node: unknown = doc;
  for (const part of ref.slice(2).split("/")) node = (node as Json | undefined)?.[part.replace(/~1/g, "/").replace(/~0/g, "~")];
  return node;
}

describe("GET /openapi.json", () => {
  test("is a valid OpenAPI 3.1 document covering every route", async () => {
    await using a = await startAgent();
    const res = await a.request("GET", "/openapi.json");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toStartWith("application/json");
    const doc = (await res.json()) as Json;
    expect(doc.openapi).toStartWith("3.1.");

    const result = await new Validator().validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);

    // Every $ref resolves inside the document.
    const dangling = [...new Set(refs(doc))].filter((r) => resolvePointer(doc, r) === undefined);
    expect(dangling).toEqual([]);

    // The contract's routes, exactly.
    expect(operations(doc)).toEqual([...CONTRACT_ROUTES].sort());

    // Every operation is described (it came from a route's `detail`), with a success response.
    for (const [path, item] of Object.entries(doc.paths as Json)) {
      for (const [method, o] of Object.entries(item as Json)) {
        const where = `${method.toUpperCase()} ${path}`;
        expect(typeof o.operationId, where).toBe("string");
        expect(typeof o.summary, where).toBe("string");
        expect(Object.keys(o.responses ?? {}).some((s) => /^(2\d\d|101)$/.test(s)), where).toBe(true);
      }
    }
    const ids = Object.values(doc.paths as Json).flatMap((item: Json) => Object.values(item).map((o: Json) => o.operationId));
    expect(new Set(ids).size).toBe(ids.length);

    // Every route registered on the Elysia app is in the document (WebSocket routes as GET upgrades).
    const app = createHttpApp({
      service: {} as TaskService,
      info: () => ({}),
      metricsJson: () => ({}),
      metricsText: async () => ["text/plain", ""],
      health: () => ({ live: true, ready: true, checks: {} }),
    });
    expect(app.routes.length).toBeGreaterThanOrEqual(CONTRACT_ROUTES.length);
    for (const route of app.routes) {
      const method = route.method === "WS" ? "get" : route.method.toLowerCase();
      const path = openApiPath(route.path);
      expect(path).not.toContain(":");
      expect(doc.paths[path]?.[method], `${route.method} ${route.path}`).toBeDefined();
    }
  });

  test("describes parameters, bodies and the error envelope", async () => {
    await using a = await startAgent();
    const doc = (await (await a.request("GET", "/openapi.json")).json()) as Json;
    const op = (method: string, path: string): Json => doc.paths[path][method];
    const params = (o: Json) => (o.parameters as Json[]).map((p) => `${p.in}:${p.name}`);

    expect(params(op("get", "/api/v1/tasks"))).toEqual([
      "query:slot",
      "query:status",
      "query:label",
      "query:createdAfter",
      "query:createdBefore",
      "query:owner",
      "query:order",
      "query:limit",
      "query:offset",
    ]);
    expect(params(op("get", "/api/v1/tasks/{id}/wait"))).toEqual(["path:id", "query:timeoutMs"]);
    expect(params(op("get", "/api/v1/tasks/{id}/logs"))).toEqual(["path:id", "query:after", "query:follow", "header:Last-Event-ID"]);
    expect(op("post", "/api/v1/tasks").requestBody.content["application/json"].schema).toEqual({ $ref: "#/components/schemas/SubmitRequest" });
    expect(Object.keys(op("post", "/api/v1/tasks").responses).sort()).toEqual(["200", "201", "400", "401", "403", "413", "429", "500", "503"]);
    expect(Object.keys(op("get", "/api/v1/tasks/{id}/logs").responses["200"].content)).toEqual(["text/event-stream"]);
    expect(op("get", "/ws/tasks").responses["101"]).toBeDefined();
    expect(params(op("get", "/ws/tasks"))).toEqual(["query:after", "query:slot", "query:label", "query:token", "header:Upgrade"]);
    // Every route, the public probes included, can answer 400 (an unroutable Host), 413 (a declared body over 4 MiB) and 500.
    for (const [path, item] of Object.entries(doc.paths as Json)) {
      for (const [method, o] of Object.entries(item as Json)) {
        expect(Object.keys(o.responses).filter((st) => ["400", "413", "500"].includes(st)).sort(), `${method.toUpperCase()} ${path}`).toEqual(["400", "413", "500"]);
      }
    }

    // Error responses carry the {error, message} envelope with every label.
    const errorSchema = doc.components.schemas.Error;
    expect(errorSchema.required).toEqual(["error", "message"]);
    expect(errorSchema.properties.error.anyOf.map((x: Json) => x.const).sort()).toEqual(
      ["InvalidRequest", "Unauthenticated", "PermissionDenied", "TaskNotFound", "NotFound", "PayloadTooLarge", "RateLimited", "Unavailable", "Internal"].sort(),
    );
    for (const status of ["400", "401", "403", "404", "413", "426", "429", "500", "503"]) {
      const used = Object.values(doc.paths as Json).some((item: Json) => Object.values(item).some((o: Json) => o.responses?.[status]?.$ref));
      expect(used, `status ${status} documented`).toBe(true);
    }
    for (const r of Object.values(doc.components.responses as Json)) {
      expect(r.content["application/json"].schema).toEqual({ $ref: "#/components/schemas/Error" });
      expect(r.headers["X-Request-Id"]).toBeDefined();
    }
  });

  test("every query parameter a route takes and every status it answered here are documented", async () => {
    await using a = await startAgent();
    const doc = (await (await a.request("GET", "/openapi.json")).json()) as Json;
    const port = a.agent.httpPort;
    const ops = Object.entries(doc.paths as Json).flatMap(([path, item]) => Object.entries(item as Json).map(([method, o]) => ({ method: method.toUpperCase(), path, o: o as Json })));
    const documentedQuery = (o: Json) => ((o.parameters ?? []) as Json[]).filter((p) => p.in === "query").map((p) => p.name as string).sort();
    const answered = new Map<string, Set<string>>();
    const saw = (method: string, path: string, status: number) => {
      const key = `${method} ${path}`;
      if (!answered.has(key)) answered.set(key, new Set());
      answered.get(key)!.add(String(status));
    };
    /** The allowed keys named by a 400 for the unknown parameter `zzz`; none when the route ignores parameters. */
    const allowedBy = (message: string | undefined) => /^unknown query parameter "zzz"; allowed: (.*)$/.exec(message ?? "")?.[1]!.split(", ").sort() ?? [];
    const unknownId = "tsk_01JR0000000000000000000000";
    const rawStatus = async (request: string) => Number((await rawExchange(port, [Buffer.from(request)])).head.split(" ")[1]);

    // Query parameters: every route that takes some answers an unknown one with a 400 naming them.
    for (const { method, path, o } of ops) {
      const target = `${path.replace("{id}", unknownId)}?zzz=1`;
      if (path === "/ws/tasks") {
        // Checked once the socket is open: the error message names them.
        const ws = new WebSocket(`ws://127.0.0.1:${port}${target}`);
        const message = await new Promise<Json>((resolve, reject) => {
          ws.onmessage = (e) => resolve(JSON.parse(String(e.data)));
          ws.onclose = () => reject(new Error("closed without a message"));
        });
        ws.close();
        expect({ route: `${method} ${path}`, query: documentedQuery(o) }).toEqual({ route: `${method} ${path}`, query: allowedBy(message.message) });
        saw(method, path, 101);
        continue;
      }
      const res = await a.request(method, target);
      const body = await res.text();
      const message = res.status === 400 ? (JSON.parse(body) as Json).message : undefined;
      expect({ route: `${method} ${path}`, query: documentedQuery(o) }).toEqual({ route: `${method} ${path}`, query: allowedBy(message) });
      saw(method, path, res.status);
    }

    // 413 on every route: a declared body over 4 MiB is refused before anything else reads it.
    for (const { method, path } of ops) {
      const status = await rawStatus(`${method} ${path.replace("{id}", unknownId)} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000000\r\nConnection: close\r\n\r\n`);
      expect(`${method} ${path}: ${status}`).toBe(`${method} ${path}: 413`);
      saw(method, path, status);
    }

    // 400 for a restart of a task that is not terminal.
    const { id } = await submitOk(a, commandSpec("sleep", ["30"]));
    const restart = await a.json("POST", `/api/v1/tasks/${id}/restart`);
    expect(restart.body.error).toBe("InvalidRequest");
    saw("POST", "/api/v1/tasks/{id}/restart", restart.status);
    await a.request("POST", `/api/v1/tasks/${id}/cancel`);

    // The WebSocket route: a handshake offering only bearer.<token>, and a GET that is no upgrade.
    const upgrade = "Upgrade: websocket\r\nConnection: Upgrade, close\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    saw("GET", "/ws/tasks", await rawStatus(`GET /ws/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\n${upgrade}Sec-WebSocket-Protocol: bearer.abc\r\n\r\n`));
    const plain = await a.request("GET", "/ws/tasks");
    expect(((await plain.json()) as Json).error).toBe("InvalidRequest");
    saw("GET", "/ws/tasks", plain.status);

    const undocumented = [...answered].flatMap(([route, statuses]) => {
      const [method, path] = route.split(" ") as [string, string];
      const documented = Object.keys(doc.paths[path][method.toLowerCase()].responses);
      return [...statuses].filter((st) => !documented.includes(st)).map((st) => `${route} ${st}`);
    });
    expect(undocumented).toEqual([]);
    expect(answered.get("GET /ws/tasks")?.has("400")).toBe(true); // the bearer-only handshake
  });

  test("the documented task shapes match what the agent answers", async () => {
    await using a = await startAgent();
    const { id } = await submitOk(a, commandSpec("echo", ["hi"]));
    const task = await waitTerminal(a, id);
    const runs = (await a.json("GET", `/api/v1/tasks/${id}/runs`)).body.runs;
    expect([...Value.Errors(TaskSchema, task)].map((e) => `${e.path}: ${e.message}`)).toEqual([]);
    for (const run of runs) expect([...Value.Errors(TaskRunSchema, run)].map((e) => `${e.path}: ${e.message}`)).toEqual([]);
  });

  test("the documented Info shape matches /api/v1/info, with its resource limits and its control-plane link", async () => {
    await using cp = await startHttpControlPlane();
    await using a = await startAgent({ args: ["--control-plane", cp.url] });
    await cp.request(1);
    const info = (await a.json<Record<string, unknown>>("GET", "/api/v1/info")).body;
    expect(Object.keys(info)).toEqual(expect.arrayContaining(["resourceLimits", "controlPlane"]));
    expect([...Value.Errors(InfoSchema, info)].map((e) => `${e.path}: ${e.message}`)).toEqual([]);
    // Both are documented, not only let through by additionalProperties.
    const documented = (await a.json<Json>("GET", "/openapi.json")).body.components.schemas.Info.properties;
    expect(documented).toHaveProperty("resourceLimits");
    expect(documented).toHaveProperty("controlPlane.properties.state");
  });

  test("needs no network: no UI and no external URLs", async () => {
    await using a = await startAgent();
    const text = await (await a.request("GET", "/openapi.json")).text();
    expect(text).not.toMatch(/https?:\/\//);
    for (const ui of ["/openapi", "/swagger", "/docs"]) expect((await a.request("GET", ui)).status).toBe(404);
  });
});
