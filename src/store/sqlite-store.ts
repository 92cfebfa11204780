/**
 * `Store` on one bun:sqlite connection with group commit.
 *
 * Writes run at once inside an open transaction (the first write after a
 * commit issues `BEGIN`), so the next read on this connection sees them. The
 * transaction commits `commitIntervalMs` after its first write, after
 * `maxBatch` writes, or — when someone awaits `flush()` — on the next turn of
 * the event loop, whichever comes first. Every caller that put and flushed in
 * the same turn shares one `COMMIT`.
 *
 * Durability (`synchronous: "FULL"`, the default): SQLite commits without
 * waiting for the disk (`PRAGMA synchronous=NORMAL` in WAL mode still syncs
 * around checkpoints), and the store fsyncs the WAL file itself, off the
 * event loop (`fs.fsync` runs on a worker thread), after every commit — one
 * fsync in flight at a time, each covering every commit made before it
 * started. A `flush()` resolves once an fsync that started after its commit
 * has completed: the same guarantee as SQLite's FULL (every flushed write
 * survives power loss), without the agent's thread waiting ≈ 0.7 ms per
 * commit for the disk. A crash of the agent alone never loses a commit: the
 * data is in the kernel's page cache.
 *
 * The connection runs in `locking_mode=EXCLUSIVE`: it holds a kernel file
 * lock on the database for its whole life, so a second agent on the same data
 * dir fails to open, and a dead agent's lock vanishes with its process.
 */
import type { SQLQueryBindings, Statement } from "bun:sqlite";
import { closeSync, fsync, openSync } from "node:fs";
import type { LogEvent, LogRecord, Task, TaskQuery } from "../tasks/model.ts";
import { buildListQuery } from "./list-query.ts";
import { decodeLogRow, encodeLogRow } from "./log-rows.ts";
import { TERMINAL_PHASES_SQL } from "./migrations.ts";
import { canonicalPath, openDatabase } from "./open-database.ts";
import { openProcessJournal, type ProcessJournal } from "./process-journal.ts";
import { storeClosed, type Store, type StoreStats, type StoredRun } from "./store.ts";

/** Options of `createSqliteStore`. */
export interface SqliteStoreOptions {
  /** Database file; created if missing. */
  path: string;
  /** Commit an open transaction at the latest this long after its first write. Default 2. */
  commitIntervalMs?: number;
  /** Commit as soon as the open transaction holds this many writes. Default 1000. */
  maxBatch?: number;
  /**
   * `FULL` (default): the WAL is fsynced after every commit (off the event loop)
   * and `flush()` waits for it, so a flushed write survives power loss.
   * `NORMAL`: no fsync per commit (SQLite's WAL NORMAL: durable against a crash
   * of the agent, not of the machine).
   */
  synchronous?: "FULL" | "NORMAL";
  /** How long opening waits for another holder of the database lock before failing. Default 2000. */
  busyTimeoutMs?: number;
  /**
   * When a pending `flush()` commits: `next-tick` (default) on the next turn of the
   * event loop, `now` synchronously inside `flush()`, `interval` at the scheduled
   * time. Kept selectable for bench/store-commit.ts, which measured the default best.
   */
  flushCommit?: "next-tick" | "now" | "interval";
  /** Test seam: called right before `COMMIT`; throwing makes the commit fail and roll back. */
  beforeCommit?: () => void;
  /** Test seam: how the WAL file is synced (default `fs.fsync`, which runs off the event loop). */
  syncWal?: (fd: number, done: (err: Error | null) => void) => void;
  /**
   * Told once, synchronously, when the store fails for good (`Store.failure`
   * is set by then), e.g. so the agent stops saying it is ready.
   */
  onFailure?: (failure: Error) => void;
}

/** The SQLite store with its group-commit accounting. */
export interface SqliteStore extends Store {
  /** Absolute path of the database file. */
  readonly path: string;
  /** Transactions committed since open (migrations excluded). */
  readonly commits: number;
  /** fsyncs of the WAL completed since open. */
  readonly syncs: number;
}

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

interface Batch {
  writes: number;
  waiters: Waiter[];
  timer: ReturnType<typeof setTimeout> | undefined;
  tick: ReturnType<typeof setImmediate> | undefined;
  /** Due while an fsync was in flight: committed as soon as that fsync completes. */
  afterSync?: boolean;
}

type Bindings = SQLQueryBindings[];

/** Columns of a stored task that feed indexes (a transition that keeps them rewrites only phase, time and body). */
interface IndexedColumns {
  labels: string;
  created_at: number;
  slot: string;
  owner: string | null;
}

/** A task as the columns of its `tasks` row (in `INSERT` order) and what the store keeps of it in memory. */
interface TaskRow {
  id: string;
  body: string;
  owner: string | undefined;
  indexed: IndexedColumns;
  columns: [id: string, slot: string, phase: string, owner: string | null, createdAt: number, updatedAt: number, labels: string, body: string];
}

function taskRow(task: Task): TaskRow {
  const { id, owner, createdAt, updatedAt } = task.metadata;
  const body = JSON.stringify(task);
  const indexed: IndexedColumns = { labels: JSON.stringify(task.spec.labels), created_at: createdAt, slot: task.spec.slot, owner: owner ?? null };
  return {
    id,
    body,
    owner,
    indexed,
    columns: [id, indexed.slot, task.status.phase, indexed.owner, createdAt, updatedAt, indexed.labels, body],
  };
}

/**
 * Most log events in one stored row (`log_batches`): a flush of a chatty task
 * is a few rows of JSON arrays, and loading the newest few events of a task
 * parses at most this many more than asked for.
 */
const LOG_BATCH_MAX = 4096;
/** And at most about this many characters of output lines (a row of long lines stays a few MiB of JSON). */
const LOG_BATCH_CHARS = 1024 * 1024;

function lineChars(event: LogEvent): number {
  return event.type === "chunk" ? event.line.length : 0;
}

/** A stored log row as read back: `body[i]` is the event numbered `origin + i`; ids outside [first, last] are gone. */
interface LogBatchRow {
  rid: number;
  origin: number;
  first: number;
  last: number;
}

const LIST_CACHE_SIZE = 64;
/** Recently written tasks whose JSON text is kept in memory (≈ 0.5–2 KiB each). */
const RECENT_TASKS = 1024;
const LABEL_COUNT_CAP = 10_000;
/**
 * Database files this process holds open. Closing *any* descriptor of a file
 * drops all of the process's POSIX locks on it, so a second open here (whose
 * header check opens and closes the file) would silently release the first.
 */
const openInProcess = new Set<string>();

/**
 * Open (creating if needed) the database at `opts.path`, run missing
 * migrations and take the exclusive lock. Throws a one-line `Error` naming
 * the path when the file is not a database, is corrupt, comes from a newer
 * tasklane, or is locked by another process. A file it cannot read is never
 * written.
 */
export function createSqliteStore(opts: SqliteStoreOptions): SqliteStore {
  const path = canonicalPath(opts.path);
  const commitIntervalMs = Math.max(0, opts.commitIntervalMs ?? 2);
  const maxBatch = Math.max(1, opts.maxBatch ?? 1000);
  const flushCommit = opts.flushCommit ?? "next-tick";
  const beforeCommit = opts.beforeCommit;
  const syncEachCommit = (opts.synchronous ?? "FULL") === "FULL";
  const syncWal = opts.syncWal ?? fsync;

  if (openInProcess.has(path)) throw new Error(`cannot open store: ${path} is already open in this process`);
  // FULL durability comes from the store's own WAL fsync (see above), not from SQLite's.
  const db = openDatabase(path, { ...opts, synchronous: "NORMAL" });
  let journal: ProcessJournal;
  try {
    journal = openProcessJournal(`${path}-procs`);
  } catch (err) {
    db.close();
    throw new Error(`cannot open store: ${path}-procs: ${messageOf(err)}`, { cause: err });
  }
  openInProcess.add(path);

  const statements: Statement[] = [];
  type Prepared<R, P extends Bindings> = Pick<Statement<R, P>, "run" | "get" | "all" | "iterate">;
  /**
   * A statement prepared on its first use: preparing all of them at open was
   * ≈ 1 ms of the agent's start-up (bench/README.md, benchmark 10), and some
   * (migrations' leftovers, rare maintenance) may never run.
   */
  function prepare<R, P extends Bindings>(sql: string): Prepared<R, P> {
    let stmt: Statement<R, P> | undefined;
    const real = (): Statement<R, P> => {
      if (stmt === undefined) {
        stmt = db.prepare<R, P>(sql) as Statement<R, P>;
        statements.push(stmt as unknown as Statement);
      }
      return stmt;
    };
    return {
      run: (...args) => real().run(...args),
      get: (...args) => real().get(...args),
      all: (...args) => real().all(...args),
      iterate: (...args) => real().iterate(...args),
    };
  }

  const q = {
    begin: prepare<never, []>("BEGIN"),
    commit: prepare<never, []>("COMMIT"),
    savepoint: prepare<never, []>("SAVEPOINT write"),
    release: prepare<never, []>("RELEASE write"),
    rollbackTo: prepare<never, []>("ROLLBACK TO write"),
    taskLabels: prepare<IndexedColumns, [string]>(
      "SELECT labels, created_at, slot, owner FROM tasks WHERE id = ?",
    ),
    // A transition changes only these: leaves the slot, creation and owner indexes untouched.
    updateTaskState: prepare<never, [string, number, string, string]>("UPDATE tasks SET phase = ?, updated_at = ?, body = ? WHERE id = ?"),
    taskExists: prepare<{ one: number }, [string]>("SELECT 1 AS one FROM tasks WHERE id = ?"),
    upsertTask: prepare<never, [string, string, string, string | null, number, number, string, string]>(
      `INSERT INTO tasks (id, slot, phase, owner, created_at, updated_at, labels, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET slot = excluded.slot, phase = excluded.phase, owner = excluded.owner,
         created_at = excluded.created_at, updated_at = excluded.updated_at, labels = excluded.labels, body = excluded.body`,
    ),
    insertTask: prepare<never, [string, string, string, string | null, number, number, string, string]>(
      "INSERT INTO tasks (id, slot, phase, owner, created_at, updated_at, labels, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    ),
    clearLabels: prepare<never, [string]>("DELETE FROM task_labels WHERE task_id = ?"),
    insertLabel: prepare<never, [string, string, string, number]>(
      "INSERT INTO task_labels (task_id, key, value, created_at) VALUES (?, ?, ?, ?)",
    ),
    labelCountCapped: prepare<{ n: number }, [string, string, number]>(
      "SELECT count(*) AS n FROM (SELECT 1 FROM task_labels WHERE key = ? AND value = ? LIMIT ?)",
    ),
    getTask: prepare<{ body: string }, [string]>("SELECT body FROM tasks WHERE id = ?"),
    getTaskJson: prepare<{ body: string; owner: string | null }, [string]>("SELECT body, owner FROM tasks WHERE id = ?"),
    activeTasks: prepare<{ body: string }, []>(
      "SELECT body FROM tasks WHERE phase IN ('pending', 'running') ORDER BY created_at, id",
    ),
    deleteTask: prepare<never, [string]>("DELETE FROM tasks WHERE id = ?"),
    putRun: prepare<never, [string, number, string]>(
      "INSERT OR REPLACE INTO runs (task_id, attempt, body) SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM tasks WHERE id = ?1)",
    ),
    listRuns: prepare<{ body: string }, [string]>("SELECT body FROM runs WHERE task_id = ? ORDER BY attempt"),
    trimRuns: prepare<never, [string, number]>(
      `DELETE FROM runs WHERE task_id = ?1
         AND attempt <= (SELECT attempt FROM runs WHERE task_id = ?1 ORDER BY attempt DESC LIMIT 1 OFFSET ?2)`,
    ),
    insertLogBatch: prepare<never, [string, number, number, number, string]>(
      "INSERT INTO log_batches (task_id, origin, first_id, last_id, body) VALUES (?, ?, ?, ?, ?)",
    ),
    // Stored rows with ids in [?2, ?3]: none when a task's ids only grow (the agent's case).
    overlappingLogs: prepare<LogBatchRow & { body: string }, [string, number, number]>(
      `SELECT rowid AS rid, origin, first_id AS first, last_id AS last, body FROM log_batches
         WHERE task_id = ?1 AND last_id >= ?2 AND first_id <= ?3`,
    ),
    deleteLogBatch: prepare<never, [number]>("DELETE FROM log_batches WHERE rowid = ?"),
    loadLogs: prepare<Omit<LogBatchRow, "rid"> & { body: string }, [string]>(
      "SELECT origin, first_id AS first, last_id AS last, body FROM log_batches WHERE task_id = ? ORDER BY last_id DESC",
    ),
    trimLogBatches: prepare<never, [string, number]>("DELETE FROM log_batches WHERE task_id = ? AND last_id < ?"),
    trimLogBatchStart: prepare<never, [string, number]>(
      "UPDATE log_batches SET first_id = ?2 WHERE task_id = ?1 AND last_id >= ?2 AND first_id < ?2",
    ),
    // Without INDEXED BY the planner walks the phase index and sorts every terminal task.
    terminalCounts: prepare<{ total: number; expired: number }, [number]>(
      `SELECT count(*) AS total, coalesce(sum(updated_at < ?), 0) AS expired
         FROM tasks INDEXED BY tasks_terminal_updated WHERE phase IN ${TERMINAL_PHASES_SQL}`,
    ),
    oldestTerminal: prepare<{ id: string }, [number]>(
      `SELECT id FROM tasks INDEXED BY tasks_terminal_updated WHERE phase IN ${TERMINAL_PHASES_SQL}
         ORDER BY updated_at, id LIMIT ?`,
    ),
    getMeta: prepare<{ value: string }, [string]>("SELECT value FROM meta WHERE key = ?"),
    setMeta: prepare<never, [string, string]>(
      "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    ),
    stats: prepare<StoreStats, []>(
      `SELECT (SELECT count(*) FROM tasks) AS tasks, (SELECT count(*) FROM runs) AS runs,
              (SELECT coalesce(sum(last_id - first_id + 1), 0) FROM log_batches) AS logEvents`,
    ),
  };
  /**
   * Make room for ids [a, b]: stored rows overlapping them lose those ids (as
   * `INSERT OR REPLACE` of each would). A row keeping ids on either side is
   * rewritten with just those (the agent never overwrites stored ids; this
   * keeps other callers from piling up copies of one row's body).
   */
  function clearLogRange(taskId: string, a: number, b: number, overlapping = q.overlappingLogs.all(taskId, a, b)): void {
    for (const row of overlapping) {
      q.deleteLogBatch.run(row.rid);
      if (row.first >= a && row.last <= b) continue;
      const events = decodeLogRow(row.body);
      const keep = (from: number, to: number) => {
        if (from <= to) q.insertLogBatch.run(taskId, from, from, to, encodeLogRow(events.slice(from - row.origin, to - row.origin + 1)));
      };
      keep(row.first, Math.min(row.last, a - 1));
      keep(Math.max(row.first, b + 1), row.last);
    }
  }

  // Statements of listTasks depend on which filters are present; keep the recent shapes.
  const listCache = new Map<string, Statement<{ body: string; n: number }, Bindings>>();

  let batch: Batch | undefined;
  /**
   * JSON text and owner of recently written tasks, newest last: reads of a task
   * that was just written (status polls, waits, the supervisor) skip a SQLite
   * lookup. Write-through; cleared when SQLite rolls a batch back.
   */
  const recent = new Map<string, { json: string; owner: string | undefined; indexed: IndexedColumns }>();
  function remember(r: TaskRow): void {
    recent.delete(r.id);
    recent.set(r.id, { json: r.body, owner: r.owner, indexed: r.indexed });
    if (recent.size > RECENT_TASKS) recent.delete(recent.keys().next().value as string);
  }
  let failure: Error | undefined;
  let commits = 0;
  let closed = false;

  /**
   * New tasks put by `insertTask` whose `INSERT` has not run yet, by id. A task
   * admitted at once starts in the same turn, and its next write (`running`)
   * replaces the staged row: the task's first row is written once, instead of
   * an `INSERT` and an `UPDATE` of its phase indexes. Any other statement runs
   * the staged inserts first (`live()` settles), and so does every commit:
   * SQL never sees an older state than the writes made, and a flush covers
   * them like any other write.
   */
  const staged = new Map<string, TaskRow>();

  /** Run the staged inserts. One that fails loses the batch: its task was accepted on the promise of the commit. */
  function settle(): void {
    if (staged.size === 0) return;
    const rows = [...staged.values()];
    staged.clear();
    try {
      for (const r of rows) {
        try {
          q.insertTask.run(...r.columns);
        } catch (err) {
          // The id was stored after all (not among the recent ones): replace it, labels included.
          if ((err as { code?: string }).code !== "SQLITE_CONSTRAINT_PRIMARYKEY") throw err;
          storeRow(r, {}, q.taskLabels.get(r.id));
        }
      }
    } catch (err) {
      const b = batch;
      try {
        if (db.inTransaction) db.run("ROLLBACK");
      } catch {
        // The insert's error below is the one worth reporting.
      }
      if (b) lose(b, "storing a new task failed", err);
      throw err;
    }
  }

  function assertOpen(): void {
    if (closed) throw storeClosed();
  }

  /** The store is open and staged inserts have run: every statement but staging comes through here. */
  function live(): void {
    assertOpen();
    settle();
  }

  /** The open transaction (`BEGIN` on the first write after a commit). */
  function open(): Batch {
    if (batch) return batch;
    q.begin.run();
    const opened: Batch = { writes: 0, waiters: [], timer: undefined, tick: undefined };
    opened.timer = setTimeout(() => {
      if (batch === opened) commitDue(opened);
    }, commitIntervalMs);
    batch = opened;
    return opened;
  }

  /** Count a write into `b`; a full batch commits at once. */
  function counted(b: Batch): void {
    b.writes++;
    if (b.writes >= maxBatch) commit();
  }

  /** Run one logical write inside the open transaction (opening one if needed). */
  function write(fn: () => void): void {
    live();
    const b = open();
    try {
      fn();
    } catch (err) {
      // Some errors (disk full, I/O) make SQLite roll back the whole transaction.
      if (!db.inTransaction) lose(b, "transaction rolled back by SQLite", err);
      throw err;
    }
    counted(b);
  }

  /** Stage a new task's row (see `staged`): no statement now, one before the next statement or commit. */
  function stage(r: TaskRow): void {
    assertOpen();
    const b = open();
    staged.set(r.id, r);
    counted(b);
  }

  /**
   * `putTask`'s statements for a row whose stored version may exist (labels replaced when they
   * differ). `previous`: the indexed columns as stored — known for a recently written task, else read back.
   */
  function storeRow(
    r: TaskRow,
    labels: Readonly<Record<string, string>>,
    previous: IndexedColumns | null | undefined = recent.get(r.id)?.indexed ?? q.taskLabels.get(r.id),
  ): void {
    const { indexed } = r;
    if (previous && previous.labels === indexed.labels && previous.created_at === indexed.created_at) {
      const [, , phase, , , updatedAt] = r.columns;
      if (sameIndexed(previous, indexed)) q.updateTaskState.run(phase, updatedAt, r.body, r.id);
      else q.upsertTask.run(...r.columns);
      return;
    }
    atomically(() => {
      q.upsertTask.run(...r.columns);
      if (previous) q.clearLabels.run(r.id);
      for (const [key, value] of Object.entries(labels)) q.insertLabel.run(r.id, key, value, indexed.created_at);
    });
  }

  /** Same slot, owner, creation and labels: a transition, which changes only phase, time and body. */
  function sameIndexed(a: IndexedColumns, b: IndexedColumns): boolean {
    return a.labels === b.labels && a.created_at === b.created_at && a.slot === b.slot && a.owner === b.owner;
  }

  /** Several statements as one write: all or nothing. */
  function atomically(fn: () => void): void {
    q.savepoint.run();
    try {
      fn();
    } catch (err) {
      if (db.inTransaction) {
        q.rollbackTo.run();
        q.release.run();
      }
      throw err;
    }
    q.release.run();
  }

  function detach(b: Batch): void {
    if (batch === b) batch = undefined;
    clearTimeout(b.timer);
    if (b.tick) clearImmediate(b.tick);
  }

  /**
   * A batch's commit is due (its timer, or a flush on the next turn). While an
   * fsync is in flight, it waits for that fsync to complete: its waiters would
   * wait for the next fsync anyway, and meanwhile more writes join the same
   * commit (fewer commits, fewer pages written twice to the WAL: bench/README.md,
   * benchmark 1). A batch of `maxBatch` writes commits at once regardless.
   */
  function commitDue(b: Batch): void {
    if (syncEachCommit && syncing && !failure) b.afterSync = true;
    else commit();
  }

  function commit(): void {
    const b = batch;
    if (!b) return;
    try {
      settle();
      detach(b);
      beforeCommit?.();
      q.commit.run();
      journal.committed(); // every process started so far has its run stored now
    } catch (err) {
      try {
        if (db.inTransaction) db.run("ROLLBACK");
      } catch {
        // The commit error below is the one worth reporting.
      }
      lose(b, "commit failed", err);
      return;
    }
    commits++;
    if (!syncEachCommit || failure) {
      for (const w of b.waiters) w.resolve(); // rejects once the store has failed
      return;
    }
    syncQueue.push(...b.waiters);
    committedSinceSync = true;
    if (!syncing) startSync();
  }

  /** Waiters of commits made since the in-flight fsync started (they need the next one). */
  let syncQueue: Waiter[] = [];
  /** Waiters of the in-flight fsync. */
  let inflight: Waiter[] = [];
  let committedSinceSync = false;
  let syncing = false;
  let syncs = 0;
  let walFd: number | undefined;
  let idle: PromiseWithResolvers<void> | undefined;

  /** Resolves when every commit made so far is durable (at once when none awaits its fsync). */
  function durable(): Promise<void> {
    if (failure) return Promise.reject(failure);
    if (!syncing && !committedSinceSync) return Promise.resolve();
    // An fsync covers the commits made before it started; later ones wait for the next.
    return waitIn(committedSinceSync ? syncQueue : inflight);
  }

  /** A promise settled by a waiter added to `queue`: it resolves, or rejects if the store has failed by then. */
  function waitIn(queue: Waiter[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      queue.push({ resolve: () => (failure ? reject(failure) : resolve()), reject });
    });
  }

  /** fsync the WAL for every commit made so far; when done, again if more commits came meanwhile. */
  function startSync(): void {
    syncing = true;
    committedSinceSync = false;
    const waiters = (inflight = syncQueue);
    syncQueue = [];
    const done = (err: Error | null) => {
      syncing = false;
      if (err) {
        fail(new Error(`store ${path}: fsync of the write-ahead log failed, committed writes may not be durable: ${messageOf(err)}`, { cause: err }));
      } else syncs++;
      inflight = [];
      for (const w of waiters) w.resolve(); // rejects when failed
      if (batch?.afterSync) commit(); // starts the next fsync
      else if (committedSinceSync) startSync();
      else idle?.resolve();
    };
    try {
      walFd ??= openSync(`${path}-wal`, "r");
      syncWal(walFd, done);
    } catch (err) {
      done(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /**
   * The batch's writes are gone. Every later flush rejects too: a flush promises
   * that all earlier writes are durable, and these never will be.
   */
  function lose(b: Batch, what: string, err: unknown): void {
    detach(b);
    fail(new Error(`store ${path}: ${what}, writes were lost: ${messageOf(err)}`, { cause: err }));
    for (const w of b.waiters) w.reject(failure!);
    recent.clear();
  }

  /** The store has failed for good: the first failure is kept (and told), later ones are its consequences. */
  function fail(err: Error): void {
    if (failure) return;
    failure = err;
    try {
      opts.onFailure?.(err);
    } catch {
      // a listener's bug must not change what the store's callers are told
    }
  }

  function listStatement(sql: string): Statement<{ body: string; n: number }, Bindings> {
    let stmt = listCache.get(sql);
    if (stmt) {
      listCache.delete(sql);
    } else {
      stmt = db.prepare<{ body: string; n: number }, Bindings>(sql);
      const oldest = listCache.size >= LIST_CACHE_SIZE ? listCache.entries().next().value : undefined;
      if (oldest) {
        listCache.delete(oldest[0]);
        oldest[1].finalize();
      }
    }
    listCache.set(sql, stmt);
    return stmt;
  }

  /** Filtered page plus total; see `buildListQuery` for the two query shapes. */
  function listTasks(query: TaskQuery): { tasks: Task[]; total: number } {
    live();
    const labels = Object.entries(query.labels ?? {});
    if (labels.length > 1) {
      // Counting up to a cap is cheap and enough to tell the rare label from the common ones.
      const size = new Map(labels.map(([k, v]) => [k, q.labelCountCapped.get(k, v, LABEL_COUNT_CAP)?.n ?? 0]));
      labels.sort((x, y) => (size.get(x[0]) ?? 0) - (size.get(y[0]) ?? 0));
    }
    const { page, count, params, limit, offset } = buildListQuery(query, labels);
    const rows = limit === 0 ? [] : listStatement(page).all(...params, limit, offset);
    // A short, non-empty page (or an empty first page) already tells the total.
    const known = rows.length < limit && (rows.length > 0 || offset === 0);
    const total = known ? offset + rows.length : (listStatement(count).get(...params)?.n ?? 0);
    return { tasks: rows.map((r) => JSON.parse(r.body) as Task), total };
  }

  const store: SqliteStore = {
    kind: `sqlite:${path}`,
    path,
    leftoverProcesses: journal.leftovers,
    get failure() {
      return failure;
    },
    get commits() {
      return commits;
    },
    get syncs() {
      return syncs;
    },

    putTask(task) {
      const r = taskRow(task);
      const pending = staged.get(r.id);
      // A transition of a task whose insert is still staged: the staged row becomes this one.
      if (pending && sameIndexed(pending.indexed, r.indexed)) stage(r);
      else write(() => storeRow(r, task.spec.labels));
      remember(r);
    },

    insertTask(task) {
      // Stored recently (so not new after all), or labels to write with it: `putTask`'s way.
      if (recent.has(task.metadata.id) || Object.keys(task.spec.labels).length > 0) return store.putTask(task);
      // One statement (atomic by itself), staged: no lookup of an old row, no savepoint.
      const r = taskRow(task);
      stage(r);
      remember(r);
    },

    getTask(id) {
      assertOpen();
      const cached = recent.get(id);
      if (cached) return JSON.parse(cached.json) as Task;
      settle();
      const row = q.getTask.get(id);
      return row ? (JSON.parse(row.body) as Task) : undefined;
    },

    getTaskJson(id) {
      assertOpen();
      const cached = recent.get(id);
      if (cached) return { json: cached.json, owner: cached.owner };
      settle();
      const row = q.getTaskJson.get(id);
      return row ? { json: row.body, owner: row.owner ?? undefined } : undefined;
    },

    listTasks,

    activeTasks() {
      live();
      return q.activeTasks.all().map((r) => JSON.parse(r.body) as Task);
    },

    deleteTask(id) {
      recent.delete(id);
      write(() => q.deleteTask.run(id));
    },

    putRun(taskId, run) {
      // A run just started: its process goes to the journal at once, the run to the next commit.
      if (run.process !== undefined && run.finishedAt === undefined) journal.append(run.process);
      const body = JSON.stringify(run);
      write(() => q.putRun.run(taskId, run.attempt, body));
    },

    listRuns(taskId) {
      live();
      return q.listRuns.all(taskId).map((r) => JSON.parse(r.body) as StoredRun);
    },

    trimRuns(taskId, keep) {
      write(() => q.trimRuns.run(taskId, Math.max(0, Math.floor(keep))));
    },

    appendLogs(taskId, records) {
      live();
      // A task written recently exists (deleting one drops it from `recent`); others are looked up.
      if (records.length === 0 || (!recent.has(taskId) && !q.taskExists.get(taskId))) return;
      // Rows of consecutive ids, at most LOG_BATCH_MAX events and about LOG_BATCH_CHARS of lines each (log-rows.ts).
      const rows: [number, number, string][] = [];
      for (let i = 0; i < records.length; ) {
        const origin = (records[i] as LogRecord).id;
        let j = i + 1;
        let chars = lineChars((records[i] as LogRecord).event);
        for (; j < records.length && j - i < LOG_BATCH_MAX && chars < LOG_BATCH_CHARS; j++) {
          const r = records[j] as LogRecord;
          if (r.id !== origin + (j - i)) break;
          chars += lineChars(r.event);
        }
        const events: LogEvent[] = new Array(j - i);
        for (let k = i; k < j; k++) events[k - i] = (records[k] as LogRecord).event;
        rows.push([origin, origin + (j - i) - 1, encodeLogRow(events)]);
        i = j;
      }
      // The usual case (a flush of a task whose ids only grow): one row with nothing stored in its range, one
      // INSERT, atomic by itself.
      const [only] = rows;
      const overlapping = rows.length === 1 && only !== undefined ? q.overlappingLogs.all(taskId, only[0], only[1]) : undefined;
      if (only !== undefined && overlapping?.length === 0) {
        write(() => q.insertLogBatch.run(taskId, only[0], only[0], only[1], only[2]));
        return;
      }
      write(() =>
        atomically(() => {
          for (const [first, last, body] of rows) {
            clearLogRange(taskId, first, last, rows.length === 1 ? overlapping : undefined);
            q.insertLogBatch.run(taskId, first, first, last, body);
          }
        }),
      );
    },

    loadLogs(taskId, limit) {
      live();
      if (limit <= 0) return [];
      const want = Math.floor(limit);
      // Newest rows first until they hold `want` events; each row's part still stored is [first, last].
      const parts: LogRecord[][] = [];
      let have = 0;
      for (const row of q.loadLogs.iterate(taskId)) {
        const events = decodeLogRow(row.body);
        const from = Math.max(row.first, row.last - (want - have) + 1);
        const part: LogRecord[] = [];
        for (let id = from; id <= row.last; id++) part.push({ id, event: events[id - row.origin] as LogEvent });
        parts.push(part);
        have += part.length;
        if (have >= want) break;
      }
      return parts.reverse().flat();
    },

    trimLogs(taskId, beforeId) {
      const from = Math.ceil(beforeId); // ids are integers: the first one kept
      write(() =>
        atomically(() => {
          q.trimLogBatches.run(taskId, from);
          q.trimLogBatchStart.run(taskId, from);
        }),
      );
    },

    sweepCandidates(olderThan, keep, limit = Number.POSITIVE_INFINITY) {
      live();
      const counts = q.terminalCounts.get(olderThan);
      if (!counts) return { ids: [], candidates: 0, terminal: 0 };
      // Both sets are prefixes of the finish order (updated_at, id): take the longer one.
      const n = Math.max(counts.expired, counts.total - Math.max(0, keep));
      const take = Math.min(n, limit);
      return { ids: take > 0 ? q.oldestTerminal.all(take).map((r) => r.id) : [], candidates: n, terminal: counts.total };
    },

    getMeta(key) {
      live();
      return q.getMeta.get(key)?.value;
    },

    setMeta(key, value) {
      write(() => q.setMeta.run(key, value));
    },

    stats() {
      live();
      const row = q.stats.get();
      return { tasks: row?.tasks ?? 0, runs: row?.runs ?? 0, logEvents: row?.logEvents ?? 0 };
    },

    flush() {
      if (closed) return Promise.reject(storeClosed());
      const b = batch;
      if (!b) return durable();
      if (flushCommit === "now") {
        commit();
        return durable();
      }
      const done = waitIn(b.waiters);
      if (flushCommit === "next-tick") {
        b.tick ??= setImmediate(() => {
          if (batch === b) commitDue(b);
        });
      }
      return done;
    },

    async close() {
      if (closed) return;
      commit();
      closed = true;
      while (syncing) {
        idle = Promise.withResolvers<void>();
        await idle.promise;
      }
      for (const stmt of listCache.values()) stmt.finalize();
      for (const stmt of statements) stmt.finalize();
      db.close(); // checkpoints the WAL into the database, with fsyncs
      openInProcess.delete(path);
      journal.close();
      if (walFd !== undefined) closeSync(walFd);
      if (failure) throw failure;
    },
  };
  return store;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
