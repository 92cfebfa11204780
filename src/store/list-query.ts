/**
 * SQL for `listTasks`: one statement for the page, one for the total, same
 * filters. Pure, so the shapes are easy to read and to cache by text.
 */
import type { SQLQueryBindings } from "bun:sqlite";
import type { TaskQuery } from "../tasks/model.ts";

/** The two statements of a list query and their bindings (the page adds `limit, offset`). */
export interface ListQuery {
  page: string;
  count: string;
  params: SQLQueryBindings[];
  limit: number;
  offset: number;
}

/**
 * With only label and creation-time filters, walk the first label's
 * (key, value, created_at) index in order and probe the other labels by
 * primary key: the page reads `limit` index entries and as many task rows.
 * Otherwise SQLite drives from the best tasks index and probes each label.
 * `labels` is `query.labels` as entries, rarest first when the caller knows.
 */
export function buildListQuery(query: TaskQuery, labels: readonly (readonly [string, string])[]): ListQuery {
  const first = labels[0];
  const byLabel = first !== undefined && query.status === undefined && query.slot === undefined && query.owner === undefined;
  const t = byLabel ? "l" : "tasks"; // alias holding created_at
  const idCol = byLabel ? "l.task_id" : "tasks.id";
  const where: string[] = [];
  const params: SQLQueryBindings[] = [];
  if (first && byLabel) {
    where.push("l.key = ?", "l.value = ?");
    params.push(first[0], first[1]);
  }
  if (query.status !== undefined) {
    where.push("tasks.phase = ?");
    params.push(query.status);
  }
  if (query.slot !== undefined) {
    where.push("tasks.slot = ?");
    params.push(query.slot);
  }
  if (query.owner !== undefined) {
    where.push("tasks.owner = ?");
    params.push(query.owner);
  }
  if (query.createdAfter !== undefined) {
    where.push(`${t}.created_at > ?`);
    params.push(query.createdAfter);
  }
  if (query.createdBefore !== undefined) {
    where.push(`${t}.created_at < ?`);
    params.push(query.createdBefore);
  }
  for (const [key, value] of byLabel ? labels.slice(1) : labels) {
    where.push(`EXISTS (SELECT 1 FROM task_labels x WHERE x.task_id = ${idCol} AND x.key = ? AND x.value = ?)`);
    params.push(key, value);
  }
  const filter = where.length > 0 ? ` WHERE ${where.join(" AND ")}` : "";
  // CROSS JOIN pins the loop order: label index outside, one task row per page entry inside.
  const from = byLabel ? "task_labels l CROSS JOIN tasks ON tasks.id = l.task_id" : "tasks";
  const dir = query.order === "desc" ? "DESC" : "ASC";
  return {
    page: `SELECT tasks.body FROM ${from}${filter} ORDER BY ${t}.created_at ${dir}, ${idCol} ${dir} LIMIT ? OFFSET ?`,
    count: `SELECT count(*) AS n FROM ${byLabel ? "task_labels l" : "tasks"}${filter}`,
    params,
    limit: Math.max(0, Math.floor(query.limit)),
    offset: Math.max(0, Math.floor(query.offset)),
  };
}
