/** `tasklane rm`: stop and delete tasks. */
import type { Command } from "../command.ts";
import { forEachId } from "../for-each-id.ts";
import { someIds } from "../task-ids.ts";

/** Delete tasks: stop a running one, purge task, runs and logs. Unknown ids are fine (idempotent). */
export const rmCommand: Command = {
  name: "rm",
  summary: "stop and delete tasks with their runs and logs",
  usage: "ID [ID…]",
  details: [
    "Deleting is idempotent: an unknown id is not an error. Prints each deleted id;",
    "with --json, {\"deleted\": [ids], \"failed\": [{\"id\", \"error\"}]}.",
    "Every id is tried; a failure is reported with its id and rm exits 1 (3 if the agent",
    "could not be reached: the remaining ids are then not tried).",
  ].join("\n"),
  flags: [],
  completes: "task-id",
  json: true,
  examples: ["tasklane rm tsk_01JR8X6Q2V3W4Y5Z6A7B8C9D0E", "tasklane rm $(tasklane ls -q --status failed)"],
  async run(ctx) {
    const ids = someIds(ctx.positionals);
    const deleted: string[] = [];
    const { failed, code } = await forEachId(ctx, ids, async (id) => {
      await ctx.api().remove(id);
      deleted.push(id);
      if (!ctx.json) await ctx.out.line(id);
    });
    if (ctx.json) await ctx.out.line(JSON.stringify({ deleted, failed }));
    return code;
  },
};
