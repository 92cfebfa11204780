/**
 * Request ids, request logs and HTTP metrics as one Elysia plugin.
 *
 * Every request gets an id — the caller's `X-Request-Id` when it is sane
 * (1..128 of `[A-Za-z0-9._:/+=@-]`), else a fresh UUID — echoed in the
 * `X-Request-Id` response header of every response, errors included. When the
 * response is ready to be sent, one log line records method, route template, status,
 * duration and the id, and the HTTP metrics are updated with the route
 * *template* (`/api/v1/tasks/:id`), never the concrete path.
 */
import { Elysia, type AnyElysia, type InternalRoute } from "elysia";
import { AgentError, httpStatusOf } from "../errors.ts";
import type { Logger } from "../observability/logger.ts";
import { requestPath } from "./request-path.ts";

/** Response (and accepted request) header carrying the request id. */
export const REQUEST_ID_HEADER = "x-request-id";

/** Route label of requests that matched no route. */
export const UNMATCHED_ROUTE = "unmatched";

const SANE_ID = /^[A-Za-z0-9._:/+=@-]{1,128}$/;

/** Methods of successful requests logged at debug level: reads change nothing and clients poll them. */
const READS: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS"]);

/** Routes polled by probes and scrapers: logged at debug level so they do not drown the rest. */
const QUIET_ROUTES: ReadonlySet<string> = new Set(["/healthz", "/readyz", "/metrics"]);

interface RequestState {
  id: string;
  start: number;
  /** Logged and counted already. */
  done?: boolean;
  /** A routed request whose handler failed (its response comes from onError). */
  failed?: boolean;
}

/**
 * Where the plugin keeps its per-request state: on the request's `set` (the
 * response status and headers in Elysia's context), the one object every hook
 * of a request can reach — cheaper than a map keyed by the request.
 */
const STATE = Symbol("tasklane.requestLog");

type WithState = { [STATE]?: RequestState };

/** The id the plugin gave the request whose response headers are `set.headers` (undefined before the plugin ran). */
export function requestIdOf(set: { headers: Record<string, unknown> }): string | undefined {
  const id = set.headers[REQUEST_ID_HEADER];
  return typeof id === "string" ? id : undefined;
}

/** Incoming id if it is one we can safely log and echo, else a new one. */
export function pickRequestId(incoming: string | null): string {
  return incoming !== null && SANE_ID.test(incoming) ? incoming : crypto.randomUUID();
}

/**
 * The status the app's `onError` renders for an error that never reached a
 * route (thrown in `onRequest`, e.g. by authentication, or no route matched):
 * an `AgentError` maps through `httpStatusOf`, Elysia's NOT_FOUND is 404,
 * PARSE/VALIDATION 400 (or their `AgentError` cause), anything else 500.
 */
export function statusOfError(code: unknown, error: unknown): number {
  if (error instanceof AgentError) return httpStatusOf(error.code);
  if (code === "NOT_FOUND") return 404;
  if (code === "PARSE" || code === "VALIDATION") {
    const cause = (error as { cause?: unknown } | null)?.cause;
    return cause instanceof AgentError ? httpStatusOf(cause.code) : 400;
  }
  return 500;
}

/**
 * Route templates of an app, matched against a path when Elysia could not tell the route (error before routing).
 * With `method` "WS", only WebSocket routes match, whatever the request's method.
 */
function createRouteMatcher(app: AnyElysia) {
  let table: { method: string; re: RegExp; path: string; ws: boolean }[] = [];
  let size = -1;
  return (method: string, pathname: string): string | undefined => {
    const routes = (app as unknown as { getGlobalRoutes(): InternalRoute[] }).getGlobalRoutes();
    if (routes.length !== size) {
      size = routes.length;
      table = routes.map((r) => ({
        method: r.method === "WS" ? "GET" : r.method,
        path: r.path,
        ws: r.method === "WS",
        // The router takes a path with or without one trailing slash alike.
        re: new RegExp(`^${r.path.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/:[^/]+/g, "[^/]+")}/?$`),
      }));
    }
    const wsOnly = method === "WS";
    return table.find((r) => (wsOnly ? r.ws : r.method === method || r.method === "ALL") && r.re.test(pathname))?.path;
  };
}

export interface RequestLogOptions {
  logger: Logger;
  /** Called once per finished request (HTTP metrics). */
  onRequest?: (route: string, method: string, status: number, seconds: number) => void;
  /** Monotonic milliseconds (default `performance.now`). */
  now?: () => number;
}

/** Build the plugin; `.use()` it before the routes so its hooks cover all of them. */
export function createRequestLog(opts: RequestLogOptions) {
  const now = opts.now ?? (() => performance.now());
  const plugin = new Elysia({ name: "tasklane-request-log" });
  const routeOf = createRouteMatcher(plugin);
  /** Log and count a request once, when its response is known (before it is sent: the duration is to the response head). */
  function finish(set: object, request: Request, template: string | undefined, status: number): void {
    const state = (set as WithState)[STATE];
    if (!state || state.done) return;
    state.done = true;
    const seconds = Math.max(0, now() - state.start) / 1000;
    const label = template ?? UNMATCHED_ROUTE;
    opts.onRequest?.(label, request.method, status, seconds);
    const level =
      status === 500 ? "error" : status >= 500 ? "warn" : QUIET_ROUTES.has(label) || (status < 400 && READS.has(request.method)) ? "debug" : "info";
    if (!opts.logger.enabled(level)) return;
    opts.logger[level]("http request", {
      requestId: state.id,
      method: request.method,
      route: label,
      path: requestPath(request.url).slice(0, 256),
      status,
      durationMs: Math.round(seconds * 1e6) / 1e3,
    });
  }
  return plugin
    // Hooks destructure their context: Elysia infers from the parameter list what a request
    // needs (a hook taking the whole context makes it parse cookies, query and more for every request).
    .onRequest(({ request, set }) => {
      const id = pickRequestId(request.headers.get(REQUEST_ID_HEADER));
      (set as WithState)[STATE] = { id, start: now() };
      set.headers[REQUEST_ID_HEADER] = id;
    })
    .mapResponse(({ request, set, responseValue, route }) => {
      // The final response of a routed request (of its handler, or of onError for an error raised inside the route).
      const state = (set as WithState)[STATE];
      // After an error Elysia maps twice: first the failed handler's (absent) value, then onError's Response.
      if (state?.failed && !(responseValue instanceof Response)) return;
      // A WebSocket handshake the route accepted answers 101 on the wire (its handler returns no Response).
      const upgraded = !(responseValue instanceof Response) && request.headers.get("upgrade")?.toLowerCase() === "websocket";
      const status = responseValue instanceof Response ? responseValue.status : upgraded ? 101 : typeof set.status === "number" ? set.status : 200;
      finish(set, request, typeof route === "string" && route !== "" ? route : undefined, status);
    })
    .onError(({ request, route, code, error, set }: { request: Request; route?: unknown; code: unknown; error: unknown; set: object }) => {
      // Errors before routing (authentication in onRequest) and unmatched paths never reach mapResponse.
      if (typeof route === "string" && route !== "") {
        // Routed: mapResponse sees the error as onError renders it.
        const state = (set as WithState)[STATE];
        if (state) state.failed = true;
        return;
      }
      if (code === "NOT_FOUND") {
        // A WebSocket route matches upgrades only; the app answers any other request of its path 426 (http-app.ts).
        const ws = routeOf("WS", requestPath(request.url));
        finish(set, request, ws, ws === undefined ? 404 : 426);
        return;
      }
      finish(set, request, routeOf(request.method, requestPath(request.url)), statusOfError(code, error));
    })
    .as("global");
}
