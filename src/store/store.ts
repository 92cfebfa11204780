/**
 * The persistence seam. The supervisor is the only writer; every write is a
 * synchronous call that is visible to the next read at once (read-your-writes),
 * and `flush()` is the durability barrier: when it resolves, every write made
 * before the call is on disk. Implementations batch writes between flushes
 * (group commit), so a burst of submits costs one fsync, not one each.
 */
import { AgentError } from "../errors.ts";
import type { LogRecord, RunProcess, Task, TaskQuery, TaskRun } from "../tasks/model.ts";

/**
 * What a closed store throws: it is closed only as the agent stops, so a call
 * that reaches it then (a read during the last second's drain) is told
 * `Unavailable` (REST 503, gRPC `UNAVAILABLE`), not an internal error.
 */
export function storeClosed(): AgentError {
  return new AgentError("Unavailable", "agent is shutting down (its store is closed)");
}

/** A run as stored: the public run plus what recovery needs. */
export interface StoredRun extends TaskRun {
  process?: RunProcess;
  /**
   * Set while the run is being stopped for good (cancel, replace, delete): the
   * error the task ends with. Recovery after a crash in the kill grace ends
   * such a task canceled with it instead of applying its restart policy.
   */
  stopping?: string;
  /**
   * Attempts made before the restart (`POST /restart`) this run belongs to:
   * its `maxAttempts` counts from there. Absent: 0 (never restarted).
   */
  base?: number;
  /**
   * The task was restarted after this run (its newest) and has not run
   * since: the next budget counts from this attempt. With `base`, what
   * recovery reads from a task's newest run, the one run never trimmed.
   */
  restartedAfter?: true;
  /**
   * Set on a task's newest run when its restart policy scheduled another
   * attempt after it: when that attempt may start (epoch ms; the end of the
   * backoff or of the `always` interval). Recovery after a restart of the
   * agent waits out what is left of it instead of starting the task at once.
   */
  retryAt?: number;
  /** With `retryAt`: the consecutive failures counted so far, which size the backoff after the next attempt. */
  failures?: number;
}

export interface StoreStats {
  tasks: number;
  runs: number;
  logEvents: number;
}

export interface Store {
  /** Human-readable kind, e.g. `memory` or `sqlite:/var/lib/tasklane/tasklane.db`. */
  readonly kind: string;
  /**
   * Why the store has failed for good (a commit that was lost, an fsync of
   * the write-ahead log that failed), or `undefined` while it works. Once set
   * it stays: every later `flush()` rejects with it, so nothing written from
   * then on can be promised durable. Only reopening the store (restarting the
   * agent) clears it.
   */
  readonly failure: Error | undefined;
  /** Insert or replace a task (keyed by `metadata.id`). */
  putTask(task: Task): void;
  /**
   * `putTask` for a task whose id is not stored yet (a newly submitted task):
   * a new SQLite row without first looking for an old one, written with the
   * next statement or commit (a `putTask` of the same task before then
   * replaces it). An id that is already stored still ends up as with `putTask`.
   */
  insertTask(task: Task): void;
  getTask(id: string): Task | undefined;
  /**
   * The task as its JSON text (what `JSON.stringify(getTask(id))` gives) with
   * its owner, for readers that only pass the task on: no parse, no copy.
   */
  getTaskJson(id: string): { json: string; owner: string | undefined } | undefined;
  /** Filter, order and page; `total` counts every match, not the page. */
  listTasks(query: TaskQuery): { tasks: Task[]; total: number };
  /** Tasks whose phase is `pending` or `running`, oldest first (recovery). */
  activeTasks(): Task[];
  /** Remove a task with its runs and log events. */
  deleteTask(id: string): void;

  /**
   * Processes a previous agent on this store started whose runs it may not
   * have committed (it died in between; see process-journal.ts): recovery
   * kills what is left of them, as of the stored runs in flight.
   */
  readonly leftoverProcesses: readonly RunProcess[];
  /**
   * Insert or replace the run with this attempt number. Ignored if the task does not exist.
   * A run with a `process` and no `finishedAt` (just started) is recorded for `leftoverProcesses` at once.
   */
  putRun(taskId: string, run: StoredRun): void;
  /** Runs oldest first. */
  listRuns(taskId: string): StoredRun[];
  /** Keep only the newest `keep` runs of a task. */
  trimRuns(taskId: string, keep: number): void;

  /** Append log records of a task (already numbered). Ignored if the task does not exist. */
  appendLogs(taskId: string, records: readonly LogRecord[]): void;
  /** The newest `limit` log records of a task, oldest first. */
  loadLogs(taskId: string, limit: number): LogRecord[];
  /** Drop log records of a task with id < `beforeId`. */
  trimLogs(taskId: string, beforeId: number): void;

  /**
   * Terminal tasks to sweep: those finished (updatedAt) before `olderThan`,
   * plus the oldest beyond `keep` terminal tasks. Returns the ids of the
   * first `limit` of them (default all), oldest (by `updatedAt`, then id)
   * first; how many there are in all (`candidates`); and how many terminal
   * tasks are stored (those included).
   */
  sweepCandidates(olderThan: number, keep: number, limit?: number): { ids: string[]; candidates: number; terminal: number };

  /** Small key/value area for agent state (e.g. the persistent agent id). */
  getMeta(key: string): string | undefined;
  setMeta(key: string, value: string): void;

  stats(): StoreStats;
  /** Durability barrier: resolves when all writes made before the call are committed. */
  flush(): Promise<void>;
  /** Flush and close. */
  close(): Promise<void>;
}
