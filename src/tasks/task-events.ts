/**
 * In-process listeners for what the supervisor does. The supervisor is the
 * only writer of task state; everything else that must react (metrics,
 * structured logs, waiters) listens here. Listeners run synchronously and must
 * not throw (a throwing listener is isolated and reported).
 */
import type { Phase, StreamKind, Task, TaskRun } from "./model.ts";

export interface TaskListener {
  /** A task was created or changed (`prev` undefined for a new task). */
  transition?(task: Task, prev: Phase | undefined): void;
  /** A task was purged. */
  deleted?(task: Task): void;
  runStarted?(task: Task, run: TaskRun): void;
  runFinished?(task: Task, run: TaskRun): void;
  /** Output lines read from a run. */
  output?(stream: StreamKind, lines: number, bytes: number): void;
}

export interface TaskEvents extends Required<TaskListener> {
  add(listener: TaskListener): () => void;
}

/** Fan-out of supervisor events to any number of listeners. */
export function createTaskEvents(onListenerError: (err: unknown) => void = () => {}): TaskEvents {
  const listeners = new Set<TaskListener>();
  function emit<K extends keyof TaskListener>(key: K, args: Parameters<NonNullable<TaskListener[K]>>): void {
    for (const l of listeners) {
      const fn = l[key] as ((...a: unknown[]) => void) | undefined;
      if (!fn) continue;
      try {
        fn.apply(l, args);
      } catch (err) {
        onListenerError(err);
      }
    }
  }
  return {
    add(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    transition: (task, prev) => emit("transition", [task, prev]),
    deleted: (task) => emit("deleted", [task]),
    runStarted: (task, run) => emit("runStarted", [task, run]),
    runFinished: (task, run) => emit("runFinished", [task, run]),
    output: (stream, lines, bytes) => emit("output", [stream, lines, bytes]),
  };
}
