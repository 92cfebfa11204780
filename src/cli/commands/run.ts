/** `tasklane run`: submit, stream the output live, exit like the task. */
import type { LogItem } from "../api-client.ts";
import type { Task, TaskRun } from "../../tasks/model.ts";
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

/** Exit status when our stdout was closed (128 + SIGPIPE, as for a command killed by a broken pipe). */
export const STDOUT_CLOSED_EXIT = 141;

async function cancelTask(ctx: CommandContext, id: string, why: string): Promise<void> {
  try {
    const task = await ctx.api().cancel(id, AbortSignal.timeout(CANCEL_TIMEOUT_MS));
    await ctx.err.line(`tasklane: ${why}task ${id} ${task.status.phase}`);
  } catch (err) {
    await ctx.err.line(`tasklane: could not cancel task ${id}: ${(err as Error).message}`);
  }
}

async function cancelAfterInterrupt(ctx: CommandContext, id: string): Promise<number> {
  await cancelTask(ctx, id, "");
  return ctx.interruptCode();
}

/** The task was submitted held but could not be started: remove it, as if the submit had failed. */
async function discardHeld(ctx: CommandContext, id: string): Promise<void> {
  try {
    await ctx.api().remove(id);
  } catch {
    await ctx.err.line(`tasklane: task ${id} was left held (pending); remove it with: tasklane rm ${id}`);
  }
}

/** What the spinner says about a task that was just released. */
function admissionWord(task: Task): string {
  const phase = task.status.phase;
  if (phase === "running") return "started";
  if (phase === "pending") return "queued";
  return task.status.error?.startsWith("dropped") ? "dropped" : phase;
}

/** `phase: error`, without repeating the phase when the error starts with it (`exhausted: 2 of 2 …`). */
function describeEnd(task: Task): string {
  const { phase, error } = task.status;
  if (!error) return phase;
  return error.startsWith(`${phase}:`) ? error : `${phase}: ${error}`;
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
    "If stdout is closed (tasklane run … | head -1), the task is canceled and run exits 141.",
    "",
    "The task is submitted held and released (POST …/start) once run follows its log, so no",
    "output is missed at the start. Output the agent no longer had when it could send it",
    "(a task faster than its log retention) is reported on stderr:",
    "\"tasklane: N lines of output were not retained by the agent\".",
    "",
    "Exit status: the exit code of the task's last attempt (0, or N; also when the task",
    "is exhausted); 124 if it (its last attempt) timed out; 128+signal if it was killed",
    "by a signal (137 for SIGKILL); 1 if it ended otherwise (canceled by someone else,",
    "dropped, could not start); 2/3 as for every command (usage error / agent unreachable).",
    "With --json, log events are printed as JSON lines and the final task as the last line.",
  ].join("\n"),
  flags: SPEC_FLAGS,
  stopAtPositional: true,
  completes: "command",
  json: true,
  examples: ["tasklane run -- make -j8 test", "tasklane run --timeout 30s --restart on-failure --max-attempts 3 -- ./flaky.sh"],
  async run(ctx) {
    const spec = await buildSpec(ctx);
    const api = ctx.api();
    const release = spec.hold !== true;
    // Not interruptible: once the submit is sent the task may exist, so we must learn its id to cancel it.
    const onAbort = () => void ctx.err.line("tasklane: waiting for the agent to accept the task (Ctrl-C again to quit)");
    ctx.signal.addEventListener("abort", onAbort, { once: true });
    let id: string;
    try {
      // Held: the task starts only once our log subscription exists (see the help above).
      id = (await api.submit({ ...spec, hold: true }, null)).task_id;
    } finally {
      ctx.signal.removeEventListener("abort", onAbort);
    }
    if (ctx.signal.aborted) return cancelAfterInterrupt(ctx, id);
    const printer = createLogPrinter({ out: ctx.out, err: ctx.err, json: ctx.json, markers: ctx.err.isTTY ? "retries" : "none" });
    let spinner = startSpinner(ctx.err, `${id} submitted, waiting for the agent`);
    let task: Task;
    let lastRun: TaskRun | undefined;
    try {
      let stream: AsyncGenerator<LogItem>;
      try {
        // after=0: had anything been dropped before we subscribed, the agent says so with a lagged event.
        stream = await api.logs(id, { follow: true, after: 0, signal: ctx.signal });
        const started = release ? await api.start(id) : undefined;
        await spinner.stop();
        spinner = startSpinner(ctx.err, `${id} ${started ? admissionWord(started) : "held"}, waiting for output`);
      } catch (err) {
        if (!ctx.signal.aborted) await discardHeld(ctx, id);
        throw err;
      }
      for await (const item of stream) {
        await spinner.stop();
        await printer.print(item);
        if (ctx.out.closed) {
          await cancelTask(ctx, id, "stdout was closed; ");
          return STDOUT_CLOSED_EXIT;
        }
      }
      await spinner.stop();
      task = await api.get(id);
      if (!isTerminal(task.status.phase)) task = await waitForTask(api, id, undefined, ctx.signal);
      if (task.status.phase === "exhausted") lastRun = (await api.runs(id)).at(-1);
    } catch (err) {
      await spinner.stop();
      if (ctx.signal.aborted) return cancelAfterInterrupt(ctx, id);
      throw err;
    }
    const code = taskExitCode(task, lastRun);
    if (ctx.json) await ctx.out.line(JSON.stringify({ task }));
    else if (task.status.phase !== "succeeded" && (task.status.exitCode === undefined || task.status.phase === "canceled")) {
      await ctx.err.line(`tasklane: task ${id} ${describeEnd(task)}`);
    }
    return code;
  },
};
