/**
 * Query-string parsing for `GET /api/v1/tasks` and the event stream: strict,
 * so a typo gets a 400 instead of silently matching everything.
 */
import { clip, invalid } from "../errors.ts";
import { LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT, PHASES, type Phase, type TaskQuery } from "../tasks/model.ts";

const LIST_KEYS = new Set(["slot", "status", "label", "owner", "createdAfter", "createdBefore", "order", "limit", "offset"]);

function int(params: URLSearchParams, name: string, min: number, max: number): number | undefined {
  const raw = params.get(name);
  if (raw === null) return undefined;
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    throw invalid(`${name}: must be an integer ${min}..${max}, got ${JSON.stringify(raw)}`);
  }
  return Number(raw);
}

/** Parse repeated `label=k=v` parameters (AND). A key given twice must name the same value: a task has one value per key. */
export function parseLabels(params: URLSearchParams): Record<string, string> | undefined {
  const all = params.getAll("label");
  if (all.length === 0) return undefined;
  const pairs = all.map((l) => {
    const eq = l.indexOf("=");
    if (eq <= 0) throw invalid(`label: must be key=value, got ${JSON.stringify(l)}`);
    return [l.slice(0, eq), l.slice(eq + 1)] as const;
  });
  // fromEntries defines own properties: a key such as "__proto__" filters like any other.
  const labels: Record<string, string> = Object.fromEntries(pairs);
  for (const [k, v] of pairs) {
    if (labels[k] !== v) {
      throw invalid(`label: key ${JSON.stringify(clip(k))} given with two values (${JSON.stringify(clip(v))} and ${JSON.stringify(clip(labels[k]!))}); a task has one value per key`);
    }
  }
  return labels;
}

/** Query parameters that may repeat (every other one is read once: a repeat would be silently ignored). */
const REPEATABLE = new Set(["label"]);

/**
 * Reject a query parameter outside `allowed` (a typo such as `?folow=false`
 * must not be ignored), and a repeat of one that takes a single value.
 */
export function checkQueryKeys(params: URLSearchParams, allowed: ReadonlySet<string>): void {
  const seen = new Set<string>();
  for (const key of params.keys()) {
    if (!allowed.has(key)) {
      const list = allowed.size === 0 ? "this route takes none" : `allowed: ${[...allowed].join(", ")}`;
      throw invalid(`unknown query parameter ${JSON.stringify(clip(key))}; ${list}`);
    }
    if (seen.has(key) && !REPEATABLE.has(key)) throw invalid(`${key}: given more than once; it takes one value`);
    seen.add(key);
  }
}

/** Parse the task-list query of CONTRACT §2. */
export function parseListQuery(params: URLSearchParams): TaskQuery {
  checkQueryKeys(params, LIST_KEYS);
  const q: TaskQuery = {
    order: "asc",
    limit: int(params, "limit", 1, LIST_MAX_LIMIT) ?? LIST_DEFAULT_LIMIT,
    offset: int(params, "offset", 0, Number.MAX_SAFE_INTEGER) ?? 0,
  };
  const slot = params.get("slot");
  if (slot !== null) q.slot = slot;
  const status = params.get("status");
  if (status !== null) {
    if (!(PHASES as readonly string[]).includes(status)) {
      throw invalid(`status: must be one of ${PHASES.map((p) => `"${p}"`).join(", ")}, got ${JSON.stringify(status)}`);
    }
    q.status = status as Phase;
  }
  const labels = parseLabels(params);
  if (labels) q.labels = labels;
  const owner = params.get("owner");
  if (owner !== null) q.owner = owner;
  const after = int(params, "createdAfter", 0, Number.MAX_SAFE_INTEGER);
  if (after !== undefined) q.createdAfter = after;
  const before = int(params, "createdBefore", 0, Number.MAX_SAFE_INTEGER);
  if (before !== undefined) q.createdBefore = before;
  const order = params.get("order");
  if (order !== null) {
    if (order !== "asc" && order !== "desc") throw invalid(`order: must be "asc" or "desc", got ${JSON.stringify(order)}`);
    q.order = order;
  }
  return q;
}

/** The filters of a watch stream (`slot`, repeated `label=k=v`), after checking the query's keys against `allowed`. */
export function parseWatchFilter(params: URLSearchParams, allowed: ReadonlySet<string>): { slot?: string; labels?: Record<string, string> } {
  checkQueryKeys(params, allowed);
  const filter: { slot?: string; labels?: Record<string, string> } = {};
  const slot = params.get("slot");
  if (slot !== null) filter.slot = slot;
  const labels = parseLabels(params);
  if (labels) filter.labels = labels;
  return filter;
}

/** Parse a non-negative integer query parameter or header value used as a resume cursor. */
export function parseCursor(name: string, raw: string | null): number | undefined {
  if (raw === null || raw === "") return undefined;
  if (!/^\d+$/.test(raw)) throw invalid(`${name}: must be a non-negative integer, got ${JSON.stringify(raw)}`);
  return Number(raw);
}
