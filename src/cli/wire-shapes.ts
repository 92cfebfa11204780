/**
 * Minimal shape checks of the agent's answers (CONTRACT §1–§3), so that a
 * server that is not a tasklane agent (or answers another route) is reported
 * as such instead of crashing a printer. They check what the CLI reads, not
 * every field: loading the TypeBox schemas of `tasks/model.ts` at run time
 * would make every client command start several times slower.
 */
import type { LogEvent, Task, TaskRun } from "../tasks/model.ts";
import { PHASES } from "./wire-values.ts";

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

const isNum = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
const isStr = (v: unknown): v is string => typeof v === "string";
const optNum = (v: unknown) => v === undefined || isNum(v);
const optStr = (v: unknown) => v === undefined || isStr(v);
const isPhase = (v: unknown) => (PHASES as readonly unknown[]).includes(v);

function isMode(m: unknown): boolean {
  if (!isObject(m)) return false;
  if (isObject(m.command)) return isStr(m.command.command) && Array.isArray(m.command.args);
  if (isObject(m.script)) {
    const rt = m.script.runtime;
    return Array.isArray(m.script.args) && (isStr(rt) || (isObject(rt) && isObject(rt.custom) && isStr(rt.custom.command)));
  }
  return false;
}

/** A task resource, as far as the CLI reads it. */
export function isTask(v: unknown): v is Task {
  if (!isObject(v) || !isObject(v.metadata) || !isObject(v.spec) || !isObject(v.status)) return false;
  const { metadata: m, spec: s, status: st } = v;
  const sub = isObject(s.kind) ? s.kind.subprocess : undefined;
  return (
    isStr(m.id) &&
    isNum(m.createdAt) &&
    isNum(m.updatedAt) &&
    isStr(s.slot) &&
    isObject(sub) &&
    isMode(sub.mode) &&
    Array.isArray(sub.env) &&
    isNum(s.timeout) &&
    isObject(s.restart) &&
    isStr(s.restart.type) &&
    isObject(s.backoff) &&
    isObject(s.labels) &&
    isPhase(st.phase) &&
    isNum(st.attempt) &&
    optNum(st.exitCode) &&
    optStr(st.error)
  );
}

/** One entry of a run history. */
export function isTaskRun(v: unknown): v is TaskRun {
  return isObject(v) && isNum(v.attempt) && isPhase(v.phase) && isNum(v.startedAt) && optNum(v.finishedAt) && optNum(v.exitCode) && optStr(v.error);
}

/** `{"task": …}` of get / cancel / start / wait. */
export function taskAnswer(v: unknown): Task | undefined {
  return isObject(v) && isTask(v.task) ? v.task : undefined;
}

/** `{"runs": [...]}`. */
export function runsAnswer(v: unknown): TaskRun[] | undefined {
  return isObject(v) && Array.isArray(v.runs) && v.runs.every(isTaskRun) ? (v.runs as TaskRun[]) : undefined;
}

/** `{"tasks": [...], "total": N}`. */
export function listAnswer(v: unknown): { tasks: Task[]; total: number } | undefined {
  return isObject(v) && Array.isArray(v.tasks) && v.tasks.every(isTask) && isNum(v.total) ? { tasks: v.tasks as Task[], total: v.total } : undefined;
}

const ADMISSIONS = ["started", "queued", "replaced", "dropped"];

/** `{"task_id": "tsk_…", "admission": …}`. */
export function submitAnswer(v: unknown): { task_id: string; admission: "started" | "queued" | "replaced" | "dropped" } | undefined {
  return isObject(v) && isStr(v.task_id) && ADMISSIONS.includes(v.admission as string)
    ? { task_id: v.task_id, admission: v.admission as "started" | "queued" | "replaced" | "dropped" }
    : undefined;
}

/** `/api/v1/info`: an object with at least the agent's `version`. */
export function infoAnswer(v: unknown): Record<string, unknown> | undefined {
  return isObject(v) && isStr(v.version) ? v : undefined;
}

/**
 * A live-log event: the event, `"unknown"` for an object with a `type` this
 * client does not know (a newer agent; skipped), `undefined` for anything else.
 */
export function logEvent(v: unknown): LogEvent | "unknown" | undefined {
  if (!isObject(v) || !isStr(v.type)) return undefined;
  switch (v.type) {
    case "chunk":
      return isNum(v.attempt) && (v.stream === "stdout" || v.stream === "stderr") && isStr(v.line) ? (v as LogEvent) : undefined;
    case "runStarted":
      return isNum(v.attempt) && isNum(v.startedAt) ? (v as LogEvent) : undefined;
    case "runFinished":
      return isNum(v.attempt) && isNum(v.finishedAt) && optNum(v.exitCode) ? (v as LogEvent) : undefined;
    case "lagged":
      return isNum(v.skipped) ? (v as LogEvent) : undefined;
    default:
      return "unknown";
  }
}

/** `event: deleted` data: `{"id": "tsk_…"}`. */
export function deletedId(v: unknown): string | undefined {
  return isObject(v) && isStr(v.id) ? v.id : undefined;
}

/** `event: lagged` data of the watch stream: `{"skipped": N}`. */
export function skippedCount(v: unknown): number | undefined {
  return isObject(v) && isNum(v.skipped) ? v.skipped : undefined;
}
