/** `tasklane logs`: retained output of a task, or follow it live. */
import type { Command } from "../command.ts";
import { createLogPrinter } from "../log-printer.ts";
import { oneId } from "../task-ids.ts";
import { intFlag } from "../units.ts";

/** Print a task's retained log, or (with -f) follow it across attempts until the task is terminal. */
export const logsCommand: Command = {
  name: "logs",
  summary: "print a task's output (-f: follow it live)",
  usage: "ID [flags]",
  details: [
    "Task stdout goes to stdout, task stderr to stderr. Attempt starts and ends are marked",
    "on stderr (\"tasklane: --- attempt 2 started ---\"). Without -f, prints what the agent",
    "retained and exits; with -f, keeps streaming across retries until the task is terminal.",
    "With --json, each event is one JSON line on stdout ({\"id\", \"type\", …}); --after ID resumes",
    "after that event id.",
  ].join("\n"),
  flags: [
    { name: "follow", short: "f", kind: "boolean", help: "keep streaming until the task is terminal" },
    { name: "after", kind: "string", value: "N", help: "only events with an id greater than N" },
  ],
  completes: "task-id",
  json: true,
  examples: ["tasklane logs -f tsk_01JR8X6Q2V3W4Y5Z6A7B8C9D0E"],
  async run(ctx) {
    const id = oneId(ctx.positionals);
    const afterRaw = ctx.flags.string("after");
    const after = afterRaw === undefined ? undefined : intFlag("after", afterRaw, 0);
    const printer = createLogPrinter({ out: ctx.out, err: ctx.err, json: ctx.json, markers: "all" });
    for await (const item of ctx.api().logs(id, { follow: ctx.flags.bool("follow"), after, signal: ctx.signal })) {
      await printer.print(item);
      if (ctx.out.closed) break;
    }
    return 0;
  },
};
