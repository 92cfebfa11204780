/**
 * The hand-written TaskData encoder (src/grpc/encode-task.ts) against the
 * reference: `toBinary(taskToProto(task))`, byte for byte, over generated
 * tasks covering every field, oneof case, optional field, phase and
 * multi-byte length, and over values that must take the reflection path.
 */
import { describe, expect, test } from "bun:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { GetTaskStatusResponseSchema } from "../../src/gen/solti/v1/api_pb.ts";
import { TaskDataSchema } from "../../src/gen/solti/v1/types_pb.ts";
import { taskToProto } from "../../src/grpc/convert.ts";
import { encodeGetTaskStatusResponse, encodeTaskData } from "../../src/grpc/encode-task.ts";
import { ADMISSIONS, JITTERS, PHASES, WELL_KNOWN_RUNTIMES, type Task, type TaskSpec } from "../../src/tasks/model.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const reference = (task: Task) => toBinary(TaskDataSchema, taskToProto(task));
const referenceResponse = (task: Task | undefined) =>
  toBinary(GetTaskStatusResponseSchema, create(GetTaskStatusResponseSchema, task === undefined ? {} : { task: taskToProto(task) }));

/** mulberry32: a small seeded PRNG, so a failure names a reproducible case. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T,>(xs: readonly T[]): T => xs[int(xs.length)] as T;
  const maybe = <T,>(v: () => T): T | undefined => (next() < 0.5 ? v() : undefined);
  return { next, int, pick, maybe };
}

const TEXTS = ["", "a", "hello world", "żółw 🐢", "lone \uD800 surrogate", "tab\tnew\nline", "x".repeat(127), "y".repeat(128), "é".repeat(64), "z".repeat(20_000)];
const NUMBERS = [0, 1, 127, 128, 16_383, 16_384, 2 ** 31 - 1, 2 ** 32 - 1, 2 ** 40 + 3, Number.MAX_SAFE_INTEGER];
const UINT32S = [0, 1, 127, 128, 300, 65_535, 2 ** 31, 2 ** 32 - 1];
const EXIT_CODES = [0, 1, 2, 127, 128, 255, -1, -128, 2 ** 31 - 1, -(2 ** 31)];
const FACTORS = [1, 1.5, 2, 10, 0, -0, 0.1, 1e300];
const TIMES = [0, 1, 1_712_750_400_123, Number.MAX_SAFE_INTEGER, -1, -1_712_750_400_123];

function randomTask(seed: number): Task {
  const r = prng(seed);
  const text = () => r.pick(TEXTS);
  const list = () => Array.from({ length: r.int(4) }, text);
  const mode: TaskSpec["kind"]["subprocess"]["mode"] =
    r.next() < 0.5
      ? { command: { command: text(), args: list() } }
      : {
          script: {
            runtime: r.next() < 0.6 ? r.pick(WELL_KNOWN_RUNTIMES) : { custom: { command: text(), flag: text() } },
            body: r.next() < 0.1 ? Buffer.alloc(150_000, "ab").toString("base64") : text(),
            args: list(),
          },
        };
  const labels: Record<string, string> = {};
  for (let i = r.int(6); i > 0; i--) labels[r.pick(["team", "env", "", "10", "2", "żółw", "k".repeat(200), `l${r.int(100)}`])] = text();
  const spec: TaskSpec = {
    slot: text(),
    kind: {
      subprocess: {
        mode,
        env: Array.from({ length: r.int(4) }, () => ({ key: text(), value: text() })),
        cwd: r.maybe(text),
        failOnNonZero: r.next() < 0.5,
      },
    },
    timeout: r.pick(NUMBERS),
    restart: r.pick([{ type: "never" }, { type: "onFailure" }, { type: "always", intervalMs: r.pick(NUMBERS) }] as const),
    backoff: { jitter: r.pick(JITTERS), firstMs: r.pick(NUMBERS), maxMs: r.pick(NUMBERS), factor: r.pick(FACTORS) },
    admission: r.pick(ADMISSIONS),
    labels,
    maxAttempts: r.maybe(() => r.pick(UINT32S)),
    killGraceMs: r.maybe(() => r.pick(UINT32S)),
    priority: r.maybe(() => r.int(11)),
    hold: r.maybe(() => r.next() < 0.5),
    resources: r.maybe(() => ({
      memoryBytes: r.maybe(() => r.pick(NUMBERS)),
      cpuMillis: r.maybe(() => r.pick(UINT32S)),
      pids: r.maybe(() => r.pick(UINT32S)),
    })),
  };
  const task: Task = {
    metadata: {
      id: r.pick(["tsk_01HZY8B2W3K4M5N6P7Q8R9S0T1", "", "tsk_żółw"]),
      resourceVersion: r.pick(NUMBERS),
      createdAt: r.pick(TIMES),
      updatedAt: r.pick(TIMES),
      owner: r.maybe(text),
    },
    spec,
    status: {
      phase: r.pick(PHASES),
      attempt: r.pick(UINT32S),
      exitCode: r.maybe(() => r.pick(EXIT_CODES)),
      error: r.maybe(text),
    },
  };
  // Optional fields absent rather than present-and-undefined, like a stored task.
  for (const o of [task.metadata, spec, spec.kind.subprocess, spec.resources ?? {}, task.status] as Record<string, unknown>[]) {
    for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  }
  return task;
}

describe("encodeTaskData", () => {
  test("writes exactly what toBinary(taskToProto(task)) writes, over 3000 generated tasks", () => {
    const seen = { phases: new Set<string>(), script: 0, command: 0, custom: 0, resources: 0, owner: 0, exit: 0, longLen: 0 };
    for (let seed = 1; seed <= 3000; seed++) {
      const task = randomTask(seed);
      const want = hex(reference(task));
      if (hex(encodeTaskData(task)) !== want) throw new Error(`task of seed ${seed} encodes differently: ${JSON.stringify(task).slice(0, 500)}`);
      if (hex(encodeGetTaskStatusResponse(task)) !== hex(referenceResponse(task))) throw new Error(`response of seed ${seed} encodes differently`);
      seen.phases.add(task.status.phase);
      const mode = task.spec.kind.subprocess.mode;
      if ("script" in mode) {
        seen.script++;
        if (typeof mode.script.runtime !== "string") seen.custom++;
      } else seen.command++;
      if (task.spec.resources) seen.resources++;
      if (task.metadata.owner !== undefined) seen.owner++;
      if (task.status.exitCode !== undefined && task.status.exitCode < 0) seen.exit++;
      if (want.length > 2 * 16_384) seen.longLen++;
    }
    // The generator really covered the cases it is meant to.
    expect([...seen.phases].sort()).toEqual([...PHASES].sort());
    for (const n of [seen.script, seen.command, seen.custom, seen.resources, seen.owner, seen.exit, seen.longLen]) expect(n).toBeGreaterThan(20);
  });

  test("a realistic task round-trips through fromBinary to taskToProto's message", () => {
    const task = randomTask(42);
    expect(fromBinary(TaskDataSchema, encodeTaskData(task))).toEqual(taskToProto(task));
  });

  test("values outside the encoder's range take the reflection path: same bytes, or the same failure", () => {
    const base = randomTask(7);
    const variants: ((t: Task) => void)[] = [
      (t) => (t.status.exitCode = 1.5),
      (t) => (t.status.exitCode = 2 ** 31),
      (t) => (t.status.attempt = -1),
      (t) => (t.status.attempt = 2 ** 32),
      (t) => (t.spec.timeout = 2.7),
      (t) => (t.spec.timeout = -5),
      (t) => (t.spec.timeout = 2 ** 60),
      (t) => (t.spec.timeout = Number.NaN),
      (t) => (t.spec.backoff.factor = Number.NaN),
      (t) => (t.spec.maxAttempts = 0.5),
      (t) => (t.metadata.resourceVersion = 2 ** 64),
      (t) => (t.metadata.createdAt = 1.5),
      (t) => (t.status.phase = "bogus" as Task["status"]["phase"]),
      (t) => (t.spec.backoff.jitter = "toString" as TaskSpec["backoff"]["jitter"]),
      (t) => (t.spec.admission = "later" as TaskSpec["admission"]),
    ];
    for (const change of variants) {
      const task = structuredClone(base);
      change(task);
      let want: string | Error;
      try {
        want = hex(reference(task));
      } catch (err) {
        want = err as Error;
      }
      if (typeof want === "string") {
        expect(hex(encodeTaskData(task))).toBe(want);
        expect(hex(encodeGetTaskStatusResponse(task))).toBe(hex(referenceResponse(task)));
      } else {
        expect(() => encodeTaskData(task)).toThrow(want.message);
      }
    }
  });

  test("an unknown task is the empty response", () => {
    expect(hex(encodeGetTaskStatusResponse(undefined))).toBe(hex(referenceResponse(undefined)));
  });
});
