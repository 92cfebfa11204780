/**
 * One structured log line per task transition (phase change): task id, slot,
 * attempt, previous and new phase, exit code and error. With the request log
 * (X-Request-Id) this is the agent's audit trail.
 */
import type { TaskEvents } from "../tasks/task-events.ts";
import type { Logger } from "./logger.ts";

/** Log every phase change seen on `events`; returns the unsubscribe function. */
export function logTransitions(events: TaskEvents, logger: Logger): () => void {
  return events.add({
    transition(task, prev) {
      if (task.status.phase === prev) return;
      logger.info("task transition", {
        taskId: task.metadata.id,
        slot: task.spec.slot,
        attempt: task.status.attempt,
        from: prev,
        phase: task.status.phase,
        exitCode: task.status.exitCode,
        error: task.status.error,
      });
    },
  });
}
