/** `tasklane events`: watch task changes. */
import type { WatchItem } from "../api-client.ts";
import { usage } from "../cli-error.ts";
import type { Command, CommandContext } from "../command.ts";
import { exitCell, type Style } from "../format.ts";
import { intFlag, keyValueFlag } from "../units.ts";

function clock(at: number): string {
  const d = new Date(at);
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function humanLine(item: WatchItem, now: number, style: Style): string {
  switch (item.type) {
    case "task": {
      const t = item.task;
      const s = t.status;
      const extra = [`attempt=${s.attempt}`, s.exitCode !== undefined || s.error ? `exit=${exitCell(s.exitCode, s.error)}` : "", s.error ? `error=${JSON.stringify(s.error)}` : ""];
      return [clock(t.metadata.updatedAt), t.metadata.id, t.spec.slot, style.phase(s.phase, s.phase.padEnd(9)), ...extra.filter(Boolean)].join("  ");
    }
    case "deleted":
      return `${clock(now)}  ${item.taskId}  ${style.dim("deleted")}`;
    case "lagged":
      return `${clock(now)}  ${style.yellow(`lagged: ${item.skipped} changes skipped`)}`;
  }
}

function jsonLine(item: WatchItem): string {
  switch (item.type) {
    case "task":
      return JSON.stringify({ event: "task", id: item.id, task: item.task });
    case "deleted":
      return JSON.stringify({ event: "deleted", id: item.id, taskId: item.taskId });
    case "lagged":
      return JSON.stringify({ event: "lagged", id: item.id, skipped: item.skipped });
  }
}

async function watch(ctx: CommandContext): Promise<number> {
  const afterRaw = ctx.flags.string("after");
  const labels = ctx.flags.list("label");
  for (const l of labels) keyValueFlag("label", l);
  const stream = await ctx.api().events({
    slot: ctx.flags.string("slot"),
    labels,
    after: afterRaw === undefined ? undefined : intFlag("after", afterRaw, 0),
    signal: ctx.signal,
  });
  for await (const item of stream) {
    await ctx.out.line(ctx.json ? jsonLine(item) : humanLine(item, ctx.now(), ctx.style));
    if (ctx.out.closed) return 0;
  }
  await ctx.err.line("tasklane: the agent ended the event stream");
  return 0;
}

/** Stream task changes, one line per change, until interrupted. */
export const eventsCommand: Command = {
  name: "events",
  summary: "watch task changes, one line per change (Ctrl-C to stop)",
  usage: "[flags]",
  details: [
    "Starts with the recent changes the agent retained, then streams live ones.",
    "Each line: time, id, slot, phase, attempt, exit, error; deletions say \"deleted\".",
    "With --json, one JSON object per line: {\"event\": \"task\"|\"deleted\"|\"lagged\", \"id\": N, …};",
    "--after N resumes after change N.",
  ].join("\n"),
  flags: [
    { name: "slot", kind: "string", value: "NAME", help: "only tasks of this slot" },
    { name: "label", short: "l", kind: "list", value: "K=V", help: "only tasks with this label (repeatable)" },
    { name: "after", kind: "string", value: "N", help: "start after change number N" },
  ],
  json: true,
  examples: ["tasklane events --slot backup"],
  async run(ctx) {
    if (ctx.positionals.length > 0) throw usage(`events takes no arguments, got ${JSON.stringify(ctx.positionals[0])}`);
    return watch(ctx);
  },
};
