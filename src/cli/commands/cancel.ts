/** `tasklane cancel`: stop tasks without deleting them. */
import type { Command } from "../command.ts";
import { forEachId } from "../for-each-id.ts";
import { someIds } from "../task-ids.ts";

/** Cancel tasks: the run is stopped (TERM, grace, KILL), the phase becomes canceled, history is kept. */
export const cancelCommand: Command = {
  name: "cancel",
  summary: "stop tasks (phase canceled, no more attempts); history is kept",
  usage: "ID [ID…]",
  details: [
    "Prints \"<id> <phase>\" per task; with --json, one task object per line.",
    "Every id is tried: exits 1 if any id failed (the others are still canceled), 3 if the",
    "agent could not be reached (the remaining ids are then not tried).",
  ].join("\n"),
  flags: [],
  completes: "task-id",
  json: true,
  examples: ["tasklane cancel tsk_01JR8X6Q2V3W4Y5Z6A7B8C9D0E"],
  async run(ctx) {
    const { code } = await forEachId(ctx, someIds(ctx.positionals), async (id) => {
      const task = await ctx.api().cancel(id);
      await ctx.out.line(ctx.json ? JSON.stringify(task) : `${id} ${ctx.style.phase(task.status.phase)}`);
    });
    return code;
  },
};
