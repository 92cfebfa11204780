/**
 * The one entry point the agent uses: `--data-dir` in, a ready `Store` out.
 */
import { accessSync, constants, mkdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
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
    mkdirSync(dir, { recursive: true, mode: 0o700 });
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
  return createSqliteStore({ ...opts, path: join(dir, DB_FILE_NAME) });
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
