/**
 * How `tasklane run` turns a finished task into its own exit status, so
 * scripts can use it like the command itself:
 *
 * | final task | exit status |
 * |---|---|
 * | the last attempt exited with code N (success or not, also when the task is `exhausted`) | N |
 * | phase `timeout`, or `exhausted` after an attempt that timed out | 124, like timeout(1) |
 * | killed by a signal (`killed by signal SIGKILL`) | 128 + signal number (137) |
 * | canceled (also between attempts, after one that exited N), dropped, spawn error | 1 |
 */
import { constants } from "node:os";
import type { Task, TaskRun } from "../tasks/model.ts";
import { signalOf } from "./format.ts";

/** Exit status when the task timed out. */
export const TIMEOUT_EXIT = 124;

/**
 * Exit status mirroring how the task's last attempt ended (see module doc).
 * For an `exhausted` task, pass its last run: the task's status keeps the
 * last exit code but not whether that attempt timed out.
 */
export function taskExitCode(task: Task, lastRun?: TaskRun): number {
  const { phase, exitCode, error } = task.status;
  if (phase === "succeeded") return exitCode ?? 0;
  if (phase === "timeout") return TIMEOUT_EXIT;
  // Canceled while waiting to retry, the task keeps the exit code of the attempt before: not how it ended.
  if (phase === "canceled") return 1;
  if (phase === "exhausted") {
    if (lastRun?.phase === "timeout") return TIMEOUT_EXIT;
    if (exitCode !== undefined) return exitCode;
  } else if (exitCode !== undefined && exitCode !== 0) return exitCode;
  const sig = signalOf(error);
  const num = sig ? (constants.signals as Record<string, number | undefined>)[sig] : undefined;
  if (num !== undefined) return 128 + num;
  return 1;
}
