/**
 * A model, not a target: would spawning from a worker thread lift benchmark 1?
 *
 * 3000 × `/bin/true`, 8 at a time, spawned like the agent's runner (own
 * process group, both pipes drained), while the main thread also burns `WORK`
 * µs of CPU per task — the agent's own per-task work besides the spawn call
 * (request, validation, store, listeners) is ≈ 400–450 µs of main-thread CPU
 * now, 650 µs before the per-task fixes (bench/README.md).
 * Spawning on the main thread (it waits in vfork until each child has exec'd)
 * is compared, alternating, with spawning from one worker thread.
 *
 *   bun bench/spawn-offload.ts [WORK µs, default 0 and 450]
 */
import { drain } from "./lib/drain.ts";

const TASKS = 3000;
const CONCURRENCY = 8;
const ROUNDS = 2;

function burn(us: number): void {
  const end = performance.now() + us / 1000;
  while (performance.now() < end) {
    // the agent's own CPU work per task, modelled
  }
}

async function onMainThread(): Promise<void> {
  const p = Bun.spawn(["/bin/true"], { stdin: "ignore", stdout: "pipe", stderr: "pipe", detached: true, env: { PATH: "/usr/bin:/bin" } });
  await Promise.all([drain(p.stdout), drain(p.stderr), p.exited]);
}

const worker = new Worker(new URL("./fixtures/spawn-worker.ts", import.meta.url).href);
const waiting = new Map<number, () => void>();
worker.onmessage = (e: MessageEvent<{ id: number }>) => {
  waiting.get(e.data.id)?.();
  waiting.delete(e.data.id);
};
let seq = 0;
function onWorker(): Promise<void> {
  const id = ++seq;
  return new Promise((resolve) => {
    waiting.set(id, resolve);
    worker.postMessage({ id, argv: ["/bin/true"] });
  });
}

async function rate(work: number, spawn: () => Promise<void>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next++ < TASKS) {
        burn(work / 2);
        await spawn();
        burn(work / 2);
      }
    }),
  );
  return (TASKS / (performance.now() - t0)) * 1000;
}

const works = process.argv[2] !== undefined ? [Number(process.argv[2])] : [0, 450];
for (const work of works) {
  for (let r = 0; r < ROUNDS; r++) {
    const main = await rate(work, onMainThread);
    const off = await rate(work, onWorker);
    console.log(`${work} µs of other work per task: main-thread spawn ${main.toFixed(0)}/s, worker spawn ${off.toFixed(0)}/s (${(off / main).toFixed(2)}x)`);
  }
}
worker.terminate();
