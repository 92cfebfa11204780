/**
 * Request ids, request logs and HTTP metrics as one Elysia plugin.
 *
 * Every request gets an id — the caller's `X-Request-Id` when it is sane
 * (1..128 of `[A-Za-z0-9._:/+=@-]`), else a fresh UUID — echoed in the
 * `X-Request-Id` response header of every response, errors included. When the
 * response is sent, one log line records method, route template, status,
 * duration and the id, and the HTTP metrics are updated with the route
 * *template* (`/api/v1/tasks/:id`), never the concrete path.
 */
import { Elysia } from "elysia";
import type { Logger } from "../observability/logger.ts";

/** Response (and accepted request) header carrying the request id. */
export const REQUEST_ID_HEADER = "x-request-id";

/** Route label of requests that matched no route. */
export const UNMATCHED_ROUTE = "unmatched";

const SANE_ID = /^[A-Za-z0-9._:/+=@-]{1,128}$/;

/** Routes polled by probes and scrapers: logged at debug level so they do not drown the rest. */
const QUIET_ROUTES: ReadonlySet<string> = new Set(["/healthz", "/readyz", "/metrics"]);

interface RequestState {
  id: string;
  start: number;
}

const states = new WeakMap<Request, RequestState>();

/** The id given to `request` by the plugin (undefined for a request it has not seen). */
export function requestIdOf(request: Request): string | undefined {
  return states.get(request)?.id;
}

/** Incoming id if it is one we can safely log and echo, else a new one. */
export function pickRequestId(incoming: string | null): string {
  return incoming !== null && SANE_ID.test(incoming) ? incoming : crypto.randomUUID();
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
  return new Elysia({ name: "tasklane-request-log" })
    .onRequest(({ request, set }) => {
      const id = pickRequestId(request.headers.get(REQUEST_ID_HEADER));
      states.set(request, { id, start: now() });
      set.headers[REQUEST_ID_HEADER] = id;
    })
    .onAfterResponse(({ request, set, route, responseValue }) => {
      const state = states.get(request);
      if (!state) return;
      states.delete(request);
      const seconds = Math.max(0, now() - state.start) / 1000;
      // No route matched: Elysia answered through onError (404) and never set a status.
      const matched = typeof route === "string" && route !== "";
      const status =
        responseValue instanceof Response ? responseValue.status : !matched ? 404 : typeof set.status === "number" ? set.status : 200;
      const label = matched ? route : UNMATCHED_ROUTE;
      opts.onRequest?.(label, request.method, status, seconds);
      const level = status === 500 ? "error" : status >= 500 ? "warn" : QUIET_ROUTES.has(label) ? "debug" : "info";
      if (!opts.logger.enabled(level)) return;
      opts.logger[level]("http request", {
        requestId: state.id,
        method: request.method,
        route: label,
        path: new URL(request.url).pathname.slice(0, 256),
        status,
        durationMs: Math.round(seconds * 1e6) / 1e3,
      });
    })
    .as("global");
}
