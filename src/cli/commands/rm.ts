/** `tasklane rm`: stop and delete tasks. */
import type { Command } from "../command.ts";
import { someIds } from "../task-ids.ts";

/** Delete tasks: stop a running one, purge task, runs and logs. Unknown ids are fine (idempotent). */
export const rmCommand: Command = {
  name: "rm",
  summary: "stop and delete tasks with their runs and logs",
  usage: "ID [ID…]",
  details: "Deleting is idempotent: an unknown id is not an error. Prints each deleted id;\nwith --json, {\"deleted\": [ids]}.",
  flags: [],
  completes: "task-id",
  json: true,
  examples: ["tasklane rm tsk_01JR8X6Q2V3W4Y5Z6A7B8C9D0E", "tasklane rm $(tasklane ls -q --status failed)"],
  async run(ctx) {
    const ids = someIds(ctx.positionals);
    const deleted: string[] = [];
    for (const id of ids) {
      await ctx.api().remove(id);
      deleted.push(id);
      if (!ctx.json) await ctx.out.line(id);
    }
    if (ctx.json) await ctx.out.line(JSON.stringify({ deleted }));
    return 0;
  },
};
