/** `tasklane wait`: block until a task is terminal. */
import { isTerminal } from "../wire-values.ts";
import type { Command } from "../command.ts";
import { exitCell } from "../format.ts";
import { startSpinner } from "../spinner.ts";
import { oneId } from "../task-ids.ts";
import { durationFlag } from "../units.ts";
import { waitForTask } from "../wait-task.ts";

/** Exit status of `wait` when the task is still not terminal at --timeout. */
export const STILL_RUNNING_EXIT = 124;

/** Wait for a task to finish; the exit status tells how it ended. */
export const waitCommand: Command = {
  name: "wait",
  summary: "wait until a task is terminal; exit 0 if it succeeded",
  usage: "ID [--timeout DURATION]",
  details: [
    "Without --timeout, waits as long as it takes. Prints \"<id> <phase> exit=<code>\";",
    "with --json, the task.",
    "",
    "Exit status: 0 the task succeeded; 1 it ended otherwise (failed, timeout, canceled,",
    "exhausted) or the agent answered with an error; 124 it was still pending or running",
    "when --timeout passed; 2/3 usage error / agent unreachable; 130 interrupted.",
  ].join("\n"),
  flags: [{ name: "timeout", kind: "string", value: "DURATION", help: "give up after this long, e.g. 30s (exit 124)" }],
  completes: "task-id",
  json: true,
  examples: ["tasklane wait --timeout 5m tsk_01JR8X6Q2V3W4Y5Z6A7B8C9D0E && echo done"],
  async run(ctx) {
    const id = oneId(ctx.positionals);
    const raw = ctx.flags.string("timeout");
    const timeoutMs = raw === undefined ? undefined : durationFlag("timeout", raw, { allowZero: true });
    const spinner = startSpinner(ctx.err, `waiting for ${id}`);
    let task;
    try {
      task = await waitForTask(ctx.api(), id, timeoutMs, ctx.signal);
    } finally {
      await spinner.stop();
    }
    const s = task.status;
    if (ctx.json) await ctx.out.line(JSON.stringify(task));
    else await ctx.out.line(`${id} ${ctx.style.phase(s.phase)} exit=${exitCell(s.exitCode, s.error)}${s.error ? ` (${s.error})` : ""}`);
    if (!isTerminal(s.phase)) return STILL_RUNNING_EXIT;
    return s.phase === "succeeded" ? 0 : 1;
  },
};
