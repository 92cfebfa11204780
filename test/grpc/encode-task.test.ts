/**
 * The hand-written TaskData encoder (src/grpc/encode-task.ts) against the
 * reference: `toBinary(taskToProto(task))`, byte for byte, over generated
 * tasks covering every field, oneof case, optional field, phase and
 * multi-byte length, and over values that must take the reflection path.
 */
import { describe, expect, test } from "bun:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { GetTaskStatusResponseSchema, ListTaskRunsResponseSchema, ListTasksResponseSchema } from "../../src/gen/solti/v1/api_pb.ts";
import { CreateSpecSchema, TaskDataSchema } from "../../src/gen/solti/v1/types_pb.ts";
import { RunTaskResponseSchema } from "../../src/gen/tasklane/v1/agent_pb.ts";
import { runToProto, specToProto, taskToProto } from "../../src/grpc/convert.ts";
import {
  encodeGetTaskStatusResponse,
  encodeListTaskRunsResponse,
  encodeListTasksResponse,
  encodeRunTaskResponse,
  encodeTaskData,
  GRPC_MESSAGE_BYTES,
  RESPONSE_BUDGET_BYTES,
} from "../../src/grpc/encode-task.ts";
import { ADMISSIONS, JITTERS, PHASES, WELL_KNOWN_RUNTIMES, type Task, type TaskRun, type TaskSpec } from "../../src/tasks/model.ts";
import type { RunOutcome } from "../../src/tasks/task-service.ts";
import { MAX_SPEC_TEXT_BYTES, specTextBytes } from "../../src/tasks/validate-spec.ts";
import { mulberry32 } from "../helpers/seeded-random.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const reference = (task: Task) => toBinary(TaskDataSchema, taskToProto(task));
const referenceResponse = (task: Task | undefined) =>
  toBinary(GetTaskStatusResponseSchema, create(GetTaskStatusResponseSchema, task === undefined ? {} : { task: taskToProto(task) }));

/** Helpers over a seeded PRNG, so a failure names a reproducible case. */
function prng(seed: number) {
  const next = mulberry32(seed);
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

describe("the per-task size rule holds on the wire", () => {
  const ascii = (s: string) => /^[\x00-\x7f]*$/.test(s);
  const utf8 = (s: string | undefined) => (s === undefined ? 0 : Buffer.byteLength(s, "utf8"));

  test("specTextBytes bounds the spec's encoding, and a task is its spec plus at most 160 bytes besides id, owner and error", () => {
    let checked = 0;
    for (let seed = 1; seed <= 3000; seed++) {
      const task = randomTask(seed);
      const spec = task.spec;
      const mode = spec.kind.subprocess.mode;
      // Slot, script body and label keys are ASCII in every valid spec; specTextBytes relies on it.
      if (!ascii(spec.slot) || ("script" in mode && !ascii(mode.script.body)) || !Object.keys(spec.labels).every(ascii)) continue;
      checked++;
      const text = specTextBytes(spec);
      const specBytes = toBinary(CreateSpecSchema, create(CreateSpecSchema, specToProto(spec))).length;
      if (specBytes > text) throw new Error(`seed ${seed}: spec encodes to ${specBytes} bytes, specTextBytes says ${text}`);
      const rest = encodeTaskData(task).length - text - utf8(task.metadata.id) - utf8(task.metadata.owner) - utf8(task.status.error);
      if (rest > 160) throw new Error(`seed ${seed}: metadata and status take ${rest} bytes`);
    }
    expect(checked).toBeGreaterThan(1000);
    // Hence the reserve: a task at the limit, with a 4 KiB owner and 32 KiB of error text, fits the smallest budget.
    expect(MAX_SPEC_TEXT_BYTES + 160 + 64 + 4096 + 32_768).toBeLessThan(RESPONSE_BUDGET_BYTES);
  });
});

/** A task whose spec holds one argument of `argBytes` ASCII bytes. */
function taskWithArg(seed: number, argBytes: number): Task {
  const task = randomTask(seed);
  task.spec.kind.subprocess.mode = { command: { command: "echo", args: ["a".repeat(argBytes)] } };
  return task;
}

const framed = (n: number) => 1 + (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : 4) + n;

describe("encodeListTasksResponse", () => {
  const reference = (tasks: Task[], total: number) =>
    hex(toBinary(ListTasksResponseSchema, create(ListTasksResponseSchema, { tasks: tasks.map(taskToProto), total })));

  test("a page within the budget is byte for byte toBinary of the same tasks and total", () => {
    for (let seed = 1; seed <= 300; seed++) {
      const tasks = Array.from({ length: seed % 9 }, (_, i) => randomTask(seed * 10 + i));
      const total = seed % 7 === 0 ? 0 : tasks.length + (seed % 5) * 1000;
      const page = encodeListTasksResponse(tasks, total);
      expect({ count: page.count, bytes: hex(page.bytes) }).toEqual({ count: tasks.length, bytes: reference(tasks, total) });
    }
  });

  test("tasks are added while the response fits the budget; the page is what toBinary writes for them", () => {
    const tasks = [1_500_000, 1_900_000, 900_000, 2_000_000, 2_000_000, 10].map((n, i) => taskWithArg(i + 1, n));
    const sizes = tasks.map((t) => framed(encodeTaskData(t).length));
    const pages: number[] = [];
    for (let offset = 0; offset < tasks.length; ) {
      const page = encodeListTasksResponse(tasks.slice(offset), 1_000_000);
      expect(page.bytes.length).toBeLessThanOrEqual(RESPONSE_BUDGET_BYTES);
      expect(hex(page.bytes)).toBe(reference(tasks.slice(offset, offset + page.count), 1_000_000));
      // It holds as many as fit: one more would not.
      const next = sizes[offset + page.count];
      if (next !== undefined) expect(page.bytes.length + next).toBeGreaterThan(RESPONSE_BUDGET_BYTES);
      pages.push(page.count);
      offset += page.count;
    }
    expect(pages).toEqual([2, 2, 2]);
    expect(RESPONSE_BUDGET_BYTES).toBe(GRPC_MESSAGE_BYTES - 1024);
  });

  test("the first task is always in the page, even past the budget", () => {
    const tasks = [taskWithArg(1, 5_000), taskWithArg(2, 10)];
    const page = encodeListTasksResponse(tasks, 2, 1_000);
    expect({ count: page.count, bytes: hex(page.bytes) }).toEqual({ count: 1, bytes: reference(tasks.slice(0, 1), 2) });
    expect(encodeListTasksResponse([], 7, 1)).toEqual({ count: 0, bytes: Buffer.from([0x10, 7]) });
  });
});

describe("encodeListTaskRunsResponse", () => {
  const reference = (runs: TaskRun[]) => hex(toBinary(ListTaskRunsResponseSchema, create(ListTaskRunsResponseSchema, { runs: runs.map(runToProto) })));
  const run = (attempt: number, error = ""): TaskRun =>
    error
      ? { attempt, phase: "failed", startedAt: 1_712_750_400_000 + attempt, finishedAt: 1_712_750_401_000 + attempt, exitCode: 1, error }
      : { attempt, phase: "succeeded", startedAt: 1_712_750_400_000 + attempt, finishedAt: 1_712_750_401_000 + attempt, exitCode: 0 };

  test("runs within the budget: byte for byte toBinary of all of them", () => {
    for (const n of [0, 1, 2, 100]) {
      const runs = Array.from({ length: n }, (_, i) => run(i + 1, i % 3 === 0 ? `exit code ${i}` : ""));
      expect(hex(encodeListTaskRunsResponse(runs))).toBe(reference(runs));
    }
  });

  test("past the budget: the newest runs that fit, oldest first; the newest is always there", () => {
    const runs = Array.from({ length: 50_000 }, (_, i) => run(i + 1, `cannot prepare the command line: ${"x".repeat(200)}`));
    const bytes = encodeListTaskRunsResponse(runs);
    expect(bytes.length).toBeLessThanOrEqual(RESPONSE_BUDGET_BYTES);
    const kept = fromBinary(ListTaskRunsResponseSchema, bytes).runs.map((r) => r.attempt);
    expect(kept.at(-1)).toBe(50_000);
    expect(hex(bytes)).toBe(reference(runs.slice(-kept.length)));
    // As many as fit: one more would not.
    expect(bytes.length + toBinary(ListTaskRunsResponseSchema, create(ListTaskRunsResponseSchema, { runs: [runToProto(runs[runs.length - kept.length - 1]!)] })).length).toBeGreaterThan(RESPONSE_BUDGET_BYTES);
    expect(hex(encodeListTaskRunsResponse(runs.slice(0, 3), 10))).toBe(reference(runs.slice(2, 3)));
  });
});

describe("encodeRunTaskResponse", () => {
  const reference = (out: RunOutcome) =>
    hex(
      toBinary(
        RunTaskResponseSchema,
        create(RunTaskResponseSchema, { task: taskToProto(out.task), runs: out.runs.map(runToProto), stdout: out.output.stdout, stderr: out.output.stderr }),
      ),
    );
  const outcome = (task: Task, stdout: string[], stderr: string[]): RunOutcome => ({
    task,
    runs: [
      { attempt: 1, phase: "failed", startedAt: 1_712_750_400_000, finishedAt: 1_712_750_401_000, exitCode: 1, error: "exit code 1" },
      { attempt: 2, phase: "succeeded", startedAt: 1_712_750_402_000, finishedAt: 1_712_750_403_000, exitCode: 0 },
    ],
    output: { stdout, stderr },
  });
  const decode = (bytes: Uint8Array) => {
    const m = fromBinary(RunTaskResponseSchema, bytes);
    return { stdout: m.stdout, stderr: m.stderr };
  };

  test("within the budget it is byte for byte toBinary of the response", () => {
    const r = prng(99);
    for (let seed = 1; seed <= 300; seed++) {
      const lines = () => Array.from({ length: r.int(6) }, () => r.pick(TEXTS));
      const out = outcome(randomTask(seed), lines(), lines());
      if (seed % 3 === 0) out.runs = [];
      expect(hex(encodeRunTaskResponse(out))).toBe(reference(out));
    }
  });

  test("100 lines of 16 KiB on each stream and a 1 MiB task: the oldest lines go, the answer fits", () => {
    const line = (stream: string, i: number) => `${stream} ${String(i).padStart(3, "0")} ${"x".repeat(16 * 1024 - 8)}`;
    const stdout = Array.from({ length: 100 }, (_, i) => line("out", i));
    const stderr = Array.from({ length: 100 }, (_, i) => line("err", i));
    const out = outcome(taskWithArg(5, 1024 * 1024), stdout, stderr);
    const bytes = encodeRunTaskResponse(out);
    expect(bytes.length).toBeLessThanOrEqual(RESPONSE_BUDGET_BYTES);
    const got = decode(bytes);
    // Equal lines on both streams: they are dropped in turn, the newest kept.
    expect(got.stdout.length + got.stderr.length).toBeLessThan(200);
    expect(Math.abs(got.stdout.length - got.stderr.length)).toBeLessThanOrEqual(1);
    expect(got).toEqual({ stdout: stdout.slice(100 - got.stdout.length), stderr: stderr.slice(100 - got.stderr.length) });
    // As many as fit: one more line would not.
    expect(bytes.length + framed(16 * 1024)).toBeGreaterThan(RESPONSE_BUDGET_BYTES);
    expect(hex(bytes)).toBe(reference({ ...out, output: got }));
  });

  test("the stream holding more bytes gives up its oldest line first", () => {
    const task = randomTask(3);
    const stdout = ["o".repeat(100), "p".repeat(100), "q".repeat(100), "r".repeat(100)]; // 102 bytes each on the wire
    const stderr = ["a", "b", "c", "d"].map((c) => c.repeat(10)); // 12 each
    const out = outcome(task, stdout, stderr);
    const base = encodeRunTaskResponse(outcome(task, [], [])).length;
    expect(decode(encodeRunTaskResponse(out, base + 408 + 48))).toEqual({ stdout, stderr });
    expect(decode(encodeRunTaskResponse(out, base + 300))).toEqual({ stdout: stdout.slice(2), stderr });
    expect(decode(encodeRunTaskResponse(out, base + 100))).toEqual({ stdout: [], stderr });
    expect(decode(encodeRunTaskResponse(out, base + 40))).toEqual({ stdout: [], stderr: stderr.slice(1) });
    // Equal streams alternate, stdout first.
    const even = outcome(task, ["1", "2", "3"], ["4", "5", "6"]);
    expect(decode(encodeRunTaskResponse(even, base + 9))).toEqual({ stdout: ["3"], stderr: ["5", "6"] });
    // Task and runs are never cut: with no line left the answer is what it is.
    expect(encodeRunTaskResponse(out, 10).length).toBe(base);
  });
});
