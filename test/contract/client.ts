/**
 * The contract client: one interface in domain terms, implemented once over
 * REST (+ SSE) and once over gRPC, so every scenario runs unchanged against
 * both transports (`describe.each(TRANSPORTS)`).
 *
 * - Inputs are REST-shaped (a spec is the `spec` of `POST /api/v1/tasks`);
 *   the gRPC client converts them to proto messages.
 * - Outputs are domain objects (`Task`, `TaskRun`, `LogEvent`), whatever the
 *   wire carried.
 * - Failures reject with one `ClientError` whose `code` is the domain label
 *   (`InvalidRequest`, `TaskNotFound`, …), mapped back from the HTTP envelope
 *   or from the gRPC status code.
 */
import type { ErrorCode } from "../../src/errors.ts";
import type { LogEvent, Phase, Task, TaskRun } from "../../src/tasks/model.ts";
import type { TestAgent } from "../helpers/start-agent.ts";

/** A failure as the domain names it, whatever the transport. */
export class ClientError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** The transport's own status (HTTP status or gRPC code), for diagnostics. */
    readonly status: number,
  ) {
    super(message);
    this.name = "ClientError";
  }
}

/** Task-list query in domain terms (REST query parameters / ListTasksRequest). */
export interface ListQuery {
  slot?: string;
  status?: Phase;
  labels?: Record<string, string>;
  createdAfter?: number;
  createdBefore?: number;
  order?: "asc" | "desc";
  limit?: number;
  offset?: number;
}

/** One change on the task watch stream, numbered by the agent's global event id. */
export type WatchItem =
  | { id: number; type: "task"; task: Task }
  | { id: number; type: "deleted"; taskId: string }
  | { id: number; type: "lagged"; skipped: number };

/** A live watch; iterate it, `close()` it when done (then the iteration ends). */
export interface WatchStream extends AsyncIterable<WatchItem>, Disposable {
  close(): void;
}

/** Submit-and-wait result. */
export interface RunResult {
  task: Task;
  runs: TaskRun[];
  output: { stdout: string[]; stderr: string[] };
}

/** The fields GET /api/v1/info and GetInfo both carry. */
export interface AgentInfo {
  version: string;
  uptimeMs: number;
  hostname: string;
  os: string;
  arch: string;
  dataDir: string;
  maxConcurrent: number;
  maxBodyBytes: number;
  maxScriptBytes: number;
  capabilities: string[];
}

/** What every contract scenario talks to. */
export interface ContractClient extends Disposable {
  readonly transport: "rest" | "grpc";
  /** Submit a REST-shaped spec; answers the new task id. */
  submit(spec: Record<string, unknown>): Promise<{ taskId: string }>;
  /** The task, or `undefined` when unknown (REST 404, gRPC OK without task). */
  get(id: string): Promise<Task | undefined>;
  list(query?: ListQuery): Promise<{ tasks: Task[]; total: number }>;
  runs(id: string): Promise<TaskRun[]>;
  /** Every log event, collected until the stream ends (the task is terminal). */
  logs(id: string): Promise<LogEvent[]>;
  delete(id: string): Promise<void>;
  cancel(id: string): Promise<Task>;
  start(id: string): Promise<Task>;
  restart(id: string): Promise<Task>;
  /** Long-poll until terminal or `timeoutMs` (> 0) passed; answers the task as it is then. */
  wait(id: string, timeoutMs: number): Promise<Task>;
  /** Submit and wait (REST `?wait=true`, gRPC RunTask). */
  run(spec: Record<string, unknown>, timeoutMs: number): Promise<RunResult>;
  /** Task changes (SSE /api/v1/events or gRPC WatchTasks). */
  watch(opts?: { after?: number; slot?: string; labels?: Record<string, string> }): WatchStream;
  info(): Promise<AgentInfo>;
}

/** How a failed call rejected, as `{ code, message }` (fails the test if it did not). */
export async function failure(p: Promise<unknown>): Promise<{ code: ErrorCode; message: string }> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ClientError) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error("expected the call to fail");
}

/** A factory per transport, for `describe.each`. */
export type ClientFactory = (agent: TestAgent) => ContractClient;

/** A watch stream over a push queue: `close` stops the transport, then the iteration ends. */
export function watchStreamOf(q: ReturnType<typeof createPushQueue<WatchItem>>, close: () => void): WatchStream {
  return {
    close() {
      close();
      q.end();
    },
    [Symbol.dispose]() {
      this.close();
    },
    [Symbol.asyncIterator]: () => q.iterator(),
  };
}

/**
 * A push queue turned into an async iterator: producers `push` / `end` /
 * `fail`; one consumer iterates. Unbounded, which is fine for tests that read
 * what they asked for (the agent side of every stream is bounded).
 */
export function createPushQueue<T>(onReturn: () => void): {
  push(item: T): void;
  end(): void;
  fail(err: unknown): void;
  iterator(): AsyncIterator<T>;
} {
  const items: T[] = [];
  let done = false;
  let error: unknown;
  let wake: (() => void) | undefined;
  const poke = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  return {
    push(item) {
      if (done) return;
      items.push(item);
      poke();
    },
    end() {
      done = true;
      poke();
    },
    fail(err) {
      if (done) return;
      error = err;
      done = true;
      poke();
    },
    iterator() {
      return {
        async next(): Promise<IteratorResult<T>> {
          for (;;) {
            if (items.length > 0) return { done: false, value: items.shift() as T };
            if (error !== undefined) {
              const e = error;
              error = undefined;
              throw e;
            }
            if (done) return { done: true, value: undefined };
            await new Promise<void>((resolve) => (wake = resolve));
          }
        },
        async return(): Promise<IteratorResult<T>> {
          done = true;
          onReturn();
          return { done: true, value: undefined };
        },
      };
    },
  };
}
