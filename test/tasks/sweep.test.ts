/**
 * Supervisor.sweep in batches: the limit, the time budget, and `more`, with
 * real finished tasks in the domain rig (memory store).
 */
import { afterEach, describe, expect, test } from "bun:test";
import { createServiceRig, type ServiceRig } from "../helpers/service-rig.ts";
import { commandSpec } from "../helpers/start-agent.ts";

let rig: ServiceRig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

/** A rig holding `n` succeeded tasks; their ids oldest first. */
async function finished(n: number): Promise<{ rig: ServiceRig; ids: string[] }> {
  rig = createServiceRig();
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const { taskId } = await rig.service.submit(commandSpec("/bin/true", [], { slot: `s${i}` }), {});
    expect((await rig.service.wait(taskId, 10_000, {})).status.phase).toBe("succeeded");
    ids.push(taskId);
  }
  return { rig, ids };
}

describe("sweep batches", () => {
  test("a limit deletes that many per call, oldest first, and says when more are due", async () => {
    const { rig, ids } = await finished(5);
    const keepNone = () => rig.supervisor.sweep(0, 0, { limit: 2 });
    expect(keepNone()).toEqual({ swept: 2, terminal: 3, more: true });
    expect(() => rig.service.get(ids[1]!, {})).toThrow();
    expect(rig.service.get(ids[2]!, {}).metadata.id).toBe(ids[2]!);
    expect(keepNone()).toEqual({ swept: 2, terminal: 1, more: true });
    expect(keepNone()).toEqual({ swept: 1, terminal: 0, more: false });
    expect(keepNone()).toEqual({ swept: 0, terminal: 0, more: false });
  });

  test("a spent time budget stops after one deletion per call", async () => {
    const { rig } = await finished(3);
    const calls: { swept: number; more: boolean }[] = [];
    for (;;) {
      const r = rig.supervisor.sweep(0, 0, { budgetMs: 0 });
      calls.push({ swept: r.swept, more: r.more });
      if (!r.more) break;
    }
    expect(calls).toEqual([
      { swept: 1, more: true },
      { swept: 1, more: true },
      { swept: 1, more: false },
    ]);
  });

  test("nothing beyond the cap: nothing swept, the terminal count reported", async () => {
    const { rig } = await finished(2);
    expect(rig.supervisor.sweep(0, 2, { limit: 1, budgetMs: 0 })).toEqual({ swept: 0, terminal: 2, more: false });
  });
});
