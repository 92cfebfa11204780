/** `tasklane cancel`: stop tasks without deleting them. */
import type { Command } from "../command.ts";
import { someIds } from "../task-ids.ts";

/** Cancel tasks: the run is stopped (TERM, grace, KILL), the phase becomes canceled, history is kept. */
export const cancelCommand: Command = {
  name: "cancel",
  summary: "stop tasks (phase canceled, no more attempts); history is kept",
  usage: "ID [ID…]",
  details: "Prints \"<id> <phase>\" per task; with --json, one task object per line.\nExits 1 if any id failed (the others are still canceled).",
  flags: [],
  completes: "task-id",
  json: true,
  examples: ["tasklane cancel tsk_01JR8X6Q2V3W4Y5Z6A7B8C9D0E"],
  async run(ctx) {
    let code = 0;
    for (const id of someIds(ctx.positionals)) {
      try {
        const task = await ctx.api().cancel(id);
        await ctx.out.line(ctx.json ? JSON.stringify(task) : `${id} ${ctx.style.phase(task.status.phase)}`);
      } catch (err) {
        if (ctx.positionals.length === 1 || ctx.signal.aborted) throw err;
        await ctx.err.line(`tasklane: ${id}: ${(err as Error).message}`);
        code = 1;
      }
    }
    return code;
  },
};
