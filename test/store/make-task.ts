/**
 * Build a complete, realistic `Task` for store tests; only the fields the
 * store indexes are parameters.
 */
import type { Phase, Task } from "../../src/tasks/model.ts";

export interface TaskFields {
  id: string;
  slot?: string;
  phase?: Phase;
  owner?: string;
  createdAt?: number;
  updatedAt?: number;
  labels?: Record<string, string>;
}

/** A task with every spec default filled in, as the service stores it. */
export function makeTask(f: TaskFields): Task {
  const createdAt = f.createdAt ?? 1_700_000_000_000;
  return {
    metadata: {
      id: f.id,
      resourceVersion: 3,
      createdAt,
      updatedAt: f.updatedAt ?? createdAt,
      ...(f.owner !== undefined ? { owner: f.owner } : {}),
    },
    spec: {
      slot: f.slot ?? "default",
      kind: {
        subprocess: {
          mode: { command: { command: "echo", args: ["hello", f.id] } },
          env: [{ key: "LANG", value: "C.UTF-8" }],
          cwd: "/tmp",
          failOnNonZero: true,
        },
      },
      timeout: 30_000,
      restart: { type: "always", intervalMs: 5000 },
      backoff: { jitter: "full", firstMs: 100, maxMs: 10_000, factor: 2 },
      admission: "queue",
      labels: f.labels ?? {},
      maxAttempts: 3,
    },
    status: { phase: f.phase ?? "pending", attempt: 1, exitCode: 0 },
  };
}

/** Ids of tasks, for compact assertions on order. */
export function idsOf(tasks: readonly Task[]): string[] {
  return tasks.map((t) => t.metadata.id);
}
