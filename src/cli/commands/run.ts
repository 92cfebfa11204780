/** `tasklane run`: submit, stream the output live, exit like the task. */
import type { Task } from "../../tasks/model.ts";
import { isTerminal } from "../wire-values.ts";
import type { Command, CommandContext } from "../command.ts";
import { createLogPrinter } from "../log-printer.ts";
import { buildSpec, SPEC_FLAGS } from "../spec-flags.ts";
import { startSpinner } from "../spinner.ts";
import { taskExitCode } from "../task-exit-code.ts";
import { waitForTask } from "../wait-task.ts";
import { SUBMIT_USAGE } from "./submit.ts";

/** How long the cancel request on Ctrl-C may take before we give up on it. */
const CANCEL_TIMEOUT_MS = 10_000;

async function cancelAfterInterrupt(ctx: CommandContext, id: string): Promise<number> {
  try {
    const task = await ctx.api().cancel(id, AbortSignal.timeout(CANCEL_TIMEOUT_MS));
    await ctx.err.line(`tasklane: task ${id} ${task.status.phase}`);
  } catch (err) {
    await ctx.err.line(`tasklane: could not cancel task ${id}: ${(err as Error).message}`);
  }
  return ctx.interruptCode();
}

/** Submit a task, stream its output as it arrives, and exit with its exit status. */
export const runCommand: Command = {
  name: "run",
  summary: "submit a task, stream its output live, exit with its exit code",
  usage: SUBMIT_USAGE,
  details: [
    "Takes the same flags as submit. The task's stdout and stderr lines are written to",
    "stdout and stderr as they arrive, in order, across retries (a retry is marked on",
    "stderr when it is a terminal). Ctrl-C (or SIGTERM) cancels the task, then exits 130 (143).",
    "",
    "Exit status: the exit code of the task's last attempt (0, or N); 124 if it timed",
    "out; 128+signal if it was killed by a signal (137 for SIGKILL); 1 if it ended",
    "otherwise (canceled by someone else, dropped, could not start); 2/3 as for every",
    "command (usage error / agent unreachable). With --json, log events are printed as",
    "JSON lines and the final task as the last line.",
  ].join("\n"),
  flags: SPEC_FLAGS,
  stopAtPositional: true,
  completes: "command",
  json: true,
  examples: ["tasklane run -- make -j8 test", "tasklane run --timeout 30s --restart on-failure --max-attempts 3 -- ./flaky.sh"],
  async run(ctx) {
    const spec = await buildSpec(ctx);
    const api = ctx.api();
    // Not interruptible: once the submit is sent the task may exist, so we must learn its id to cancel it.
    const submitted = await api.submit(spec, null);
    const id = submitted.task_id;
    if (ctx.signal.aborted) return cancelAfterInterrupt(ctx, id);
    const printer = createLogPrinter({ out: ctx.out, err: ctx.err, json: ctx.json, markers: ctx.err.isTTY ? "retries" : "none" });
    const spinner = startSpinner(ctx.err, `${id} ${submitted.admission}, waiting for output`);
    let task: Task;
    try {
      for await (const item of api.logs(id, { follow: true, signal: ctx.signal })) {
        await spinner.stop();
        await printer.print(item);
      }
      await spinner.stop();
      task = await api.get(id);
      if (!isTerminal(task.status.phase)) task = await waitForTask(api, id, undefined, ctx.signal);
    } catch (err) {
      await spinner.stop();
      if (ctx.signal.aborted) return cancelAfterInterrupt(ctx, id);
      throw err;
    }
    if (ctx.json) await ctx.out.line(JSON.stringify({ task }));
    else if (task.status.phase !== "succeeded" && task.status.exitCode === undefined) {
      await ctx.err.line(`tasklane: task ${id} ${task.status.phase}${task.status.error ? `: ${task.status.error}` : ""}`);
    }
    return taskExitCode(task);
  },
};
