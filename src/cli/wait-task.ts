/**
 * Waiting for a task to become terminal through the agent's long-poll
 * (`GET …/wait`, at most 10 minutes per request), for any length of time.
 */
import type { Task } from "../tasks/model.ts";
import { isTerminal } from "./wire-values.ts";
import { MAX_WAIT_CHUNK_MS, type ApiClient } from "./api-client.ts";

/**
 * Resolve with the task once it is terminal, or with its state when
 * `timeoutMs` passed (`undefined`: wait as long as it takes).
 */
export async function waitForTask(api: ApiClient, id: string, timeoutMs: number | undefined, signal: AbortSignal, now: () => number = Date.now): Promise<Task> {
  const deadline = timeoutMs === undefined ? Infinity : now() + timeoutMs;
  for (;;) {
    const left = deadline - now();
    const task = await api.waitOnce(id, Math.max(0, Math.min(MAX_WAIT_CHUNK_MS, left)), signal);
    if (isTerminal(task.status.phase) || deadline - now() <= 0) return task;
  }
}
