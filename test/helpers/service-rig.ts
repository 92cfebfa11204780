/**
 * The domain pieces wired by hand, without `createAgent`: memory store, log
 * hub, task events, supervisor and task service over a private script dir.
 * For tests of the service itself or of a transport built on it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogHub } from "../../src/logs/log-hub.ts";
import { createCommandResolver } from "../../src/runner/command-line.ts";
import { createMemoryStore } from "../../src/store/memory-store.ts";
import type { Store } from "../../src/store/store.ts";
import { createSupervisor, type Supervisor } from "../../src/tasks/supervisor.ts";
import { createTaskEvents } from "../../src/tasks/task-events.ts";
import { createTaskService, type TaskService } from "../../src/tasks/task-service.ts";

export interface ServiceRig {
  service: TaskService & { close(): void };
  supervisor: Supervisor;
  /** Stop every run, close the service, hub and store, remove the script dir. */
  close(): Promise<void>;
}

export function createServiceRig(
  opts: { outputTail?: number; maxConcurrent?: number; baseEnv?: Record<string, string>; store?: Store } = {},
): ServiceRig {
  const scriptDir = mkdtempSync(join(tmpdir(), "tasklane-rig-"));
  const store = opts.store ?? createMemoryStore();
  const hub = createLogHub({
    retain: 1000,
    sink: { append: (id, r) => store.appendLogs(id, r), load: (id, n) => store.loadLogs(id, n), trim: (id, b) => store.trimLogs(id, b) },
  });
  const events = createTaskEvents((err) => {
    throw err;
  });
  const supervisor = createSupervisor({
    store,
    hub,
    events,
    resolver: createCommandResolver(),
    scriptDir,
    limits: { maxConcurrent: opts.maxConcurrent ?? 8, maxQueuePerSlot: 10, killGraceMs: 1000, maxLineBytes: 16384, maxRuns: 100 },
    baseEnv: opts.baseEnv ?? { PATH: process.env.PATH ?? "/usr/bin:/bin" },
    random: () => 0,
  });
  const service = createTaskService({ supervisor, store, hub, events, outputTail: opts.outputTail });
  return {
    service,
    supervisor,
    async close() {
      await supervisor.shutdown();
      service.close();
      hub.close();
      await store.close();
      rmSync(scriptDir, { recursive: true, force: true });
    },
  };
}
