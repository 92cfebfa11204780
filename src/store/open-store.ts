/**
 * The one entry point the agent uses: `--data-dir` in, a ready `Store` out.
 */
import { accessSync, constants, mkdirSync, readdirSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { createMemoryStore } from "./memory-store.ts";
import { createSqliteStore, type SqliteStoreOptions } from "./sqlite-store.ts";
import type { Store } from "./store.ts";

/** File name of the database inside the data dir. */
export const DB_FILE_NAME = "tasklane.db";

/** Tuning passed through to the SQLite store. */
export type OpenStoreOptions = Omit<SqliteStoreOptions, "path">;

/**
 * `":memory:"` gives the in-memory store; anything else is a data dir that is
 * created (mode 0700) if missing and holds `tasklane.db`. Throws an `Error`
 * with a one-line message naming the path and the reason when the dir cannot
 * be used, the database is unreadable, corrupt or from a newer tasklane, or
 * another agent holds it. An existing file it cannot read is never modified.
 */
export function openStore(dataDir: string, opts: OpenStoreOptions = {}): Store {
  if (dataDir === ":memory:") return createMemoryStore();
  const dir = resolve(dataDir);
  try {
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (err) {
      if (errnoOf(err) !== "ENOENT") throw err;
      // Missing parents get the usual mode (as mkdir -p makes them); only the data dir itself is private.
      mkdirSync(dirname(dir), { recursive: true });
      mkdirSync(dir, { mode: 0o700 });
    }
  } catch (err) {
    const code = errnoOf(err);
    if (code !== "EEXIST") throw new Error(`cannot open store: cannot create data dir ${dir}: ${reasonOf(code, err)}`);
  }
  if (!statSync(dir).isDirectory()) throw new Error(`cannot open store: data dir ${dir} is a file, not a directory`);
  try {
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch (err) {
    throw new Error(`cannot open store: data dir ${dir} is not writable (${errnoOf(err) ?? "access denied"})`);
  }
  refuseLostDatabase(dir);
  return createSqliteStore({ ...opts, path: join(dir, DB_FILE_NAME) });
}

/**
 * SQLite opens a 0-byte or missing file as a new, empty database. Next to
 * script files of earlier tasks that means the database was truncated,
 * replaced or removed (a restore gone wrong, a full disk at the wrong moment):
 * starting would forget every task without a word, so refuse, saying how to
 * go on.
 */
function refuseLostDatabase(dir: string): void {
  const db = join(dir, DB_FILE_NAME);
  let state: string;
  try {
    if (statSync(db).size !== 0) return;
    state = "is empty (0 bytes)";
  } catch (err) {
    if (errnoOf(err) !== "ENOENT") return; // unreadable: reported by the open
    state = "is missing";
  }
  let scripts: string[];
  try {
    scripts = readdirSync(join(dir, "scripts"));
  } catch {
    return;
  }
  if (scripts.length === 0) return;
  throw new Error(
    `cannot open store: ${db} ${state} but ${join(dir, "scripts")} holds ${scripts.length} script file(s) of earlier tasks: ` +
      "the database was truncated, replaced or removed; restore it from a backup, or move the scripts dir aside to start with an empty store",
  );
}

function errnoOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

function reasonOf(code: string | undefined, err: unknown): string {
  switch (code) {
    case "ENOTDIR":
      return "a parent path is not a directory (ENOTDIR)";
    case "EACCES":
    case "EPERM":
      return `permission denied (${code})`;
    case "EROFS":
      return "read-only file system (EROFS)";
    default:
      return err instanceof Error ? err.message : String(err);
  }
}
