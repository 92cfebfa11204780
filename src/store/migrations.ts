/**
 * Ordered schema migrations of the SQLite store. Migration `n` (1-based)
 * brings a database from `PRAGMA user_version = n - 1` to `n`. Never edit a
 * released migration: append a new one.
 */
import type { Database } from "bun:sqlite";

/**
 * One schema step: plain SQL, run inside the migration transaction. An empty
 * `sql` is a change of what rows may hold with no DDL: the version bump alone
 * keeps an older build from reading rows it does not understand.
 */
export interface Migration {
  readonly description: string;
  readonly sql: string;
}

/** Phases swept by retention; the partial index below and its queries must spell them identically. */
export const TERMINAL_PHASES_SQL = "('succeeded','failed','timeout','canceled','exhausted')";

/** Every migration in order; the schema version is the array length. */
export const MIGRATIONS: readonly Migration[] = [
  {
    description: "base schema",
    sql: `
      CREATE TABLE tasks (
        id TEXT PRIMARY KEY NOT NULL,
        slot TEXT NOT NULL,
        phase TEXT NOT NULL,
        owner TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        labels TEXT NOT NULL,
        body TEXT NOT NULL
      );
      CREATE INDEX tasks_phase_slot_created ON tasks (phase, slot, created_at, id);
      CREATE INDEX tasks_slot_created ON tasks (slot, created_at, id);
      CREATE INDEX tasks_created ON tasks (created_at, id);
      CREATE INDEX tasks_owner_created ON tasks (owner, created_at, id);
      CREATE TABLE task_labels (
        task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (task_id, key)
      ) WITHOUT ROWID;
      CREATE INDEX task_labels_key_value ON task_labels (key, value, task_id);
      CREATE TABLE runs (
        task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
        attempt INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (task_id, attempt)
      ) WITHOUT ROWID;
      CREATE TABLE log_events (
        task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
        id INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (task_id, id)
      ) WITHOUT ROWID;
      CREATE TABLE meta (
        key TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL
      ) WITHOUT ROWID;
    `,
  },
  {
    // Label filters walk task_labels in creation order (bench/store-list.ts: 100 ms -> 0.5 ms
    // for a common label over 100 000 tasks), so labels carry their task's created_at.
    description: "task_labels in creation order; indexes for status-only listing and the retention sweep",
    sql: `
      CREATE TABLE task_labels_v2 (
        task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (task_id, key)
      ) WITHOUT ROWID;
      INSERT INTO task_labels_v2 (task_id, key, value, created_at)
        SELECT l.task_id, l.key, l.value, t.created_at FROM task_labels l JOIN tasks t ON t.id = l.task_id;
      DROP TABLE task_labels;
      ALTER TABLE task_labels_v2 RENAME TO task_labels;
      CREATE INDEX task_labels_key_value_created ON task_labels (key, value, created_at, task_id);
      CREATE INDEX tasks_phase_created ON tasks (phase, created_at, id);
      CREATE INDEX tasks_terminal_updated ON tasks (updated_at, id, phase) WHERE phase IN ${TERMINAL_PHASES_SQL};
    `,
  },
  {
    // One row per batch of consecutive log events instead of one per event: a chatty task's flush is a
    // few INSERTs of JSON arrays, not one row (and one JSON text) per line (bench/README.md, benchmark 3).
    // origin = id of body[0]; [first_id, last_id] is the part still stored (a trim narrows it).
    description: "log events stored in batches",
    sql: `
      CREATE TABLE log_batches (
        task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
        origin INTEGER NOT NULL,
        first_id INTEGER NOT NULL,
        last_id INTEGER NOT NULL,
        body TEXT NOT NULL
      );
      CREATE INDEX log_batches_task_last ON log_batches (task_id, last_id);
      INSERT INTO log_batches (task_id, origin, first_id, last_id, body)
        SELECT task_id, id, id, id, '[' || body || ']' FROM log_events ORDER BY task_id, id;
      DROP TABLE log_events;
    `,
  },
  {
    // A log row's body may pack runs of chunk events (src/store/log-rows.ts), about half the bytes per line.
    // Rows written before read as they are; an older build would misread the new ones, so the version moves.
    description: "log rows pack runs of output lines",
    sql: "",
  },
];

/** The schema version this build writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** Read `PRAGMA user_version`. */
export function schemaVersion(db: Database): number {
  const row = db.query<{ user_version: number }, []>("PRAGMA user_version").get();
  return row?.user_version ?? 0;
}

/**
 * Bring `db` up to the newest version in one transaction: either every
 * missing migration applies or none does. A database from a newer build is
 * refused untouched. Returns the versions before and after.
 */
export function migrate(
  db: Database,
  label: string,
  migrations: readonly Migration[] = MIGRATIONS,
): { from: number; to: number } {
  const target = migrations.length;
  const from = schemaVersion(db);
  if (from > target) {
    throw new Error(
      `cannot open store: ${label} has schema version ${from}, newer than version ${target} supported by this tasklane; upgrade tasklane`,
    );
  }
  if (from === target) return { from, to: from };
  db.run("BEGIN IMMEDIATE");
  try {
    for (let v = from; v < target; v++) {
      const m = migrations[v];
      if (!m) throw new Error(`migration ${v + 1} is missing`);
      try {
        if (m.sql.trim() !== "") db.run(m.sql);
      } catch (err) {
        throw new Error(`cannot open store: ${label}: migration ${v + 1} (${m.description}) failed: ${err instanceof Error ? err.message : String(err)}`, {
          cause: err,
        });
      }
    }
    // user_version is part of the database header, so it commits or rolls back with the DDL.
    db.run(`PRAGMA user_version = ${target}`);
    db.run("COMMIT");
  } catch (err) {
    if (db.inTransaction) db.run("ROLLBACK");
    throw err;
  }
  return { from, to: target };
}
