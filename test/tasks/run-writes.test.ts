/**
 * How often the supervisor writes an ended run: once per attempt, whether
 * the task finishes, is exhausted or retries (then with the retry's due time
 * and the failure count on that one write).
 */
import { afterEach, describe, expect, test } from "bun:test";
import { createMemoryStore } from "../../src/store/memory-store.ts";
import type { Store, StoredRun } from "../../src/store/store.ts";
import { createServiceRig, type ServiceRig } from "../helpers/service-rig.ts";
import { commandSpec } from "../helpers/start-agent.ts";

let rig: ServiceRig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

/** A memory store that records every `putRun` of an ended run (one with `finishedAt`). */
function recordingStore(): { store: Store; ended: { attempt: number; retryAt?: number; failures?: number }[] } {
  const inner = createMemoryStore();
  const ended: { attempt: number; retryAt?: number; failures?: number }[] = [];
  const store = new Proxy(inner, {
    get(target, key, receiver) {
      if (key === "putRun") {
        return (taskId: string, run: StoredRun) => {
          if (run.finishedAt !== undefined) {
            const { attempt, retryAt, failures } = run;
            ended.push({ attempt, ...(retryAt !== undefined ? { retryAt } : {}), ...(failures !== undefined ? { failures } : {}) });
          }
          target.putRun(taskId, run);
        };
      }
      return Reflect.get(target, key, receiver) as unknown;
    },
  });
  return { store, ended };
}

async function runToEnd(spec: Record<string, unknown>): Promise<{ attempt: number; retryAt?: number; failures?: number }[]> {
  const { store, ended } = recordingStore();
  rig = createServiceRig({ store });
  const { taskId } = await rig.service.submit(spec, {});
  await rig.service.wait(taskId, 10_000, {});
  return ended;
}

describe("an ended run is written once", () => {
  test("a task without restarts: one write", async () => {
    expect(await runToEnd(commandSpec("/bin/false"))).toEqual([{ attempt: 1 }]);
  });

  test("retries until exhausted: one write per attempt, the retries' with their due time and failure count", async () => {
    const backoff = { jitter: "none", firstMs: 1, maxMs: 1, factor: 1 };
    const ended = await runToEnd(commandSpec("/bin/false", [], { restart: { type: "onFailure" }, backoff, maxAttempts: 3 }));
    expect(ended).toEqual([
      { attempt: 1, retryAt: expect.any(Number), failures: 1 },
      { attempt: 2, retryAt: expect.any(Number), failures: 2 },
      { attempt: 3 },
    ]);
  });

  test("an always task that succeeds and is then exhausted: the same", async () => {
    const ended = await runToEnd(commandSpec("/bin/true", [], { restart: { type: "always", intervalMs: 1 }, maxAttempts: 2 }));
    expect(ended).toEqual([{ attempt: 1, retryAt: expect.any(Number), failures: 0 }, { attempt: 2 }]);
  });
});
