/** `tasklane get`: one task in detail. */
import type { Task } from "../../tasks/model.ts";
import type { Command } from "../command.ts";
import { describeCommand, exitCell, formatDuration, formatFields, formatTime, type Style } from "../format.ts";
import { oneId } from "../task-ids.ts";

function describeRestart(t: Task): string {
  const r = t.spec.restart;
  if (r.type === "always") return `always (every ${formatDuration(r.intervalMs)})`;
  return r.type === "onFailure" ? "on-failure" : "never";
}

/** The human fields of a task, in reading order. */
export function taskFields(t: Task, now: number, style: Style): [string, string][] {
  const sp = t.spec.kind.subprocess;
  const s = t.status;
  const fields: [string, string][] = [
    ["ID", t.metadata.id],
    ["Slot", t.spec.slot],
    ["Phase", style.phase(s.phase)],
    ["Attempt", String(s.attempt)],
    ["Exit", exitCell(s.exitCode, s.error)],
  ];
  if (s.error) fields.push(["Error", s.error]);
  fields.push(["Command", describeCommand(t)]);
  if (sp.cwd) fields.push(["Cwd", sp.cwd]);
  if (sp.env.length > 0) fields.push(["Env", sp.env.map((e) => `${e.key}=${e.value}`).join(" ")]);
  if (!sp.failOnNonZero) fields.push(["Non-zero exit", "counts as success"]);
  const labels = Object.entries(t.spec.labels);
  if (labels.length > 0) fields.push(["Labels", labels.map(([k, v]) => `${k}=${v}`).join(", ")]);
  fields.push(
    ["Timeout", formatDuration(t.spec.timeout)],
    ["Restart", describeRestart(t)],
    ["Backoff", `${t.spec.backoff.jitter} jitter, ${formatDuration(t.spec.backoff.firstMs)} .. ${formatDuration(t.spec.backoff.maxMs)}, x${t.spec.backoff.factor}`],
    ["Admission", t.spec.admission],
  );
  if (t.spec.maxAttempts !== undefined) fields.push(["Max attempts", String(t.spec.maxAttempts)]);
  if (t.spec.killGraceMs !== undefined) fields.push(["Kill grace", formatDuration(t.spec.killGraceMs)]);
  if (t.spec.priority !== undefined) fields.push(["Priority", String(t.spec.priority)]);
  if (t.spec.hold) fields.push(["Hold", "yes"]);
  const r = t.spec.resources;
  if (r) {
    const parts = [
      r.memoryBytes !== undefined ? `memory ${r.memoryBytes} B` : "",
      r.cpuMillis !== undefined ? `cpu ${r.cpuMillis}m` : "",
      r.pids !== undefined ? `pids ${r.pids}` : "",
    ].filter(Boolean);
    fields.push(["Resources", parts.join(", ")]);
  }
  if (t.metadata.owner) fields.push(["Owner", t.metadata.owner]);
  fields.push(["Created", formatTime(t.metadata.createdAt, now)], ["Updated", formatTime(t.metadata.updatedAt, now)]);
  return fields;
}

/** Show one task. */
export const getCommand: Command = {
  name: "get",
  summary: "show one task",
  usage: "ID",
  details: "With --json, prints the task resource (metadata, spec, status).",
  flags: [],
  completes: "task-id",
  json: true,
  examples: ["tasklane get tsk_01JR8X6Q2V3W4Y5Z6A7B8C9D0E"],
  async run(ctx) {
    const task = await ctx.api().get(oneId(ctx.positionals));
    if (ctx.json) await ctx.out.line(JSON.stringify(task));
    else await ctx.out.line(formatFields(taskFields(task, ctx.now(), ctx.style)));
    return 0;
  },
};
