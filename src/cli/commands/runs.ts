/** `tasklane runs`: the run history of a task. */
import type { Command } from "../command.ts";
import { exitCell, formatDuration, formatRelative, formatTable } from "../format.ts";
import { oneId } from "../task-ids.ts";

/** Show the attempts of a task, oldest first. */
export const runsCommand: Command = {
  name: "runs",
  summary: "show the run history (attempts) of a task",
  usage: "ID",
  details: "With --json, prints the runs array, oldest first.",
  flags: [],
  completes: "task-id",
  json: true,
  examples: ["tasklane runs tsk_01JR8X6Q2V3W4Y5Z6A7B8C9D0E"],
  async run(ctx) {
    const runs = await ctx.api().runs(oneId(ctx.positionals));
    if (ctx.json) {
      await ctx.out.line(JSON.stringify(runs));
      return 0;
    }
    if (runs.length === 0) {
      await ctx.err.line("no runs yet");
      return 0;
    }
    const now = ctx.now();
    const rows = runs.map((r) => [
      String(r.attempt),
      r.phase,
      exitCell(r.exitCode, r.error),
      formatRelative(r.startedAt, now),
      formatDuration((r.finishedAt ?? now) - r.startedAt) + (r.finishedAt === undefined ? "+" : ""),
      r.error ?? "",
    ]);
    await ctx.out.line(
      formatTable(["ATTEMPT", "PHASE", "EXIT", "STARTED", "DURATION", "ERROR"], rows, (col, text, row) =>
        col === 1 ? ctx.style.phase(runs[row]!.phase, text) : text,
      ),
    );
    return 0;
  },
};
