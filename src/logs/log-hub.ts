/**
 * Per-task live logs (CONTRACT §3): one event ring per task, numbered events
 * that stay monotonic across agent restarts, and write-behind persistence.
 *
 * The hot path (`lines`) only appends to memory. The owner calls `flush()` on
 * a timer and when a task ends; a flush writes each dirty task's retained but
 * not yet persisted events to the sink — at most `retain` per task, so a
 * chatty task never costs one write per line. Events evicted before a flush
 * are not persisted; a reader replaying from the sink sees them as `lagged`.
 *
 * Ids across restarts. After a clean stop every event is stored and a task's
 * ids continue after its newest stored one. After a crash (kill -9, power
 * loss) the events numbered since the last committed flush are lost, but
 * their ids may have reached clients, so they must never name other events:
 * `afterUncleanStop` moves each task that was running or retrying on past
 * every id the crashed agent may have handed out, and stores a marker there
 * (see `MAX_UNSTORED_IDS` for the bound).
 */
import type { LogEvent, LogRecord, StreamKind } from "../tasks/model.ts";
import { createEventRing, type EventRing } from "./event-ring.ts";
import type { Subscription } from "./subscription.ts";

/** Where log events are persisted (the store implements it). */
export interface LogSink {
  /** Append already numbered records of a task. */
  append(taskId: string, records: readonly LogRecord[]): void;
  /** The newest `limit` records of a task, oldest first. */
  load(taskId: string, limit: number): LogRecord[];
  /** Drop records of a task with id < `beforeId`. */
  trim?(taskId: string, beforeId: number): void;
}

export interface LogHubStats {
  /** Tasks with a ring in memory. */
  tasks: number;
  /** Events retained in memory over all tasks. */
  events: number;
  subscribers: number;
  /** Events skipped by slow subscribers since the hub was created. */
  lagged: number;
}

/** Options of {@link LogHub.subscribe}. */
export interface LogSubscribeOptions {
  /** Deliver events with id > `after` (resume); without it, every retained event first. */
  after?: number;
  /** Keep delivering live events until the task ends. */
  follow: boolean;
  /**
   * Only used when the task has no ring in memory: `true` opens it for live
   * events (a task that has not started yet), otherwise it is loaded from
   * the sink as ended and forgotten again when its last subscriber leaves.
   */
  live?: boolean;
}

/** The per-task log fan-out; see the module comment. */
export interface LogHub {
  /** A run begins: appends a `runStarted` marker and resets the per-stream seq counters. Creates or reopens the task's ring. */
  runStarted(taskId: string, attempt: number, startedAt: number): void;
  /** One `chunk` event per line; `seq` counts per stream within the attempt. */
  lines(taskId: string, attempt: number, stream: StreamKind, lines: readonly string[], ts: number): void;
  /** A run ended: appends a `runFinished` marker (`exitCode` omitted when killed by a signal). */
  runFinished(taskId: string, attempt: number, exitCode: number | undefined, finishedAt: number): void;
  /** The task is terminal: its subscribers drain and end, and its unpersisted events go to the sink. */
  end(taskId: string): void;
  /** The task runs again (restart): followers wait for live events again. Creates the ring if needed. */
  reopen(taskId: string): void;
  /** Retained events after `after`, then live ones while following; works for tasks known only to the sink. */
  subscribe(taskId: string, opts: LogSubscribeOptions): Subscription<LogRecord>;
  /** Last `n` lines of `stream` among the retained events, oldest first. */
  tail(taskId: string, stream: StreamKind, n: number): string[];
  /** The task is deleted: close its subscriptions and forget it (deleting persisted events is the store's job). */
  drop(taskId: string): void;
  /**
   * Free the ring of an ended task with no subscribers, persisting it first; otherwise a no-op (a ring
   * with followers is freed when the last one leaves). Without a sink a written ring is never freed.
   */
  evict(taskId: string): void;
  /**
   * The previous agent stopped uncleanly (or it is not known that it stopped
   * cleanly): each of `taskIds` — the tasks that were running or waiting to
   * retry, whose newest events may be lost — continues `MAX_UNSTORED_IDS`
   * above its newest stored id, past every id the previous agent may have
   * handed out, after a stored marker (a reader passing over it gets one
   * `lagged`). Call before those tasks log anything; the markers are written
   * to the sink at once (the caller commits them before serving readers).
   */
  afterUncleanStop(taskIds: Iterable<string>): void;
  /** Persist retained, not yet persisted events of dirty tasks (at most `retain` per task). */
  flush(): void;
  stats(): LogHubStats;
  /** Flush, then close every subscription and forget every task. */
  close(): void;
  /** `close()` was called and its flush wrote every event to the sink: the next agent's ids may continue right after them. */
  readonly closedClean: boolean;
}

export interface LogHubOptions {
  /** Events kept per task (default in the agent: 1000). */
  retain: number;
  /** Approximate bytes kept per task (the line's UTF-8 bytes + 64 per event). */
  retainBytes?: number;
  sink?: LogSink;
  /** Called with the exact count each time a slow subscriber skips events (metrics). */
  onLagged?: (skipped: number) => void;
  /** Write a task to the sink at once when it has numbered more than this many ids past the last written (default and most: `DEFAULT_FLUSH_AHEAD`). */
  flushAhead?: number;
}

/** Fixed per-event overhead in the byte estimate. */
const EVENT_OVERHEAD = 64;

/**
 * Most ids a task numbers beyond the newest one written to the sink: past it
 * `append` writes the task at once instead of waiting for the next timed
 * flush (every 100 ms in the agent). 2^20 is ten times what the fastest task
 * measured (2.4 M lines/s, bench/README.md, benchmark 3) logs in 100 ms, so
 * it only acts when the flush timer is held up.
 */
export const DEFAULT_FLUSH_AHEAD = 2 ** 20;

/**
 * Bound on the ids a task may have handed out above its newest *committed*
 * (crash-surviving) stored event: at most `flushAhead` (2^20) are not yet
 * written to the sink, and written ones commit with the store's next commit
 * (at most 2 ms later, or once the fsync in flight completes). The remaining
 * 2^24 - 2^20 ≈ 15.7 M ids are 6.5 s of the fastest task measured (2.4 M
 * lines/s) waiting for one commit. After an unclean stop a task continues
 * above its newest stored id + this bound; each crash so costs a task at most
 * 2^24 ids, and ids stay exact integers (below 2^53) for 2^29 crashes.
 */
export const MAX_UNSTORED_IDS = 2 ** 24;

/**
 * Stored where a task's numbering jumps after an unclean stop (see
 * `afterUncleanStop`); readers passing over the jump get one `lagged` instead.
 * `skipped: 1` is what a reader whose cursor is just before it passed over.
 */
const GAP_MARKER: LogEvent = { type: "lagged", skipped: 1 };

function isGapMarker(event: LogEvent): boolean {
  return event.type === "lagged";
}

function eventSize(event: LogEvent): number {
  switch (event.type) {
    case "chunk":
      return Buffer.byteLength(event.line, "utf8") + EVENT_OVERHEAD; // bytes, not UTF-16 units (CJK: 3 bytes a character)
    case "runStarted":
    case "runFinished":
    case "lagged":
      return EVENT_OVERHEAD;
    default: {
      const never: never = event;
      return never;
    }
  }
}

function laggedEvent(skipped: number): LogEvent {
  return { type: "lagged", skipped };
}

interface TaskLog {
  ring: EventRing<LogEvent>;
  /** Highest id written to the sink. */
  persisted: number;
  /** The sink holds no record below this id (so a trim up to it would delete nothing). */
  trimmed: number;
  /** Attempt the seq counters belong to. */
  attempt: number;
  seq: Record<StreamKind, number>;
  /** Loaded only to serve subscribers of an ended task: forgotten when they leave. */
  transient: boolean;
}

/** Create the log hub. Starts no timers: the owner drives `flush()`. */
export function createLogHub(opts: LogHubOptions): LogHub {
  const { retain, retainBytes, sink } = opts;
  const flushAhead = opts.flushAhead ?? DEFAULT_FLUSH_AHEAD;
  // MAX_UNSTORED_IDS is reasoned from the default: a larger value would not be covered by it.
  if (!Number.isInteger(flushAhead) || flushAhead < 1 || flushAhead > DEFAULT_FLUSH_AHEAD) {
    throw new RangeError(`log hub flushAhead must be an integer 1..${DEFAULT_FLUSH_AHEAD}, got ${flushAhead}`);
  }
  const tasks = new Map<string, TaskLog>();
  const dirty = new Set<string>();
  let laggedTotal = 0;
  let closed = false;
  let closedClean = false;

  function onLagged(skipped: number): void {
    laggedTotal += skipped;
    opts.onLagged?.(skipped);
  }

  /** The task's ring, created (and seeded from the sink unless `fresh`: nothing can be stored yet) if missing. */
  function ensure(taskId: string, live: boolean, fresh = false): TaskLog {
    const existing = tasks.get(taskId);
    if (existing !== undefined) return existing;
    const ring = createEventRing<LogEvent>({
      capacity: retain,
      ...(retainBytes !== undefined ? { maxBytes: retainBytes, sizeOf: eventSize } : {}),
      lagged: laggedEvent,
      onLagged,
      isMarker: isGapMarker,
      // The last reader left an ended ring: free it now (a follower still draining when the task
      // ended made the agent's one `evict` a no-op, and nothing asked again: the ring stayed until
      // the task was swept, up to --task-ttl). A write that fails keeps it for a later `evict`.
      onIdle: () => {
        try {
          release(taskId, log);
        } catch {
          // kept (still dirty)
        }
      },
    });
    // A fresh ring has nothing stored below id 1; a loaded one may have older records in the sink.
    const log: TaskLog = { ring, persisted: 0, trimmed: fresh ? 1 : 0, attempt: 0, seq: { stdout: 0, stderr: 0 }, transient: !live };
    const stored = fresh ? [] : (sink?.load(taskId, retain) ?? []);
    const last = stored[stored.length - 1];
    if (last !== undefined) {
      ring.seed(stored);
      log.persisted = last.id;
    }
    if (!live) ring.end();
    tasks.set(taskId, log);
    return log;
  }

  /**
   * Free an ended ring nobody reads (persisting its unwritten events first); throws when that write
   * fails. A transient ring (read back from the sink) always; a written one only when there is a sink
   * to read it back from: without one the ring is the task's only log.
   */
  function release(taskId: string, log: TaskLog): void {
    if (tasks.get(taskId) !== log || !log.ring.ended || log.ring.subscribers > 0) return;
    if (!log.transient && sink === undefined) return;
    if (dirty.has(taskId)) flushTask(taskId, log);
    tasks.delete(taskId);
  }

  /** Ring for a write: makes it live and permanent. */
  function writable(taskId: string, fresh = false): TaskLog | undefined {
    if (closed) return undefined;
    const log = ensure(taskId, true, fresh);
    log.transient = false;
    return log;
  }

  /** Write a dirty task's unwritten events now, not at the next timed flush. */
  function flushNow(taskId: string, log: TaskLog): void {
    if (!dirty.has(taskId)) return;
    try {
      flushTask(taskId, log);
    } catch {
      // it stays dirty: the next flush() retries and reports the error
    }
  }

  function append(taskId: string, log: TaskLog, events: readonly LogEvent[]): void {
    log.ring.append(events);
    if (sink === undefined) return;
    dirty.add(taskId);
    // Keeps the ids that a crash can lose within MAX_UNSTORED_IDS, however late the timed flush is.
    if (log.ring.nextId - 1 - log.persisted > flushAhead) flushNow(taskId, log);
  }

  function flushTask(taskId: string, log: TaskLog): void {
    if (sink !== undefined) {
      // Only what the last flush did not write: a ring of 2 million events is not copied every 100 ms.
      const fresh = log.ring.since(log.persisted);
      if (fresh.length > 0) {
        sink.append(taskId, fresh);
        log.persisted = (fresh[fresh.length - 1] as LogRecord).id;
        const oldest = log.ring.oldestId;
        if (oldest !== undefined && oldest > log.trimmed) {
          sink.trim?.(taskId, oldest);
          log.trimmed = oldest;
        }
      }
    }
    dirty.delete(taskId);
  }

  function flush(): void {
    let failure: unknown;
    for (const taskId of [...dirty]) {
      const log = tasks.get(taskId);
      if (log === undefined) {
        dirty.delete(taskId);
        continue;
      }
      try {
        flushTask(taskId, log);
      } catch (err) {
        failure ??= err;
      }
    }
    if (failure !== undefined) throw failure;
  }

  return {
    runStarted(taskId, attempt, startedAt) {
      // A first attempt with no ring yet has written no events: skip the sink lookup (one query per task).
      const log = writable(taskId, attempt === 1);
      if (log === undefined) return;
      if (log.ring.ended) log.ring.reopen();
      log.attempt = attempt;
      log.seq = { stdout: 0, stderr: 0 };
      append(taskId, log, [{ type: "runStarted", attempt, startedAt }]);
    },

    lines(taskId, attempt, stream, lines, ts) {
      if (lines.length === 0) return;
      const log = writable(taskId);
      if (log === undefined) return;
      if (log.attempt !== attempt) {
        log.attempt = attempt;
        log.seq = { stdout: 0, stderr: 0 };
      }
      let seq = log.seq[stream];
      const events = new Array<LogEvent>(lines.length);
      for (let i = 0; i < lines.length; i++) {
        events[i] = { type: "chunk", attempt, stream, seq: seq++, ts, line: lines[i] as string };
      }
      log.seq[stream] = seq;
      append(taskId, log, events);
    },

    runFinished(taskId, attempt, exitCode, finishedAt) {
      const log = writable(taskId);
      if (log === undefined) return;
      const event: LogEvent =
        exitCode === undefined
          ? { type: "runFinished", attempt, finishedAt }
          : { type: "runFinished", attempt, exitCode, finishedAt };
      append(taskId, log, [event]);
    },

    end(taskId) {
      const log = tasks.get(taskId);
      if (log === undefined) return;
      log.ring.end();
      // A finished task's output is persisted now, with its final state, not at the next timed flush.
      flushNow(taskId, log);
    },

    reopen(taskId) {
      writable(taskId)?.ring.reopen();
    },

    subscribe(taskId, { after, follow, live }) {
      if (closed) {
        const ring = createEventRing<LogEvent>({ capacity: 1, lagged: laggedEvent });
        ring.close();
        return ring.subscribe({ follow: false });
      }
      const log = ensure(taskId, live ?? false);
      try {
        return log.ring.subscribe(after === undefined ? { follow } : { after, follow });
      } finally {
        if (log.transient && log.ring.subscribers === 0 && tasks.get(taskId) === log) tasks.delete(taskId);
      }
    },

    tail(taskId, stream, n) {
      if (n <= 0) return [];
      const records = tasks.get(taskId)?.ring.retained() ?? sink?.load(taskId, retain) ?? [];
      const out: string[] = [];
      for (let i = records.length - 1; i >= 0 && out.length < n; i--) {
        const event = (records[i] as LogRecord).event;
        if (event.type === "chunk" && event.stream === stream) out.push(event.line);
      }
      return out.reverse();
    },

    drop(taskId) {
      tasks.get(taskId)?.ring.close();
      tasks.delete(taskId);
      dirty.delete(taskId);
    },

    evict(taskId) {
      const log = tasks.get(taskId);
      if (log !== undefined) release(taskId, log);
    },

    flush,

    afterUncleanStop(taskIds) {
      if (sink === undefined) return;
      for (const taskId of taskIds) {
        const log = writable(taskId);
        if (log === undefined) return;
        // Ids up to newest stored + MAX_UNSTORED_IDS may have reached readers: the marker comes right after them.
        log.ring.skipTo(log.ring.nextId + MAX_UNSTORED_IDS);
        append(taskId, log, [GAP_MARKER]);
        // Written now, not at the next timed flush: a second crash must continue above it.
        flushNow(taskId, log);
      }
    },

    get closedClean() {
      return closedClean;
    },

    stats() {
      let events = 0;
      let subscribers = 0;
      for (const log of tasks.values()) {
        events += log.ring.size;
        subscribers += log.ring.subscribers;
      }
      return { tasks: tasks.size, events, subscribers, lagged: laggedTotal };
    },

    close() {
      if (closed) return;
      closed = true;
      try {
        flush();
        closedClean = true;
      } finally {
        for (const log of tasks.values()) log.ring.close();
        tasks.clear();
        dirty.clear();
      }
    },
  };
}
