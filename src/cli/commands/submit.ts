/** `tasklane submit`: submit a task and print its id. */
import type { Command } from "../command.ts";
import { buildSpec, SPEC_FLAGS } from "../spec-flags.ts";

export const SUBMIT_USAGE = "[flags] [--] CMD [ARGS…]   |   [flags] --script FILE [-- ARGS…]";

/** Submit a task (every spec field has a flag) and print its id. */
export const submitCommand: Command = {
  name: "submit",
  summary: "submit a task and print its id",
  usage: SUBMIT_USAGE,
  details: [
    "Flags go before the command: everything from the first word that is not a flag",
    "(or after --) is the command and its arguments. Durations take a unit (30s, 5m, 1h30m).",
    "Prints the task id; with --json, the agent's answer {\"task_id\", \"admission\"}.",
    "A task that was not started at once (queued, dropped) is noted on stderr.",
  ].join("\n"),
  flags: SPEC_FLAGS,
  stopAtPositional: true,
  completes: "command",
  json: true,
  examples: [
    "tasklane submit --slot backup --timeout 10m --restart on-failure --max-attempts 3 -- /usr/local/bin/backup.sh --full",
    "tasklane submit --script job.py --env MODE=fast -- --verbose",
  ],
  async run(ctx) {
    const spec = await buildSpec(ctx);
    const r = await ctx.api().submit(spec);
    if (ctx.json) {
      await ctx.out.line(JSON.stringify(r));
      return 0;
    }
    await ctx.out.line(r.task_id);
    if (r.admission !== "started") await ctx.err.line(`tasklane: task ${r.task_id} ${r.admission}`);
    return 0;
  },
};
