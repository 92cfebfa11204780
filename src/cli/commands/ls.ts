/** `tasklane ls`: list tasks as a table, newest first. */
import type { Phase } from "../../tasks/model.ts";
import { PHASES } from "../wire-values.ts";
import { usage } from "../cli-error.ts";
import type { Command } from "../command.ts";
import { exitCell, formatAge, formatTable } from "../format.ts";
import { intFlag, keyValueFlag } from "../units.ts";

/** List tasks (ID, SLOT, PHASE, ATTEMPT, EXIT, AGE), newest first. */
export const lsCommand: Command = {
  name: "ls",
  summary: "list tasks, newest first",
  usage: "[flags]",
  details: "Shows at most --limit tasks (default 100, max 1000) and says on stderr when there are more.\nWith --json, prints the agent's answer {\"tasks\": [...], \"total\": N}.",
  flags: [
    { name: "status", kind: "string", value: "PHASE", choices: PHASES, help: `only tasks in this phase: ${PHASES.join(", ")}` },
    { name: "slot", kind: "string", value: "NAME", help: "only tasks of this slot" },
    { name: "label", short: "l", kind: "list", value: "K=V", help: "only tasks with this label (repeatable, all must match)" },
    { name: "limit", kind: "string", value: "N", help: "show at most N tasks (default 100)" },
    { name: "quiet", short: "q", kind: "boolean", help: "print only the ids" },
  ],
  json: true,
  examples: ["tasklane ls --status failed --label team=edge", "tasklane rm $(tasklane ls -q --status succeeded)"],
  async run(ctx) {
    if (ctx.positionals.length > 0) throw usage(`ls takes no arguments, got ${JSON.stringify(ctx.positionals[0])}`);
    const limitRaw = ctx.flags.string("limit");
    const labels = ctx.flags.list("label");
    for (const l of labels) keyValueFlag("label", l);
    const res = await ctx.api().list({
      status: ctx.flags.string("status") as Phase | undefined,
      slot: ctx.flags.string("slot"),
      labels,
      limit: limitRaw === undefined ? undefined : intFlag("limit", limitRaw, 1, 1000),
      order: "desc",
    });
    if (ctx.json) {
      await ctx.out.line(JSON.stringify(res));
      return 0;
    }
    if (ctx.flags.bool("quiet")) {
      for (const t of res.tasks) await ctx.out.line(t.metadata.id);
      return 0;
    }
    if (res.tasks.length === 0) {
      await ctx.err.line("no tasks");
      return 0;
    }
    const now = ctx.now();
    const rows = res.tasks.map((t) => [
      t.metadata.id,
      t.spec.slot,
      t.status.phase,
      String(t.status.attempt),
      exitCell(t.status.exitCode, t.status.error),
      formatAge(now - t.metadata.createdAt),
    ]);
    const table = formatTable(["ID", "SLOT", "PHASE", "ATTEMPT", "EXIT", "AGE"], rows, (col, text, row) =>
      col === 2 ? ctx.style.phase(res.tasks[row]!.status.phase, text) : text,
    );
    await ctx.out.line(table);
    if (res.total > res.tasks.length) await ctx.err.line(`(${res.tasks.length} of ${res.total} tasks shown; use --limit or filters)`);
    return 0;
  },
};
