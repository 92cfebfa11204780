/**
 * A realistic store population written straight through the agent's own
 * SQLite store (same schema, same code): 50 slots, mostly terminal phases,
 * env/team labels, one run per task. Deterministic (seeded PRNG).
 */
import { createSqliteStore } from "../../src/store/sqlite-store.ts";
import type { Phase, Task } from "../../src/tasks/model.ts";

/** Deterministic PRNG so runs are comparable. */
export function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TERMINAL: [Phase, number][] = [
  ["succeeded", 0.7],
  ["failed", 0.15],
  ["canceled", 0.1],
  ["timeout", 0.05],
];

/** The phase whose cumulative weight first exceeds `r` (in [0, 1)); `succeeded` past the end. */
export function pickPhase(weights: readonly [Phase, number][], r: number): Phase {
  let acc = 0;
  for (const [phase, w] of weights) {
    acc += w;
    if (r < acc) return phase;
  }
  return "succeeded";
}

/** Slots are `slot-0` … `slot-49`. */
export const SEED_SLOTS = 50;

function task(i: number, rnd: () => number, t0: number): Task {
  const createdAt = t0 + i * 10;
  const phase = pickPhase(TERMINAL, rnd());
  return {
    metadata: { id: `tsk_${String(i).padStart(26, "0")}`, resourceVersion: 4, createdAt, updatedAt: createdAt + 5 },
    spec: {
      slot: `slot-${Math.floor(rnd() * SEED_SLOTS)}`,
      kind: { subprocess: { mode: { command: { command: "/bin/true", args: ["--task", String(i)] } }, env: [{ key: "LANG", value: "C.UTF-8" }], failOnNonZero: true } },
      timeout: 60_000,
      restart: { type: "never" },
      backoff: { jitter: "none", firstMs: 1000, maxMs: 1000, factor: 1 },
      admission: "queue",
      labels: { env: ["prod", "dev", "staging"][i % 3] ?? "prod", team: `team-${i % 20}` },
    },
    status: { phase, attempt: 1, exitCode: phase === "succeeded" ? 0 : 1 },
  };
}

/**
 * Write `n` finished tasks (and their runs) into the database at `path`
 * (created if missing). Only finished ones: pending or running tasks would be
 * started by the agent's recovery.
 */
export async function seedStore(path: string, n: number): Promise<void> {
  const store = createSqliteStore({ path, synchronous: "NORMAL", maxBatch: 5000 });
  const rnd = mulberry32(42);
  const t0 = Date.now() - n * 10 - 60_000;
  for (let i = 0; i < n; i++) {
    const t = task(i, rnd, t0);
    store.putTask(t);
    store.putRun(t.metadata.id, { attempt: 1, phase: t.status.phase, startedAt: t.metadata.createdAt, finishedAt: t.metadata.updatedAt, exitCode: t.status.exitCode ?? 0 });
  }
  await store.flush();
  await store.close();
}
