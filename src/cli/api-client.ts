/**
 * The REST client of the CLI (CONTRACT §2–§3): one method per route, JSON in
 * and out, SSE streams as async iterables. Every failure is a `CliError`:
 * `api` for an error answer (with the API's `message`), `unreachable` when the
 * agent cannot be reached, does not answer in time, drops the connection, or
 * what answers is not a tasklane agent (the message names the URL). Answers
 * are checked for the shape the CLI reads (`wire-shapes.ts`). Aborting
 * `signal` rejects with the signal's reason, untouched, so callers can tell an
 * interrupt from a failure.
 *
 * Time limits: an ordinary request must be answered within
 * `requestTimeoutMs` (default 30 s); a stream must start within it (then
 * keep-alives flow); a long-poll `wait` asks for at most `MAX_WAIT_CHUNK_MS`
 * at a time, well under the 5-minute socket idle timeout of Bun's fetch, and
 * lifts that idle timeout for itself; cancel and delete may take the task's
 * kill grace (at most 10 minutes) longer. A rate-limited request (`429` with
 * `Retry-After`) is sent again after the wait while the deadline allows.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { LogEvent, Phase, Task, TaskRun, TaskSpecInput } from "../tasks/model.ts";
import { clipLine } from "../errors.ts";
import { retryAfterMs } from "../retry-after.ts";
import { CliError } from "./cli-error.ts";
import { formatDuration } from "./format.ts";
import { readSse } from "./sse-reader.ts";
import { deletedId, isTask, listAnswer, logEvent, infoAnswer, runsAnswer, skippedCount, submitAnswer, taskAnswer } from "./wire-shapes.ts";

/** Default agent address (CONTRACT: HTTP port 8080). */
export const DEFAULT_SERVER = "http://127.0.0.1:8080";

/**
 * Longest single long-poll `wait` this client asks for. The agent accepts up
 * to 10 minutes, but nothing moves on the socket while it holds the request,
 * and Bun's fetch drops a socket idle for 5 minutes (`BUN_CONFIG_HTTP_IDLE_TIMEOUT`).
 */
export const MAX_WAIT_CHUNK_MS = 60_000;

/** Default time the agent has to answer an ordinary request (env TASKLANE_REQUEST_TIMEOUT). */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/**
 * A `429` with `Retry-After` is sent again after the wait, at most this many
 * times, while the wait ends within the request's answer deadline (and is at
 * most {@link MAX_RATE_LIMIT_WAIT_MS}); then the 429 is the answer.
 */
export const MAX_RATE_LIMIT_RETRIES = 10;
/** Longest single `Retry-After` wait the client sits out. */
export const MAX_RATE_LIMIT_WAIT_MS = 30_000;

/** Longest kill grace a task may have (CONTRACT §1): a cancel or delete may take that long to answer. */
const MAX_KILL_GRACE_MS = 600_000;

/** The fetch the client calls (Bun's, or a test double); `timeout` is Bun's socket idle timeout. */
export type FetchLike = (input: string, init: BunFetchRequestInit) => Promise<Response>;

export interface ApiClientOptions {
  /** Base URL, e.g. `http://127.0.0.1:8080`. */
  server: string;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** Aborts every request that is not given its own signal (or `null`: not abortable). */
  signal?: AbortSignal;
  /** How long the agent has to answer an ordinary request, in ms; 0: no limit. Default {@link DEFAULT_REQUEST_TIMEOUT_MS}. */
  requestTimeoutMs?: number;
  fetch?: FetchLike;
}

/** `POST /api/v1/tasks` answer. */
export interface SubmitResult {
  task_id: string;
  admission: "started" | "queued" | "replaced" | "dropped";
}

/** `GET /api/v1/tasks` filters. */
export interface ListParams {
  slot?: string;
  status?: Phase;
  labels?: string[];
  limit?: number;
  order?: "asc" | "desc";
}

/** One numbered live-log event (the SSE `id` and `data`). */
export interface LogItem {
  id: number | undefined;
  event: LogEvent;
}

/** One change on the watch stream. */
export type WatchItem =
  | { type: "task"; id: number | undefined; task: Task }
  | { type: "deleted"; id: number | undefined; taskId: string }
  | { type: "lagged"; id: number | undefined; skipped: number };

/** A client bound to one agent. */
export interface ApiClient {
  readonly server: string;
  /** `signal: null` makes the submit immune to the default signal (the caller must learn the id). */
  submit(spec: TaskSpecInput, signal?: AbortSignal | null): Promise<SubmitResult>;
  list(params: ListParams): Promise<{ tasks: Task[]; total: number }>;
  get(id: string): Promise<Task>;
  runs(id: string): Promise<TaskRun[]>;
  cancel(id: string, signal?: AbortSignal | null): Promise<Task>;
  /** Release a task submitted with `hold: true` (`POST …/start`). */
  start(id: string, signal?: AbortSignal | null): Promise<Task>;
  remove(id: string): Promise<void>;
  /** Long-poll until the task is terminal or `timeoutMs` (capped at {@link MAX_WAIT_CHUNK_MS}) passed; the task as it is then. */
  waitOnce(id: string, timeoutMs: number, signal?: AbortSignal): Promise<Task>;
  info(): Promise<Record<string, unknown>>;
  /**
   * Log events: retained, then (with `follow`) live until the task is terminal.
   * Resolves once the agent answered, that is once the subscription exists.
   */
  logs(id: string, opts: { follow: boolean; after?: number; signal?: AbortSignal }): Promise<AsyncGenerator<LogItem>>;
  /** Task changes, until aborted. Resolves once the agent answered. */
  events(opts: { slot?: string; labels?: string[]; after?: number; signal?: AbortSignal }): Promise<AsyncGenerator<WatchItem>>;
}

/**
 * One path segment. `.` and `..` cannot be sent at all: URL parsing resolves
 * them (also as `%2e`), so `tasks/..` would reach another route.
 */
export function pathSegment(id: string): string {
  if (id === "." || id === "..") throw new CliError("usage", `invalid task ID ${JSON.stringify(id)}`);
  return encodeURIComponent(id);
}

const CONNECTION_REASONS: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ConnectionRefused: "connection refused",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host name lookup failed",
  ETIMEDOUT: "connection timed out",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ECONNRESET: "connection reset",
  ConnectionClosed: "connection closed",
  EPIPE: "connection closed",
};

/** Codes that mean an established connection broke (not that nothing was there). */
const LOST = new Set(["ECONNRESET", "ConnectionClosed", "EPIPE"]);

/** A short reason for a fetch failure, without Bun's advice to pass `verbose: true` to fetch(). */
export function reasonOf(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string" && CONNECTION_REASONS[code] !== undefined) return CONNECTION_REASONS[code];
  if (err.name === "TimeoutError") return "timed out waiting for data";
  const text = err.message
    .replace(/\s*For more information, pass `verbose: true`.*$/s, "")
    .replace(/^[A-Z][A-Z_]+: /, "")
    .replace(/\s+/g, " ")
    .trim()
    .replace(/\.$/, "");
  return text || err.name;
}

function contentType(res: Response): string {
  return (res.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
}

/** How an answer looked: `HTTP 404 Not Found, text/html`. */
function answered(res: Response): string {
  const ct = contentType(res);
  return `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ""}, ${ct || "no content type"}`;
}

/** Per-request time limits. */
interface Timing {
  /** The answer (headers, and the body of a JSON answer) must be complete within this many ms. */
  answerMs: number | undefined;
  /** Bun's socket idle timeout for this request (ms); `undefined`: Bun's default. */
  idleMs?: number;
}

/** Create a client for `opts.server` (a base URL). */
export function createApiClient(opts: ApiClientOptions): ApiClient {
  const server = opts.server.replace(/\/+$/, "");
  const doFetch: FetchLike = opts.fetch ?? ((input, init) => fetch(input, init));
  const requestMs = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  // Extra time on top of a wait or a kill grace, also when the request timeout is off.
  const slackMs = requestMs > 0 ? requestMs : DEFAULT_REQUEST_TIMEOUT_MS;
  const ordinary: Timing = { answerMs: requestMs > 0 ? requestMs : undefined };
  const stopping: Timing = { answerMs: requestMs > 0 ? MAX_KILL_GRACE_MS + requestMs : undefined, idleMs: MAX_KILL_GRACE_MS + slackMs };

  const notAgent = (what: string) => new CliError("unreachable", `${server} is not a tasklane agent (answered ${what})`);
  const connectionError = (err: unknown) => {
    const code = (err as { code?: unknown } | undefined)?.code;
    if (typeof code === "string" && LOST.has(code)) {
      return new CliError("unreachable", `lost the connection to the agent at ${server} (${reasonOf(err)})`, { cause: err });
    }
    return new CliError("unreachable", `cannot reach the agent at ${server}: ${reasonOf(err)} (set --server or TASKLANE_SERVER)`, { cause: err });
  };

  interface Sent {
    res: Response;
    /** The answer is complete (or the stream started): stop the answer deadline. */
    settle(): void;
    /** Turn a failure while talking to the agent into what the caller should see. */
    fail(err: unknown): never;
  }

  async function send(method: string, path: string, init: { body?: unknown; signal?: AbortSignal | null; accept?: string; timing: Timing }): Promise<Sent> {
    const caller = init.signal === null ? undefined : (init.signal ?? opts.signal);
    const { answerMs, idleMs } = init.timing;
    const deadline = answerMs !== undefined ? new AbortController() : undefined;
    const timer = deadline ? setTimeout(() => deadline.abort(), answerMs) : undefined;
    const settle = () => clearTimeout(timer);
    const fail = (err: unknown): never => {
      settle();
      if (caller?.aborted) throw caller.reason;
      if (deadline?.signal.aborted) throw new CliError("unreachable", `the agent at ${server} did not answer within ${formatDuration(answerMs!)}`, { cause: err });
      if (err instanceof CliError) throw err;
      throw connectionError(err);
    };
    const signals = [caller, deadline?.signal].filter((s): s is AbortSignal => s !== undefined);
    const headers: Record<string, string> = { accept: init.accept ?? "application/json" };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    if (init.body !== undefined) headers["content-type"] = "application/json";
    const req: BunFetchRequestInit = {
      method,
      headers,
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
      signal: signals.length === 0 ? undefined : signals.length === 1 ? signals[0] : AbortSignal.any(signals),
    };
    if (idleMs !== undefined) req.timeout = idleMs;
    const started = performance.now();
    try {
      let res = await doFetch(server + path, req);
      // The agent refuses a rate-limited request before reading it, so any method may be sent again.
      for (let tries = 0; res.status === 429 && tries < MAX_RATE_LIMIT_RETRIES; tries++) {
        const waitMs = retryAfterMs(res.headers.get("retry-after"));
        const leftMs = answerMs === undefined ? MAX_RATE_LIMIT_WAIT_MS : Math.min(MAX_RATE_LIMIT_WAIT_MS, answerMs - (performance.now() - started));
        if (waitMs === undefined || waitMs >= leftMs) break;
        await res.body?.cancel().catch(() => {});
        // Aborting rejects the wait; `fail` tells an interrupt from the answer deadline by the signals.
        await sleep(waitMs, undefined, { signal: req.signal ?? undefined });
        res = await doFetch(server + path, req);
      }
      return { res, settle, fail };
    } catch (err) {
      return fail(err);
    }
  }

  async function bodyText(sent: Sent): Promise<string> {
    try {
      return await sent.res.text();
    } catch (err) {
      return sent.fail(err);
    }
  }

  /** The error of a non-2xx answer: the API's message, or "not a tasklane agent". */
  async function apiError(sent: Sent): Promise<CliError> {
    const res = sent.res;
    const text = await bodyText(sent);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    const { error, message } = (typeof body === "object" && body !== null ? body : {}) as { error?: unknown; message?: unknown };
    if (typeof message !== "string") {
      const ct = contentType(res);
      const shown = text.trim() && !ct.includes("html") ? `: ${clipLine(text)}` : "";
      return notAgent(`${answered(res)}${shown}`);
    }
    // The agent's 401 speaks HTTP ("send Authorization: Bearer <token>"); say how the CLI sends one.
    const hint = res.status === 401 ? " (set --token or TASKLANE_TOKEN)" : "";
    return new CliError("api", message + hint, { status: res.status, label: typeof error === "string" ? error : undefined });
  }

  async function json<T>(
    method: string,
    path: string,
    check: (v: unknown) => T | undefined,
    what: string,
    init: { body?: unknown; signal?: AbortSignal | null; timing?: Timing } = {},
  ): Promise<T> {
    const sent = await send(method, path, { ...init, timing: init.timing ?? ordinary });
    try {
      const res = sent.res;
      if (!res.ok) throw await apiError(sent);
      if (contentType(res) !== "application/json") {
        await res.body?.cancel().catch(() => {});
        throw notAgent(answered(res));
      }
      const text = await bodyText(sent);
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        throw notAgent(`HTTP ${res.status} with a body that is not JSON: ${clipLine(text)}`);
      }
      const checked = check(value);
      if (checked === undefined) throw notAgent(`HTTP ${res.status} with JSON that is not ${what}: ${clipLine(text)}`);
      return checked;
    } finally {
      sent.settle();
    }
  }

  async function openStream(path: string, given: AbortSignal | undefined): Promise<AsyncGenerator<{ id: number | undefined; event: string; data: unknown }>> {
    const signal = given ?? opts.signal;
    const sent = await send("GET", path, { signal, accept: "text/event-stream", timing: ordinary });
    const res = sent.res;
    try {
      if (!res.ok) throw await apiError(sent);
      if (contentType(res) !== "text/event-stream" || !res.body) {
        await res.body?.cancel().catch(() => {});
        throw notAgent(answered(res));
      }
    } finally {
      sent.settle();
    }
    return frames(res.body, signal);
  }

  async function* frames(body: ReadableStream<Uint8Array>, signal: AbortSignal | undefined): AsyncGenerator<{ id: number | undefined; event: string; data: unknown }> {
    try {
      for await (const f of readSse(body)) {
        const id = f.id !== undefined && /^\d+$/.test(f.id) ? Number(f.id) : undefined;
        let data: unknown;
        try {
          data = JSON.parse(f.data);
        } catch {
          throw notAgent(`with an event that is not JSON: ${clipLine(f.data)}`);
        }
        yield { id, event: f.event, data };
      }
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      if (err instanceof CliError) throw err;
      throw new CliError("unreachable", `lost the connection to the agent at ${server} (${reasonOf(err)})`, { cause: err });
    }
  }

  const badEvent = (what: string, data: unknown) => notAgent(`with an event that is not ${what}: ${clipLine(JSON.stringify(data) ?? String(data))}`);
  const seg = pathSegment;

  return {
    server,
    submit: (spec, signal) => json("POST", "/api/v1/tasks", submitAnswer, "a submit answer", { body: { spec }, signal }),
    list(p) {
      const q = new URLSearchParams();
      if (p.slot !== undefined) q.set("slot", p.slot);
      if (p.status !== undefined) q.set("status", p.status);
      for (const l of p.labels ?? []) q.append("label", l);
      if (p.limit !== undefined) q.set("limit", String(p.limit));
      if (p.order !== undefined) q.set("order", p.order);
      const qs = q.toString();
      return json("GET", `/api/v1/tasks${qs ? `?${qs}` : ""}`, listAnswer, "a task list");
    },
    get: (id) => json("GET", `/api/v1/tasks/${seg(id)}`, taskAnswer, "a task"),
    runs: (id) => json("GET", `/api/v1/tasks/${seg(id)}/runs`, runsAnswer, "a run history"),
    cancel: (id, signal) => json("POST", `/api/v1/tasks/${seg(id)}/cancel`, taskAnswer, "a task", { signal, timing: stopping }),
    start: (id, signal) => json("POST", `/api/v1/tasks/${seg(id)}/start`, taskAnswer, "a task", { signal }),
    async remove(id) {
      const sent = await send("DELETE", `/api/v1/tasks/${seg(id)}`, { timing: stopping });
      try {
        if (!sent.res.ok) throw await apiError(sent);
        await sent.res.body?.cancel().catch(() => {});
        if (sent.res.status !== 204) throw notAgent(answered(sent.res));
      } finally {
        sent.settle();
      }
    },
    waitOnce(id, timeoutMs, signal) {
      const ms = Math.max(0, Math.min(MAX_WAIT_CHUNK_MS, Math.ceil(timeoutMs)));
      const timing: Timing = { answerMs: requestMs > 0 ? ms + requestMs : undefined, idleMs: ms + slackMs };
      return json("GET", `/api/v1/tasks/${seg(id)}/wait?timeoutMs=${ms}`, taskAnswer, "a task", { signal, timing });
    },
    info: () => json("GET", "/api/v1/info", infoAnswer, "agent information"),
    async logs(id, o) {
      const q = new URLSearchParams();
      if (!o.follow) q.set("follow", "false");
      if (o.after !== undefined) q.set("after", String(o.after));
      const qs = q.toString();
      const frames = await openStream(`/api/v1/tasks/${seg(id)}/logs${qs ? `?${qs}` : ""}`, o.signal);
      return (async function* () {
        for await (const f of frames) {
          const event = logEvent(f.data);
          if (event === undefined) throw badEvent("a log event", f.data);
          if (event !== "unknown") yield { id: f.id, event };
        }
      })();
    },
    async events(o) {
      const q = new URLSearchParams();
      if (o.slot !== undefined) q.set("slot", o.slot);
      for (const l of o.labels ?? []) q.append("label", l);
      if (o.after !== undefined) q.set("after", String(o.after));
      const qs = q.toString();
      const frames = await openStream(`/api/v1/events${qs ? `?${qs}` : ""}`, o.signal);
      return (async function* (): AsyncGenerator<WatchItem> {
        for await (const f of frames) {
          if (f.event === "task") {
            if (!isTask(f.data)) throw badEvent("a task", f.data);
            yield { type: "task", id: f.id, task: f.data };
          } else if (f.event === "deleted") {
            const taskId = deletedId(f.data);
            if (taskId === undefined) throw badEvent("a deletion", f.data);
            yield { type: "deleted", id: f.id, taskId };
          } else if (f.event === "lagged") {
            const skipped = skippedCount(f.data);
            if (skipped === undefined) throw badEvent("a lagged notice", f.data);
            yield { type: "lagged", id: f.id, skipped };
          }
        }
      })();
    },
  };
}
