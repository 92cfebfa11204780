/** `tasklane logs`: retained output of a task, or follow it live. */
import { CliError } from "../cli-error.ts";
import type { Command } from "../command.ts";
import { createLogPrinter } from "../log-printer.ts";
import { oneId } from "../task-ids.ts";
import { intFlag } from "../units.ts";
import { isTerminal } from "../wire-values.ts";

/** Print a task's retained log, or (with -f) follow it across attempts until the task is terminal. */
export const logsCommand: Command = {
  name: "logs",
  summary: "print a task's output (-f: follow it live)",
  usage: "ID [flags]",
  details: [
    "Task stdout goes to stdout, task stderr to stderr. Attempt starts and ends are marked",
    "on stderr (\"tasklane: --- attempt 2 started ---\"). Without -f, prints what the agent",
    "retained and exits; with -f, keeps streaming across retries until the task is terminal.",
    "Output the agent no longer retains is reported on stderr (\"tasklane: N lines of output",
    "were not retained by the agent\"). With --json, each event is one JSON line on stdout",
    "({\"id\", \"type\", …}); --after ID resumes after that event id.",
    "",
    "Exit status: 0; 3 if, with -f, the agent closed the stream (or went away) before the",
    "task was terminal. Leaving (Ctrl-C, or stdout closed) does not stop the task.",
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
    // after=0 rather than nothing: the agent then reports output it no longer retains as a lagged event.
    const after = afterRaw === undefined ? 0 : intFlag("after", afterRaw, 0);
    const follow = ctx.flags.bool("follow");
    const printer = createLogPrinter({ out: ctx.out, err: ctx.err, json: ctx.json, markers: "all" });
    for await (const item of await ctx.api().logs(id, { follow, after, signal: ctx.signal })) {
      await printer.print(item);
      if (ctx.out.closed) return 0;
    }
    if (!follow) return 0;
    // The agent ends a followed stream once the task is terminal; anything else (a shutdown) is not the end.
    let state: string;
    try {
      const task = await ctx.api().get(id);
      if (isTerminal(task.status.phase)) return 0;
      state = ` (it is ${task.status.phase})`;
    } catch (err) {
      if (ctx.signal.aborted) throw err;
      state = err instanceof CliError && err.kind === "unreachable" ? ", and cannot be reached any more" : ` (could not check: ${(err as Error).message})`;
    }
    throw new CliError("unreachable", `the agent at ${ctx.api().server} closed the log stream before task ${id} finished${state}`);
  },
};
