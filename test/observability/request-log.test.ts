/**
 * X-Request-Id on every response (success and every kind of error), request
 * log lines with method, route template, status and duration, and the 500
 * correlation id logged together with the request id.
 */
import { describe, expect, test } from "bun:test";
import { createHttpApp } from "../../src/http/http-app.ts";
import { pickRequestId } from "../../src/http/request-log.ts";
import type { TaskService } from "../../src/tasks/task-service.ts";
import { commandSpec, startAgent } from "../helpers/start-agent.ts";
import { submitOk, waitTerminal } from "../helpers/task-control.ts";
import { startSecureAgent } from "../security/secure-agent.ts";
import { collectLogger, type LogLine } from "./collect-logger.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe("X-Request-Id", () => {
  test("is on success and error responses, and each request is logged with it", async () => {
    const { logger, waitFor } = collectLogger();
    await using a = await startAgent({ logger });
    const { id } = await submitOk(a, commandSpec("true"));
    await waitTerminal(a, id);

    const cases: [string, string, unknown, number][] = [
      ["GET", `/api/v1/tasks/${id}`, undefined, 200],
      ["GET", "/api/v1/tasks/tsk_unknown", undefined, 404],
      ["GET", "/no/such/route", undefined, 404],
      ["POST", "/api/v1/tasks", "{not json", 400],
      ["POST", "/api/v1/tasks", { spec: { slot: "" } }, 400],
      ["DELETE", `/api/v1/tasks/${id}`, undefined, 204],
      ["GET", `/api/v1/tasks/${id}/logs`, undefined, 404],
      ["GET", "/api/v1/events?after=nope", undefined, 400],
      ["GET", "/metrics", undefined, 200],
      ["GET", "/openapi.json", undefined, 200],
      ["GET", "/readyz", undefined, 200],
    ];
    const seen: string[] = [];
    for (const [method, path, body, status] of cases) {
      const res = await a.request(method, path, body);
      await res.arrayBuffer();
      expect(`${method} ${path} ${res.status}`).toBe(`${method} ${path} ${status}`);
      const rid = res.headers.get("x-request-id");
      expect(rid ?? "").toMatch(UUID);
      seen.push(rid!);
    }
    expect(new Set(seen).size).toBe(seen.length);

    // A too-large body is refused before parsing, with the id too.
    const big = await a.request("POST", "/api/v1/tasks", `{"spec":"${"x".repeat(4 * 1024 * 1024 + 10)}"}`);
    expect(big.status).toBe(413);
    expect(big.headers.get("x-request-id") ?? "").toMatch(UUID);

    const byId = new Map<string, LogLine>();
    for (const rid of seen) byId.set(rid, await waitFor((l) => l.msg === "http request" && l.requestId === rid));
    const wait = byId.get(seen[0]!);
    // A successful read is logged at debug level, a failed one and every change at info.
    expect(wait).toMatchObject({ level: "debug", method: "GET", route: "/api/v1/tasks/:id", path: `/api/v1/tasks/${id}`, status: 200 });
    expect(typeof wait?.durationMs).toBe("number");
    expect(byId.get(seen[1]!)).toMatchObject({ level: "info", route: "/api/v1/tasks/:id", status: 404 });
    expect(byId.get(seen[2]!)).toMatchObject({ route: "unmatched", path: "/no/such/route", status: 404 });
    expect(byId.get(seen[3]!)).toMatchObject({ method: "POST", route: "/api/v1/tasks", status: 400 });
    expect(byId.get(seen[5]!)).toMatchObject({ level: "info", method: "DELETE", route: "/api/v1/tasks/:id", status: 204 });
    // Probes and scrapes are logged at debug level.
    expect(byId.get(seen[8]!)).toMatchObject({ level: "debug", route: "/metrics" });
  });

  test("requests refused before routing (auth) are logged and counted with their route template and status", async () => {
    const { logger, waitFor } = collectLogger();
    await using a = await startSecureAgent({ logger });
    const cases: [string, Record<string, string>, number, string][] = [
      ["/api/v1/tasks", {}, 401, "/api/v1/tasks"],
      ["/api/v1/tasks/tsk_x/runs", { authorization: "Bearer wrong" }, 401, "/api/v1/tasks/:id/runs"],
      ["/no/such/route", {}, 401, "unmatched"],
      ["/api/v1/tasks/tsk_x", a.bearer("alice"), 404, "/api/v1/tasks/:id"],
    ];
    for (const [path, headers, status, route] of cases) {
      const res = await a.request("GET", path, undefined, headers);
      await res.arrayBuffer();
      expect(res.status).toBe(status);
      const rid = res.headers.get("x-request-id");
      expect(rid ?? "").toMatch(UUID);
      expect(await waitFor((l) => l.msg === "http request" && l.requestId === rid)).toMatchObject({ route, status, path });
    }
    const text = await (await a.request("GET", "/metrics", undefined, a.bearer("root"))).text();
    expect(text).toContain('tasklane_http_requests_total{route="/api/v1/tasks",method="GET",status="401"} 1');
    expect(text).toContain('tasklane_http_requests_total{route="/api/v1/tasks/:id/runs",method="GET",status="401"} 1');
  });

  test("a sane incoming X-Request-Id is kept; anything else is replaced", async () => {
    await using a = await startAgent();
    const mine = await a.request("GET", "/healthz", undefined, { "x-request-id": "edge-proxy.1234:abc" });
    expect(mine.headers.get("x-request-id")).toBe("edge-proxy.1234:abc");
    const bad = await a.request("GET", "/healthz", undefined, { "x-request-id": "has spaces and \"quotes\"" });
    expect(bad.headers.get("x-request-id") ?? "").toMatch(UUID);
    expect(pickRequestId("x".repeat(129))).toMatch(UUID);
    expect(pickRequestId("")).toMatch(UUID);
    expect(pickRequestId(null)).toMatch(UUID);
    expect(pickRequestId("abc-123")).toBe("abc-123");
  });

  test("a 500 names a correlation id that is logged with the request id", async () => {
    const { logger, lines, waitFor } = collectLogger();
    const service = {
      getJson() {
        throw new Error("boom: a bug");
      },
    } as unknown as TaskService;
    const app = createHttpApp({
      service,
      info: () => ({}),
      metricsJson: () => ({}),
      metricsText: async () => ["text/plain", ""],
      health: () => ({ live: true, ready: true, checks: {} }),
      logger,
      onInternal: (correlationId, err, requestId) => logger.error("internal error", { correlationId, requestId, err }),
    });
    app.listen({ hostname: "127.0.0.1", port: 0 });
    let res: Response;
    let body: { error: string; message: string };
    try {
      res = await fetch(`http://127.0.0.1:${app.server!.port}/api/v1/tasks/tsk_x`);
      body = (await res.json()) as { error: string; message: string };
    } finally {
      await app.stop(true);
    }
    expect(res.status).toBe(500);
    expect(body.error).toBe("Internal");
    const rid = res.headers.get("x-request-id");
    expect(rid ?? "").toMatch(UUID);
    const correlationId = /correlation id ([0-9a-f-]{36})/.exec(body.message)?.[1];
    expect(correlationId ?? "").toMatch(UUID);
    const internal = lines.find((l) => l.msg === "internal error");
    expect(internal).toMatchObject({ level: "error", correlationId, requestId: rid });
    expect(String(internal?.err)).toContain("boom: a bug");
    // The request line is an error too, with the same request id.
    expect(await waitFor((l) => l.msg === "http request")).toMatchObject({ level: "error", requestId: rid, status: 500, route: "/api/v1/tasks/:id" });
  });
});
