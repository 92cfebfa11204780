/**
 * The REST/SSE/WebSocket transport (Elysia). Thin: every route parses its
 * input, calls the `TaskService` and renders what it returns. Errors of every
 * kind are rendered once, in `onError`, as `{"error", "message"}`.
 */
import { Elysia } from "elysia";
import { WS_BEARER_PREFIX, WS_PATH } from "../auth/authenticator.ts";
import { AgentError, clip, fieldName, httpStatusOf, invalid, toAgentError } from "../errors.ts";
import type { Caller, LogRecord } from "../tasks/model.ts";
import { checkWaitTimeout, DEFAULT_WAIT_MS, type TaskService, type WatchRecord } from "../tasks/task-service.ts";
import type { Subscription } from "../logs/subscription.ts";
import { checkQueryKeys, parseCursor, parseListQuery, parseWatchFilter } from "./list-query.ts";
import { silentLogger, type Logger } from "../observability/logger.ts";
import { createOpenApi, routeDocs } from "./openapi.ts";
import { createRequestLog, requestIdOf } from "./request-log.ts";
import { checkDeclaredLength, readJsonBody } from "./read-body.ts";
import { requestParams, requestPath, routable } from "./request-path.ts";
import { sseResponse, type SseFrame } from "./sse.ts";

/** A decoded proto3-JSON submit body: see `HttpAppDeps.decodeProtoSubmit`. */
export interface ProtoSubmit {
  spec: unknown;
  inProtoTerms: (err: unknown) => never;
}

export interface HttpAppDeps {
  service: TaskService;
  /** Served over TLS (`https://` request URLs); default false. */
  tls?: boolean;
  /** Who is calling; throws `Unauthenticated`/`RateLimited`. Default: auth off. */
  authenticate?: (request: Request) => Caller;
  /**
   * Turns a proto3-JSON `SubmitTaskRequest` body into a REST-shaped spec with
   * the rethrow that names a spec error's field as the proto does (or a
   * promise of both), or returns undefined if the body is not one.
   */
  decodeProtoSubmit?: (body: unknown) => ProtoSubmit | Promise<ProtoSubmit> | undefined;
  info: () => unknown;
  metricsJson: () => unknown;
  /** Prometheus exposition: [content type, text]. */
  metricsText: () => Promise<[string, string]>;
  health: () => { live: boolean; ready: boolean; checks: Record<string, boolean> };
  /** Log hook for `Internal` errors: the correlation id (repeated in the 500 message), the cause and the request id. */
  onInternal?: (correlationId: string, err: unknown, requestId?: string) => void;
  /** Request logs (one line per request, with its X-Request-Id). Default: none. */
  logger?: Logger;
  /** HTTP metrics: one call per finished request with the route template. */
  onHttpRequest?: (route: string, method: string, status: number, seconds: number) => void;
  /** A streaming subscriber opened; the returned function is called when it closes. */
  onStreamOpen?: (transport: "sse" | "websocket") => () => void;
}

/**
 * The close code of a WebSocket refused at open (RFC 6455 §7.4): 1011 only for
 * a fault of the agent; 1013 "try again later" for a rate limit or a shutdown;
 * 1008 "policy violation" for the caller's own mistakes (token, role, query).
 */
function wsCloseCode(code: AgentError["code"]): number {
  if (code === "Internal") return 1011;
  if (code === "RateLimited" || code === "Unavailable") return 1013;
  return 1008;
}

/** A request whose URL the router would read another path from than its own (request-path.ts). */
function unroutable(url: string): AgentError {
  return invalid(
    `cannot route ${JSON.stringify(clip(requestPath(url)))}: the Host header is missing, malformed or shorter than 3 characters over HTTPS; send the name or address you connect to`,
  );
}


/** The WebSocket route's path, also with the trailing slash the router accepts for it. */
function isWsPath(path: string): boolean {
  return path === WS_PATH || path === `${WS_PATH}/`;
}

/**
 * A plain GET of the WebSocket route: 426 Upgrade Required (RFC 9110 §15.5.22, with the
 * `Upgrade` it needs) and the usual envelope, labelled `InvalidRequest`: a mistake of the request.
 */
function upgradeRequired(): Response {
  const message = `${WS_PATH} is a WebSocket: open it with "Upgrade: websocket" (a WebSocket client), or use GET /api/v1/events (SSE)`;
  return new Response(JSON.stringify({ error: "InvalidRequest", message }), {
    status: 426,
    headers: { "content-type": "application/json", upgrade: "websocket", connection: "Upgrade" },
  });
}

/** The query parameters each route takes; any other is a 400 (list-query.ts). */
const SUBMIT_QUERY = new Set(["wait", "timeoutMs"]);
const LOGS_QUERY = new Set(["after", "follow"]);
const WAIT_QUERY = new Set(["timeoutMs"]);
const EVENTS_QUERY = new Set(["after", "slot", "label"]);
/** The WebSocket's `token` is read by the authenticator (browsers cannot set its headers). */
const WS_QUERY = new Set(["after", "slot", "label", "token"]);

const EVENT_NAMES = { runStarted: "run-started", chunk: "chunk", runFinished: "run-finished", lagged: "lagged" } as const;

/** SSE frame of a log record (CONTRACT §3). */
export function logFrame(rec: LogRecord): SseFrame {
  return { id: rec.id, event: EVENT_NAMES[rec.event.type], data: JSON.stringify(rec.event) };
}

/** SSE frame of a watch record: `task`, `deleted` or `lagged`. */
export function watchFrame(rec: WatchRecord): SseFrame {
  const e = rec.event;
  switch (e.type) {
    case "task":
      return { id: rec.id, event: "task", data: JSON.stringify(e.task) };
    case "deleted":
      return { id: rec.id, event: "deleted", data: JSON.stringify({ id: e.id }) };
    case "lagged":
      return { id: rec.id, event: "lagged", data: JSON.stringify({ type: "lagged", skipped: e.skipped }) };
  }
}

/** WebSocket message of a watch record (CONTRACT §2 `/ws/tasks`). */
export function wsMessage(rec: WatchRecord): Record<string, unknown> {
  const e = rec.event;
  switch (e.type) {
    case "task":
      return { event: "task_update", id: rec.id, task: e.task };
    case "deleted":
      return { event: "task_deleted", id: rec.id, task: { metadata: { id: e.id } } };
    case "lagged":
      return { event: "lagged", id: rec.id, skipped: e.skipped };
  }
}

function errorBody(err: AgentError): Response {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (err.retryAfterMs !== undefined) headers["retry-after"] = String(Math.max(1, Math.ceil(err.retryAfterMs / 1000)));
  // RFC 6750 §3: a 401 names the scheme the client should use.
  if (err.code === "Unauthenticated") headers["www-authenticate"] = 'Bearer realm="tasklane"';
  return new Response(JSON.stringify({ error: err.code, message: err.message }), { status: httpStatusOf(err.code), headers });
}

/** The mutable response state of an Elysia handler (status and headers of the response it returns). */
interface ResponseSet {
  status?: number | string;
  headers: Record<string, string | number>;
}

/**
 * Answer `body` as JSON with `status`. Handlers return a plain value through
 * Elysia's `set` rather than a `Response`: Elysia would copy a `Response` to
 * add the request id header.
 */
function json<T>(set: ResponseSet, status: number, body: T): T {
  set.status = status;
  return body;
}

function waitMs(params: URLSearchParams): number {
  const raw = params.get("timeoutMs");
  // parseCursor reads an empty cursor as none; an empty timeout is refused like any bad number.
  if (raw === "") throw invalid('timeoutMs: must be a non-negative integer, got ""');
  const ms = parseCursor("timeoutMs", raw) ?? DEFAULT_WAIT_MS;
  checkWaitTimeout(ms); // also for a submit without `wait`: nothing is created
  return ms;
}

/**
 * A long poll (up to 10 minutes), or a cancel or delete waiting out a kill
 * grace (up to 10 minutes), sends nothing until it answers; Bun.serve would
 * close it after its idle timeout (30 s as Elysia configures it), so the idle
 * timeout is lifted for this request. In-process `app.handle` has no server.
 */
function holdOpen(server: { timeout(request: Request, seconds: number): void } | null, request: Request): void {
  server?.timeout(request, 0);
}

/**
 * Where an SSE stream resumes: after `?after=N` or the `Last-Event-ID` header,
 * the later of the two when both are given. A browser's `EventSource` opened
 * on `…?after=N` keeps that URL and adds the header when it reconnects: the
 * header is then the newer cursor, and resuming from N would repeat events.
 */
function resumeCursor(params: URLSearchParams, request: Request): { after: number | undefined; reconnect: boolean } {
  const query = parseCursor("after", params.get("after"));
  const header = parseCursor("Last-Event-ID", request.headers.get("last-event-id"));
  if (header === undefined) return { after: query, reconnect: false };
  return { after: query === undefined ? header : Math.max(query, header), reconnect: true };
}

function flag(params: URLSearchParams, name: string, def: boolean): boolean {
  const raw = params.get(name);
  if (raw === null) return def;
  if (raw === "true" || raw === "1") return true;
  if (raw === "false" || raw === "0") return false;
  throw invalid(`${name}: must be true or false, got ${JSON.stringify(raw)}`);
}

/** The `:id` of a task route. Elysia hands over `null` for a segment that is not valid percent-encoding (`/api/v1/tasks/%ZZ`). */
function taskId(params: { id: string | null }): string {
  if (typeof params.id !== "string") throw invalid("task id: not valid percent-encoding in the path");
  return params.id;
}

/** The caller authenticated in `onRequest`, kept on the request's `set` (reachable from every hook of the request). */
const CALLER = Symbol("tasklane.caller");
type WithCaller = { [CALLER]?: Caller };

/** Build the Elysia app (not listening). */
export function createHttpApp(deps: HttpAppDeps) {
  const { service } = deps;
  const authenticate = deps.authenticate ?? (() => ({}));
  const sockets = new Map<string, { sub: Subscription<WatchRecord>; drained: PromiseWithResolvers<void> | undefined; closed?: () => void }>();
  /** The caller `onRequest` authenticated (handlers destructure what they use: see request-log.ts). */
  const callerOf = (set: object, request: Request): Caller => (set as WithCaller)[CALLER] ?? authenticate(request);
  // Elysia's own router instead of Bun's native routes: the same requests per second here, and
  // no per-route handlers to build at listen (≈ 1 ms of start-up; bench/README.md, benchmark 10).
  // Elysia finds the path at the first "/" from index 11 (standardHostname) or 7 (not): 11 skips
  // the path of `http://web/api/v1/tasks` (a short Host such as a container name), 7 lands inside
  // `https://`. Plain HTTP searches from 7; HTTPS from 11, right for Hosts of 3 characters or more.
  const standardHostname = deps.tls === true;
  return new Elysia({ systemRouter: false, handler: { standardHostname } })
    .use(createRequestLog({ logger: deps.logger ?? silentLogger, onRequest: deps.onHttpRequest }))
    .use(createOpenApi())
    // Authenticated once per request, in onRequest: before routing and body parsing, so a
    // caller without a valid token costs no parse and gets 401/429 on every path, plugin routes included.
    .onRequest(({ request, set }) => {
      // Before anything reads the path: the router and the authenticator must see the same one.
      if (!routable(request.url, standardHostname)) throw unroutable(request.url);
      (set as WithCaller)[CALLER] = authenticate(request);
      checkDeclaredLength(request); // every route: 413 for a declared body over 4 MiB, read or not
    })
    .onError(({ code, error, request, set }) => {
      if (code === "NOT_FOUND") {
        // The WebSocket route matches upgrades only: a plain GET of it is a mistake of the request, not an unknown route.
        if (isWsPath(requestPath(request.url))) return upgradeRequired();
        return errorBody(new AgentError("NotFound", "no such route"));
      }
      if (code === "PARSE") {
        const cause = (error as { cause?: unknown }).cause;
        return errorBody(cause instanceof AgentError ? cause : invalid("malformed request body"));
      }
      if (code === "VALIDATION") return errorBody(invalid(error instanceof Error ? error.message : "invalid request"));
      return errorBody(toAgentError(error, (id, err) => deps.onInternal?.(id, err, requestIdOf(set))));
    })
    .post(
      "/api/v1/tasks",
      async ({ body, request, server, set }) => {
        const caller = callerOf(set, request);
        const params_ = requestParams(request.url);
        checkQueryKeys(params_, SUBMIT_QUERY);
        if (body === undefined || body === null || typeof body !== "object" || Array.isArray(body)) {
          throw invalid('request body must be a JSON object like {"spec": {...}}');
        }
        let decoded = deps.decodeProtoSubmit?.(body);
        if (decoded instanceof Promise) decoded = await decoded;
        // A proto3-JSON body's spec errors name its fields as the proto does (as over gRPC).
        const named = <T>(p: Promise<T>): Promise<T> => (decoded === undefined ? p : p.catch(decoded.inProtoTerms));
        let spec: unknown;
        if (decoded !== undefined) spec = decoded.spec;
        else {
          const { spec: s, ...extra } = body as Record<string, unknown>;
          const unknownKey = Object.keys(extra)[0];
          if (unknownKey !== undefined) throw invalid(`${fieldName(unknownKey)}: unknown field (the body is {"spec": {...}})`);
          if (s === undefined) throw invalid("spec: required");
          spec = s;
        }
        // timeoutMs is checked with or without wait: a bad value is refused, not ignored.
        const ms = waitMs(params_);
        if (flag(params_, "wait", false)) {
          holdOpen(server, request);
          const outcome = await named(service.run(spec, caller, ms, request.signal));
          return json(set, 200, outcome);
        }
        const r = await named(service.submit(spec, caller));
        return json(set, 201, { task_id: r.taskId, admission: r.admission });
      },
      // The only route with a body. A parser on this route alone: a global one would make Elysia
      // compile every route as async (an awaited handler and a promise per GET; bench/README.md).
      // The role is checked before the body is read: a viewer gets 403 whatever it posts.
      {
        detail: routeDocs.submitTask,
        parse: ({ request, set }) => {
          service.requireWrite(callerOf(set, request));
          return readJsonBody(request);
        },
      },
    )
    .get("/api/v1/tasks", ({ request, set }) => service.list(parseListQuery(requestParams(request.url)), callerOf(set, request)), {
      detail: routeDocs.listTasks,
    })
    // The most frequent read: the task's JSON text goes out as stored, without a parse and re-stringify.
    .get("/api/v1/tasks/:id", ({ params, request, set }) => {
      const task = service.getJson(taskId(params), callerOf(set, request));
      set.headers["content-type"] = "application/json";
      return `{"task":${task}}`;
    }, {
      detail: routeDocs.getTask,
    })
    .get("/api/v1/tasks/:id/runs", ({ params, request, set }) => ({ runs: service.runs(taskId(params), callerOf(set, request)) }), {
      detail: routeDocs.listTaskRuns,
    })
    .get("/api/v1/tasks/:id/logs", ({ params, request, set }) => {
      const caller = callerOf(set, request);
      const params_ = requestParams(request.url);
      checkQueryKeys(params_, LOGS_QUERY);
      const { after, reconnect } = resumeCursor(params_, request);
      const sub = service.logs(taskId(params), { after, follow: flag(params_, "follow", true) }, caller);
      // A client resuming with Last-Event-ID (an EventSource reconnects by itself once a stream ends)
      // that has every event of an ended log: 204 tells it there is nothing more, and EventSource stops.
      if (reconnect && sub.exhausted) {
        sub.close();
        return new Response(null, { status: 204 });
      }
      return sseResponse(sub, logFrame, { head: request.method === "HEAD", onClose: deps.onStreamOpen?.("sse") });
    }, { detail: routeDocs.streamTaskLogs })
    .delete("/api/v1/tasks/:id", async ({ params, request, server, set }) => {
      holdOpen(server, request); // answers once the task's processes are gone: up to its kill grace
      await service.delete(taskId(params), callerOf(set, request));
      return new Response(null, { status: 204 });
    }, { detail: routeDocs.deleteTask })
    .post("/api/v1/tasks/:id/cancel", async ({ params, request, server, set }) => {
      holdOpen(server, request); // answers once the task's processes are gone: up to its kill grace
      return { task: await service.cancel(taskId(params), callerOf(set, request)) };
    }, {
      detail: routeDocs.cancelTask,
    })
    .post("/api/v1/tasks/:id/start", async ({ params, request, set }) => ({ task: await service.start(taskId(params), callerOf(set, request)) }), {
      detail: routeDocs.startTask,
    })
    .post("/api/v1/tasks/:id/restart", async ({ params, request, set }) => ({ task: await service.restart(taskId(params), callerOf(set, request)) }), {
      detail: routeDocs.restartTask,
    })
    .get("/api/v1/tasks/:id/wait", async ({ params, request, server, set }) => {
      const caller = callerOf(set, request);
      const params_ = requestParams(request.url);
      checkQueryKeys(params_, WAIT_QUERY);
      const ms = waitMs(params_);
      holdOpen(server, request);
      return { task: await service.wait(taskId(params), ms, caller, request.signal) };
    }, { detail: routeDocs.waitTask })
    .get("/api/v1/events", ({ request, set }) => {
      const caller = callerOf(set, request);
      const params_ = requestParams(request.url);
      const filter = parseWatchFilter(params_, EVENTS_QUERY);
      const sub = service.watch({ after: resumeCursor(params_, request).after, ...filter }, caller);
      return sseResponse(sub, watchFrame, { head: request.method === "HEAD", onClose: deps.onStreamOpen?.("sse") });
    }, { detail: routeDocs.watchTasks })
    .ws(WS_PATH, {
      detail: routeDocs.watchTasksWs,
      upgrade({ request, set }) {
        // Select the first offered subprotocol that carries no token: `bearer.<token>` is never echoed.
        const offered = (request.headers.get("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim());
        const pick = offered.find((p) => p !== "" && !p.startsWith(WS_BEARER_PREFIX));
        if (pick !== undefined) set.headers["sec-websocket-protocol"] = pick;
        // With nothing else offered the server would have to echo the token back (Bun picks the first offer).
        else if (offered.some((p) => p.startsWith(WS_BEARER_PREFIX))) {
          throw invalid('Sec-WebSocket-Protocol: offer a subprotocol without the token (e.g. "tasklane") next to "bearer.<token>"; the server names the one it selects in its answer');
        }
      },
      open(ws) {
        const req = (ws.data as { request: Request }).request;
        const params = requestParams(req.url);
        let sub: Subscription<WatchRecord>;
        try {
          // ws.data is a copy of the upgrade request's context: its caller was authenticated in onRequest.
          const data = ws.data as { set?: WithCaller };
          const caller = data.set?.[CALLER] ?? authenticate(req);
          const filter = parseWatchFilter(params, WS_QUERY);
          sub = service.watch({ after: parseCursor("after", params.get("after")), ...filter }, caller);
        } catch (err) {
          const e = toAgentError(err, deps.onInternal);
          ws.send(JSON.stringify({ event: "error", error: e.code, message: e.message }));
          ws.close(wsCloseCode(e.code), e.code);
          return;
        }
        const conn = { sub, drained: undefined as PromiseWithResolvers<void> | undefined, closed: deps.onStreamOpen?.("websocket") };
        sockets.set(ws.id, conn);
        void (async () => {
          for await (const batch of sub) {
            for (const rec of batch) {
              const text = JSON.stringify(wsMessage(rec));
              for (;;) {
                // > 0: written. -1: queued behind earlier frames; 0: dropped, Bun's buffer being over its
                // limit. Either way wait for `drain` before anything more (a dropped message is sent
                // again), so a client that stops reading holds one message, and its cursor falls behind
                // the ring until it gets an exact `lagged`, never a silent gap.
                const sent = ws.raw.send(text);
                if (sent > 0) break;
                if (!sockets.has(ws.id)) return; // closed: no drain will come
                conn.drained = Promise.withResolvers<void>();
                await conn.drained.promise;
                if (!sockets.has(ws.id)) return;
                if (sent === -1) break;
              }
            }
          }
          // The watch ends only when the agent stops: 1001 "going away" (RFC 6455 §7.4.1), not a normal close.
          ws.close(1001, "agent shutting down");
        })().catch(() => ws.close());
      },
      drain(ws) {
        sockets.get(ws.id)?.drained?.resolve();
      },
      close(ws) {
        const conn = sockets.get(ws.id);
        sockets.delete(ws.id);
        conn?.sub.close();
        conn?.drained?.resolve();
        conn?.closed?.();
      },
    })
    .get("/api/v1/info", () => deps.info(), { detail: routeDocs.info })
    .get("/api/v1/metrics", () => deps.metricsJson(), { detail: routeDocs.metricsJson })
    .get("/metrics", async () => {
      const [type, text] = await deps.metricsText();
      return new Response(text, { headers: { "content-type": type } });
    }, { detail: routeDocs.metricsText })
    .get("/healthz", ({ set }) => {
      const h = deps.health();
      return json(set, h.live ? 200 : 503, { status: h.live ? "alive" : "dead" });
    }, { detail: routeDocs.healthz })
    .get("/readyz", ({ set }) => {
      const h = deps.health();
      return json(set, h.ready ? 200 : 503, { status: h.ready ? "ready" : "not ready", checks: h.checks });
    }, { detail: routeDocs.readyz });
}

/** The Elysia app type (for plugins and tests). */
export type HttpApp = ReturnType<typeof createHttpApp>;

