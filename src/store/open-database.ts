/**
 * Opening the SQLite file safely: refuse what is not ours before SQLite
 * touches it, take the exclusive lock, migrate, switch to WAL, and turn every
 * failure into one line that names the file and the reason.
 */
import { Database } from "bun:sqlite";
import { accessSync, chmodSync, closeSync, constants, lstatSync, openSync, readlinkSync, readSync, realpathSync, statSync, type Stats } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { migrate } from "./migrations.ts";

const SQLITE_MAGIC = "SQLite format 3\0";

/** Connection settings applied at open. */
export interface OpenDatabaseOptions {
  synchronous?: "FULL" | "NORMAL";
  busyTimeoutMs?: number;
}

/** Absolute path with the directory part resolved through symlinks, so one file has one key. */
export function canonicalPath(path: string): string {
  const abs = resolve(path);
  try {
    return join(realpathSync(dirname(abs)), basename(abs));
  } catch {
    return abs;
  }
}

/** What a path that is not a regular file is, for a message: "a directory", "a FIFO", … */
function kindOf(st: Stats): string {
  if (st.isDirectory()) return "a directory";
  if (st.isFIFO()) return "a FIFO";
  if (st.isSocket()) return "a socket";
  if (st.isCharacterDevice()) return "a character device";
  if (st.isBlockDevice()) return "a block device";
  return "not a regular file";
}

/**
 * The file at `path` (through symlinks), or `undefined` when nothing is there;
 * refused when it is a symlink to nothing or not a regular file. SQLite itself
 * only says "unable to open database file" or "disk I/O error" for these.
 */
function regularFileAt(path: string, what: string): Stats | undefined {
  let st: Stats;
  try {
    st = statSync(path);
  } catch (err) {
    if (!isErrno(err, "ENOENT")) throw new Error(`cannot open store: cannot read ${path}: ${messageOf(err)}`);
    let link: string | undefined;
    try {
      link = lstatSync(path).isSymbolicLink() ? readlinkSync(path) : undefined;
    } catch {
      link = undefined;
    }
    if (link !== undefined) throw new Error(`cannot open store: ${path} is a symbolic link to a missing file (${link})`);
    return undefined;
  }
  if (!st.isFile()) throw new Error(`cannot open store: ${path} is ${kindOf(st)}, not ${what}; move it away`);
  return st;
}

/** SQLite's files beside the database: write-ahead log, shared-memory index, rollback journal. */
const SIDECARS: readonly [suffix: string, what: string][] = [
  ["-wal", "the store's write-ahead log"],
  ["-shm", "the store's WAL index"],
  ["-journal", "the store's rollback journal"],
];

/**
 * Refuse, before SQLite touches it, a path that is a directory or another
 * non-regular file, a symlink to nothing, or a non-empty file without the
 * SQLite header (an empty file is a valid empty database); and the same for
 * the files SQLite keeps beside it.
 */
function assertSqliteFile(path: string): void {
  const st = regularFileAt(path, "a database file");
  const sidecars = SIDECARS.map(([suffix, what]) => [path + suffix, regularFileAt(path + suffix, what)] as const);
  // SQLite reports a file it may read but not write as a "disk I/O error", and one it may not read as
  // "unable to open": name the reason (the agent's user, e.g. after a chown of the dir alone).
  for (const [file, exists] of [[path, st], ...sidecars] as const) {
    if (exists === undefined) continue;
    try {
      accessSync(file, constants.R_OK | constants.W_OK);
    } catch (err) {
      throw new Error(`cannot open store: ${file} is not readable and writable by this user (${(err as NodeJS.ErrnoException).code ?? "access denied"})`);
    }
  }
  if (st === undefined || st.size === 0) return;
  const header = Buffer.alloc(SQLITE_MAGIC.length);
  const fd = openSync(path, "r");
  try {
    readSync(fd, header, 0, header.length, 0);
  } finally {
    closeSync(fd);
  }
  if (header.toString("latin1") !== SQLITE_MAGIC) {
    throw new Error(`cannot open store: ${path} is not a SQLite database (file is not a database); left untouched`);
  }
}

/**
 * The database and its WAL hold task env values and script bodies: owner-only
 * (0600) whatever the umask or the data dir's mode. A new file is created so;
 * an existing one is narrowed. SQLite gives the WAL it creates the database
 * file's mode.
 */
function ownerOnly(path: string): void {
  try {
    closeSync(openSync(path, "wx", 0o600));
    return;
  } catch {
    // it exists: narrowed below
  }
  for (const file of [path, `${path}-wal`, `${path}-shm`]) {
    try {
      if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
    } catch {
      // missing, or not ours to change: SQLite reports what matters when it opens it
    }
  }
}

/** Bytes the WAL file is cut back to after a checkpoint that restarts it (`PRAGMA journal_size_limit`). */
const WAL_SIZE_LIMIT = 8 * 1024 * 1024;

/**
 * Open `path` (created if missing) with the exclusive lock held until close,
 * migrated to the current schema, in WAL mode. Throws a one-line `Error`.
 */
export function openDatabase(path: string, opts: OpenDatabaseOptions): Database {
  assertSqliteFile(path);
  ownerOnly(path);
  const busyTimeoutMs = Math.max(0, Math.floor(opts.busyTimeoutMs ?? 2000));
  const db = lockDatabase(path, busyTimeoutMs);
  try {
    db.run(`PRAGMA busy_timeout = ${busyTimeoutMs}`);
    migrate(db, path); // checks the version before anything is written
    const mode = db.prepare<{ journal_mode: string }, []>("PRAGMA journal_mode = WAL");
    const journal = mode.get()?.journal_mode;
    mode.finalize();
    if (journal !== "wal") throw new Error(`cannot open store: ${path}: could not enable WAL (journal_mode=${journal})`);
    db.run(`PRAGMA synchronous = ${opts.synchronous ?? "FULL"}`);
    db.run("PRAGMA foreign_keys = ON");
    // A burst can grow the WAL far past what steady work needs (30 MB against ≈ 5 MB measured); after
    // the next checkpoint that restarts it, the file is cut back to this size.
    db.run(`PRAGMA journal_size_limit = ${WAL_SIZE_LIMIT}`);
    return db;
  } catch (err) {
    db.close();
    throw describeOpenError(path, err);
  }
}

/**
 * Open `path` and take its exclusive lock, kept until close (locking mode
 * EXCLUSIVE: a second agent cannot open the file meanwhile). Retried until
 * `busyTimeoutMs` has passed, each time on a new connection after a short
 * random pause: in this locking mode SQLite keeps the shared lock a failed
 * attempt took, so two agents opening at the same moment, each waiting in
 * SQLite's busy handler, kept each other out and were both refused.
 */
function lockDatabase(path: string, busyTimeoutMs: number): Database {
  const deadline = performance.now() + busyTimeoutMs;
  for (;;) {
    let db: Database | undefined;
    try {
      db = new Database(path, { create: true, readwrite: true, strict: true });
      db.run("PRAGMA busy_timeout = 0");
      db.run("PRAGMA locking_mode = EXCLUSIVE");
      db.run("BEGIN EXCLUSIVE");
      db.run("COMMIT");
      return db;
    } catch (err) {
      db?.close();
      if (!isBusy(err) || performance.now() >= deadline) throw describeOpenError(path, err);
      Bun.sleepSync(2 + Math.random() * 18);
    }
  }
}

function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED"));
}

/** Turn a SQLite open failure into one line that names the file and the reason. */
function describeOpenError(path: string, err: unknown): Error {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== "string" || !code.startsWith("SQLITE_")) return err instanceof Error ? err : new Error(String(err));
  const reason = messageOf(err);
  const line = (() => {
    switch (code.replace(/^(SQLITE_[A-Z]+).*$/, "$1")) {
      case "SQLITE_BUSY":
      case "SQLITE_LOCKED":
        return `${path} is in use by another tasklane agent (${reason})`;
      case "SQLITE_NOTADB":
        return `${path} is not a SQLite database (${reason}); left untouched`;
      case "SQLITE_CORRUPT":
        return `${path} is corrupt (${reason}); left untouched`;
      case "SQLITE_READONLY":
      case "SQLITE_PERM":
        return `${path} is not writable (${reason})`;
      default:
        return `${path}: ${reason}`;
    }
  })();
  return new Error(`cannot open store: ${line}`, { cause: err });
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function isErrno(err: unknown, code: string): boolean {
  return (err as { code?: unknown } | null)?.code === code;
}
