/**
 * The REST client of the CLI (CONTRACT §2–§3): one method per route, JSON in
 * and out, SSE streams as async iterables. Every failure is a `CliError`:
 * `api` for an error answer (with the API's `message`), `unreachable` when the
 * agent cannot be reached (the message names the URL). Aborting `signal`
 * rejects with the signal's reason, untouched, so callers can tell an
 * interrupt from a failure.
 */
import type { LogEvent, Phase, Task, TaskRun, TaskSpecInput } from "../tasks/model.ts";
import { CliError } from "./cli-error.ts";
import { readSse } from "./sse-reader.ts";

/** Default agent address (CONTRACT: HTTP port 8080). */
export const DEFAULT_SERVER = "http://127.0.0.1:8080";

/** Longest single long-poll `wait` the agent accepts (10 minutes). */
export const MAX_WAIT_CHUNK_MS = 600_000;

export interface ApiClientOptions {
  /** Base URL, e.g. `http://127.0.0.1:8080`. */
  server: string;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** Aborts every request that is not given its own signal (or `null`: not abortable). */
  signal?: AbortSignal;
  fetch?: (input: string, init: RequestInit) => Promise<Response>;
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
  remove(id: string): Promise<void>;
  /** Long-poll until the task is terminal or `timeoutMs` (≤ 10 min) passed; the task as it is then. */
  waitOnce(id: string, timeoutMs: number, signal?: AbortSignal): Promise<Task>;
  info(): Promise<Record<string, unknown>>;
  /** Log events: retained, then (with `follow`) live until the task is terminal. */
  logs(id: string, opts: { follow: boolean; after?: number; signal?: AbortSignal }): AsyncGenerator<LogItem>;
  /** Task changes, until aborted. */
  events(opts: { slot?: string; labels?: string[]; after?: number; signal?: AbortSignal }): AsyncGenerator<WatchItem>;
}

function reasonOf(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    if (code === "ConnectionRefused" || code === "ECONNREFUSED") return "connection refused";
    return err.message.replace(/\.$/, "");
  }
  return String(err);
}

/** Create a client for `opts.server` (a base URL). */
export function createApiClient(opts: ApiClientOptions): ApiClient {
  const server = opts.server.replace(/\/+$/, "");
  const doFetch = opts.fetch ?? ((input: string, init: RequestInit) => fetch(input, init));
  const unreachable = (err: unknown) =>
    new CliError("unreachable", `cannot reach the agent at ${server}: ${reasonOf(err)} (set --server or TASKLANE_SERVER)`, { cause: err });

  async function send(method: string, path: string, init: { body?: unknown; signal?: AbortSignal | null; accept?: string } = {}): Promise<Response> {
    const signal = init.signal === null ? undefined : (init.signal ?? opts.signal);
    const headers: Record<string, string> = { accept: init.accept ?? "application/json" };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    if (init.body !== undefined) headers["content-type"] = "application/json";
    let res: Response;
    try {
      res = await doFetch(server + path, {
        method,
        headers,
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
        signal,
      });
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      throw unreachable(err);
    }
    if (!res.ok) throw await apiError(res);
    return res;
  }

  async function apiError(res: Response): Promise<CliError> {
    const text = await res.text().catch(() => "");
    let label: string | undefined;
    let message = `HTTP ${res.status} ${res.statusText}`.trim();
    try {
      const body = JSON.parse(text) as { error?: unknown; message?: unknown };
      if (typeof body.message === "string") message = body.message;
      if (typeof body.error === "string") label = body.error;
    } catch {
      if (text.trim()) message += `: ${text.trim().slice(0, 200)}`;
    }
    return new CliError("api", message, { status: res.status, label });
  }

  async function json<T>(method: string, path: string, init: { body?: unknown; signal?: AbortSignal | null } = {}): Promise<T> {
    const res = await send(method, path, init);
    try {
      return (await res.json()) as T;
    } catch (err) {
      const signal = init.signal === null ? undefined : (init.signal ?? opts.signal);
      if (signal?.aborted) throw signal.reason;
      throw unreachable(err);
    }
  }

  async function* stream(path: string, given: AbortSignal | undefined): AsyncGenerator<{ id: number | undefined; event: string; data: unknown }> {
    const signal = given ?? opts.signal;
    const res = await send("GET", path, { signal, accept: "text/event-stream" });
    if (!res.body) return;
    try {
      for await (const f of readSse(res.body)) {
        const id = f.id !== undefined && /^\d+$/.test(f.id) ? Number(f.id) : undefined;
        yield { id, event: f.event, data: JSON.parse(f.data) as unknown };
      }
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      if (err instanceof SyntaxError) throw new CliError("api", `malformed event from the agent: ${err.message}`);
      throw new CliError("unreachable", `lost the connection to the agent at ${server}: ${reasonOf(err)}`, { cause: err });
    }
  }

  const enc = encodeURIComponent;
  return {
    server,
    submit: (spec, signal) => json<SubmitResult>("POST", "/api/v1/tasks", { body: { spec }, signal }),
    async list(p) {
      const q = new URLSearchParams();
      if (p.slot !== undefined) q.set("slot", p.slot);
      if (p.status !== undefined) q.set("status", p.status);
      for (const l of p.labels ?? []) q.append("label", l);
      if (p.limit !== undefined) q.set("limit", String(p.limit));
      if (p.order !== undefined) q.set("order", p.order);
      const qs = q.toString();
      return json("GET", `/api/v1/tasks${qs ? `?${qs}` : ""}`);
    },
    get: async (id) => (await json<{ task: Task }>("GET", `/api/v1/tasks/${enc(id)}`)).task,
    runs: async (id) => (await json<{ runs: TaskRun[] }>("GET", `/api/v1/tasks/${enc(id)}/runs`)).runs,
    cancel: async (id, signal) => (await json<{ task: Task }>("POST", `/api/v1/tasks/${enc(id)}/cancel`, { signal })).task,
    async remove(id) {
      const res = await send("DELETE", `/api/v1/tasks/${enc(id)}`);
      await res.body?.cancel();
    },
    waitOnce: async (id, timeoutMs, signal) =>
      (await json<{ task: Task }>("GET", `/api/v1/tasks/${enc(id)}/wait?timeoutMs=${Math.max(0, Math.min(MAX_WAIT_CHUNK_MS, Math.ceil(timeoutMs)))}`, { signal }))
        .task,
    info: () => json("GET", "/api/v1/info"),
    async *logs(id, o) {
      const q = new URLSearchParams();
      if (!o.follow) q.set("follow", "false");
      if (o.after !== undefined) q.set("after", String(o.after));
      const qs = q.toString();
      for await (const f of stream(`/api/v1/tasks/${enc(id)}/logs${qs ? `?${qs}` : ""}`, o.signal)) {
        yield { id: f.id, event: f.data as LogEvent };
      }
    },
    async *events(o) {
      const q = new URLSearchParams();
      if (o.slot !== undefined) q.set("slot", o.slot);
      for (const l of o.labels ?? []) q.append("label", l);
      if (o.after !== undefined) q.set("after", String(o.after));
      const qs = q.toString();
      for await (const f of stream(`/api/v1/events${qs ? `?${qs}` : ""}`, o.signal)) {
        if (f.event === "task") yield { type: "task", id: f.id, task: f.data as Task };
        else if (f.event === "deleted") yield { type: "deleted", id: f.id, taskId: (f.data as { id: string }).id };
        else if (f.event === "lagged") yield { type: "lagged", id: f.id, skipped: (f.data as { skipped: number }).skipped };
      }
    },
  };
}
