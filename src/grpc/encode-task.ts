/**
 * Hand-written wire encoders of `solti.v1.TaskData` and the responses that
 * carry it — the gRPC read path (`GetTaskStatus`, `ListTasks`, `RunTask`). `taskToProto` +
 * reflection-based `toBinary` cost ≈ 9 µs per task (≈ 12 % of the agent's
 * CPU in bench/README.md's benchmark 6); these write the same bytes directly
 * from the domain task in ≈ 1 µs.
 *
 * The output is byte for byte `toBinary(TaskDataSchema, taskToProto(task))`
 * (tested in test/grpc/encode-task.test.ts): fields in field-number order,
 * proto3 implicit-presence zeros omitted, `optional` fields written when set
 * (even when zero), oneof members always, map entries with key and value.
 * A task holding a value this encoder cannot write exactly as `toBinary`
 * would — a number that is not an integer in its field's range, a phase or
 * strategy name without a proto value — goes through the reflection-based
 * path instead, so the result (or the error) is always the reference one.
 *
 * The responses that carry many tasks or many lines (`ListTasks`, `RunTask`)
 * are cut to `RESPONSE_BUDGET_BYTES` here, from the bytes they encode anyway:
 * a ListTasks page ends early, RunTask drops its oldest output lines. One task
 * always fits (validate-spec.ts, `MAX_SPEC_TEXT_BYTES`).
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { GetTaskStatusResponseSchema } from "../gen/solti/v1/api_pb.ts";
import { RestartStrategy, TaskDataSchema, TaskRunInfoSchema } from "../gen/solti/v1/types_pb.ts";
import type { ScriptMode, Task, TaskRun, TaskSpec } from "../tasks/model.ts";
import type { RunOutcome } from "../tasks/task-service.ts";
import { ADMISSION_OUT, JITTER_OUT, PHASE_TO_STATUS, RUNTIME_OUT, runToProto, taskToProto } from "./convert.ts";
import { ProtoWriter, putVarint, varintSize, WireType } from "./proto-writer.ts";

/** The gRPC message cap, both directions (CONTRACT §5; grpc-services.ts gives it to grpc-js). */
export const GRPC_MESSAGE_BYTES = 4 * 1024 * 1024;

/**
 * Largest response the agent sizes itself (a ListTasks page, a RunTask
 * answer): the 4 MiB cap less 1 KiB of reserve. Sized exactly from the
 * encoded bytes, so the reserve is only a margin.
 */
export const RESPONSE_BUDGET_BYTES = GRPC_MESSAGE_BYTES - 1024;

const { Varint, Bit64, LengthDelimited: Len } = WireType;

/** Thrown inside the encoder when a value needs the reflection-based path; never escapes this module. */
class NeedsReflection extends Error {}
const NEEDS_REFLECTION = new NeedsReflection("value outside the hand-written encoder's range");

/** The proto number of a domain name in one of convert.ts's tables. */
function enumValue(table: Readonly<Record<string, number>>, name: string): number {
  if (!Object.hasOwn(table, name)) throw NEEDS_REFLECTION;
  return table[name] as number;
}

/** `convert.ts`'s `u64`: truncated, negative → 0; only safe integers here. */
function u64(n: number): number {
  const v = Math.max(0, Math.trunc(n));
  if (!Number.isSafeInteger(v)) throw NEEDS_REFLECTION;
  return v;
}

/** An int64 from `BigInt(n)`: only safe integers here. */
function i64(n: number): number {
  if (!Number.isSafeInteger(n)) throw NEEDS_REFLECTION;
  return n;
}

function u32(n: number): number {
  if (n >>> 0 !== n) throw NEEDS_REFLECTION;
  return n;
}

function i32(n: number): number {
  if ((n | 0) !== n) throw NEEDS_REFLECTION;
  return n;
}

function strings(w: ProtoWriter, fieldNo: number, list: readonly string[] | undefined): void {
  if (list == null) return;
  for (const s of list) w.tag(fieldNo, Len).string(s);
}

// One function per nested message (or group of fields), in field-number order.

/** `SubprocessTask` fields. */
function writeSubprocess(w: ProtoWriter, sp: TaskSpec["kind"]["subprocess"]): void {
  if ("command" in sp.mode) {
    const command = w.tag(1, Len).fork();
    const c = sp.mode.command;
    if (c.command !== "") w.tag(1, Len).string(c.command);
    strings(w, 2, c.args);
    w.join(command);
  } else {
    const script = w.tag(2, Len).fork();
    writeScript(w, sp.mode.script);
    w.join(script);
  }
  for (const kv of sp.env) {
    const entry = w.tag(3, Len).fork();
    if (kv.key !== "") w.tag(1, Len).string(kv.key);
    if (kv.value !== "") w.tag(2, Len).string(kv.value);
    w.join(entry);
  }
  if (sp.cwd != null) w.tag(4, Len).string(sp.cwd);
  if (sp.failOnNonZero !== false) {
    if (sp.failOnNonZero !== true) throw NEEDS_REFLECTION;
    w.tag(5, Varint).varint(1);
  }
}

/** `ScriptMode` fields. */
function writeScript(w: ProtoWriter, s: ScriptMode["script"]): void {
  if (typeof s.runtime === "string") {
    w.tag(1, Varint).varint(enumValue(RUNTIME_OUT, s.runtime));
  } else {
    const custom = w.tag(2, Len).fork();
    if (s.runtime.custom.command !== "") w.tag(1, Len).string(s.runtime.custom.command);
    if (s.runtime.custom.flag !== "") w.tag(2, Len).string(s.runtime.custom.flag);
    w.join(custom);
  }
  if (s.body !== "") w.tag(3, Len).string(s.body);
  strings(w, 4, s.args);
}

/** `BackoffStrategy` fields. */
function writeBackoff(w: ProtoWriter, b: TaskSpec["backoff"]): void {
  w.tag(1, Varint).varint(enumValue(JITTER_OUT, b.jitter));
  const firstMs = u64(b.firstMs);
  if (firstMs !== 0) w.tag(2, Varint).varint(firstMs);
  const maxMs = u64(b.maxMs);
  if (maxMs !== 0) w.tag(3, Varint).varint(maxMs);
  if (typeof b.factor !== "number") throw NEEDS_REFLECTION;
  if (!Object.is(b.factor, 0)) w.tag(4, Bit64).double(b.factor);
}

/** The `labels` map: one entry message per label, key and value always written. */
function writeLabels(w: ProtoWriter, labels: Record<string, string>): void {
  for (const key of Object.keys(labels)) {
    const entry = w.tag(8, Len).fork();
    w.tag(1, Len).string(key);
    w.tag(2, Len).string(labels[key] as string);
    w.join(entry);
  }
}

/** The `optional` fields 100–104 of `CreateSpec`. */
function writeSpecOptionals(w: ProtoWriter, spec: TaskSpec): void {
  if (spec.maxAttempts != null) w.tag(100, Varint).varint(u32(spec.maxAttempts));
  if (spec.killGraceMs != null) w.tag(101, Varint).varint(u32(spec.killGraceMs));
  if (spec.priority != null) w.tag(102, Varint).varint(u32(spec.priority));
  if (spec.hold != null) {
    if (typeof spec.hold !== "boolean") throw NEEDS_REFLECTION;
    w.tag(103, Varint).varint(spec.hold ? 1 : 0);
  }
  if (spec.resources != null) {
    const r = spec.resources;
    const resources = w.tag(104, Len).fork();
    if (r.memoryBytes != null) w.tag(1, Varint).varint(u64(r.memoryBytes));
    if (r.cpuMillis != null) w.tag(2, Varint).varint(u32(r.cpuMillis));
    if (r.pids != null) w.tag(3, Varint).varint(u32(r.pids));
    w.join(resources);
  }
}

/** `CreateSpec` fields, as `specToProto` fills them. */
function writeSpec(w: ProtoWriter, spec: TaskSpec): void {
  if (spec.slot !== "") w.tag(1, Len).string(spec.slot);
  const kind = w.tag(2, Len).fork();
  const subprocess = w.tag(1, Len).fork();
  writeSubprocess(w, spec.kind.subprocess);
  w.join(subprocess);
  w.join(kind);
  const timeout = u64(spec.timeout);
  if (timeout !== 0) w.tag(3, Varint).varint(timeout);
  const restart = spec.restart.type === "never" ? RestartStrategy.NEVER : spec.restart.type === "onFailure" ? RestartStrategy.ON_FAILURE : RestartStrategy.ALWAYS;
  w.tag(4, Varint).varint(restart);
  if (spec.restart.type === "always") w.tag(5, Varint).varint(u64(spec.restart.intervalMs));
  const backoff = w.tag(6, Len).fork();
  writeBackoff(w, spec.backoff);
  w.join(backoff);
  w.tag(7, Varint).varint(enumValue(ADMISSION_OUT, spec.admission));
  writeLabels(w, spec.labels ?? {});
  writeSpecOptionals(w, spec);
}

/** `TaskData` fields, as `taskToProto` fills them. */
function writeTask(w: ProtoWriter, task: Task): void {
  const md = task.metadata;
  const metadata = w.tag(1, Len).fork();
  if (md.id !== "") w.tag(1, Len).string(md.id);
  const createdAt = i64(md.createdAt);
  if (createdAt !== 0) w.tag(2, Varint).signed(createdAt);
  const updatedAt = i64(md.updatedAt);
  if (updatedAt !== 0) w.tag(3, Varint).signed(updatedAt);
  const rv = u64(md.resourceVersion);
  if (rv !== 0) w.tag(4, Varint).varint(rv);
  if (md.owner != null) w.tag(100, Len).string(md.owner);
  w.join(metadata);

  const spec = w.tag(2, Len).fork();
  writeSpec(w, task.spec);
  w.join(spec);

  const st = task.status;
  const status = w.tag(3, Len).fork();
  w.tag(1, Varint).varint(enumValue(PHASE_TO_STATUS, st.phase));
  const attempt = u32(st.attempt);
  if (attempt !== 0) w.tag(2, Varint).varint(attempt);
  if (st.error != null) w.tag(3, Len).string(st.error);
  if (st.exitCode != null) w.tag(4, Varint).signed(i32(st.exitCode));
  w.join(status);
}

const writer = new ProtoWriter();

/** Run `write` on the shared writer; `undefined` when a value needs the reflection-based path. */
function encodeWith(write: (w: ProtoWriter) => void): Uint8Array | undefined {
  const w = writer.reset();
  try {
    write(w);
  } catch (err) {
    w.reset();
    if (err instanceof NeedsReflection) return undefined;
    throw err;
  }
  return w.finish();
}

/** The wire bytes of `taskToProto(task)` (`solti.v1.TaskData`). */
export function encodeTaskData(task: Task): Uint8Array {
  return encodeWith((w) => writeTask(w, task)) ?? toBinary(TaskDataSchema, taskToProto(task));
}

/**
 * The wire bytes of `GetTaskStatusResponse { task }`: the task when given,
 * else the empty message (unknown id: OK with no task).
 */
export function encodeGetTaskStatusResponse(task: Task | undefined): Uint8Array {
  if (task === undefined) return new Uint8Array(0);
  const bytes = encodeWith((w) => {
    const field = w.tag(1, Len).fork();
    writeTask(w, task);
    w.join(field);
  });
  return bytes ?? toBinary(GetTaskStatusResponseSchema, create(GetTaskStatusResponseSchema, { task: taskToProto(task) }));
}

/** Bytes of a length-delimited field of `len` payload bytes (tag below field 16). */
function framed(len: number): number {
  return 1 + varintSize(len) + len;
}

/** Writes `tag`, the length and `payload` at `at`; returns the next offset. */
function putField(buf: Buffer, at: number, tag: number, payload: Uint8Array): number {
  buf[at] = tag;
  const o = putVarint(buf, at + 1, payload.length);
  buf.set(payload, o);
  return o + payload.length;
}

/** A ListTasks page as encoded: the response bytes, and how many of the given tasks they hold. */
export interface EncodedPage {
  bytes: Uint8Array;
  /** Tasks in the page: the first `count` of those given (at least one when any were given). */
  count: number;
}

/**
 * The wire bytes of `ListTasksResponse { tasks, total }`, cut to `budget`
 * bytes: tasks are added in order while the response stays within it, so a
 * page may hold fewer tasks than the query's limit (the client pages on with
 * `offset += tasks.length`; `total` still counts every match). The first task
 * is always added, even past the budget: a page is never empty while tasks
 * remain. Byte for byte `toBinary` of the same tasks and total.
 */
export function encodeListTasksResponse(tasks: readonly Task[], total: number, budget = RESPONSE_BUDGET_BYTES): EncodedPage {
  // total is a uint32 count; written after the tasks (field-number order), absent when 0.
  const totalSize = total !== 0 ? 1 + varintSize(total) : 0;
  const { parts, size } = takeWhileFits(tasks.length, (i) => encodeTaskData(tasks[i] as Task), totalSize, budget);
  const buf = Buffer.allocUnsafe(size);
  let o = 0;
  for (const data of parts) o = putField(buf, o, 0x0a, data);
  if (total !== 0) {
    buf[o] = 0x10;
    putVarint(buf, o + 1, total);
  }
  return { bytes: buf, count: parts.length };
}

/**
 * The wire bytes of `ListTaskRunsResponse { runs }`, cut to `budget` bytes:
 * the newest runs that fit, oldest first as always (only a task with
 * thousands of runs kept, `--max-runs`, comes near 4 MiB; REST lists them
 * all). The newest run is always kept. Byte for byte `toBinary` of the runs
 * kept.
 */
export function encodeListTaskRunsResponse(runs: readonly TaskRun[], budget = RESPONSE_BUDGET_BYTES): Uint8Array {
  // Newest first, so that the cut drops the oldest; written back in order below.
  const newest = (i: number) => runs[runs.length - 1 - i] as TaskRun;
  const { parts, size } = takeWhileFits(runs.length, (i) => toBinary(TaskRunInfoSchema, runToProto(newest(i))), 0, budget);
  const buf = Buffer.allocUnsafe(size);
  let o = 0;
  for (let i = parts.length - 1; i >= 0; i--) o = putField(buf, o, 0x0a, parts[i] as Uint8Array);
  return buf;
}

/**
 * The messages `encode(0)`, `encode(1)`, … (of `count`), encoded one at a
 * time and taken as fields of one response while the response (`size` bytes
 * before them) stays within `budget`; the first is always taken. Answers them
 * and the response's size with them.
 */
function takeWhileFits(count: number, encode: (i: number) => Uint8Array, size: number, budget: number): { parts: Uint8Array[]; size: number } {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const data = encode(i);
    const next = size + framed(data.length);
    if (parts.length > 0 && next > budget) break;
    parts.push(data);
    size = next;
  }
  return { parts, size };
}

/** One stream's output lines with their encoded sizes, cut from the front. */
class Tail {
  readonly sizes: number[];
  /** Index of the first line kept. */
  start = 0;
  /** Encoded bytes of the lines kept. */
  bytes = 0;

  constructor(readonly lines: readonly string[]) {
    this.sizes = lines.map((line) => Buffer.byteLength(line, "utf8"));
    for (const n of this.sizes) this.bytes += framed(n);
  }

  /** Drop the oldest line kept; returns the bytes it took. */
  dropOldest(): number {
    const n = framed(this.sizes[this.start] ?? 0);
    this.start += 1;
    this.bytes -= n;
    return n;
  }

  get empty(): boolean {
    return this.start >= this.lines.length;
  }

  /** Writes the kept lines as repeated string field `tag`; returns the next offset. */
  write(buf: Buffer, at: number, tag: number): number {
    let o = at;
    for (let i = this.start; i < this.lines.length; i++) {
      const n = this.sizes[i] ?? 0;
      buf[o] = tag;
      o = putVarint(buf, o + 1, n);
      o += buf.write(this.lines[i] ?? "", o, n, "utf8");
    }
    return o;
  }
}

/**
 * The wire bytes of `RunTaskResponse { task, runs, stdout, stderr }`, cut to
 * `budget` bytes: while it is larger, the oldest output line of whichever
 * stream still holds more bytes is dropped, one line at a time — both tails
 * keep their newest lines and share what room the task and its runs leave.
 * The task and runs are never cut (with no lines left the answer may still
 * exceed the budget, and gRPC refuses it). Byte for byte `toBinary` of the
 * response with the lines kept.
 */
export function encodeRunTaskResponse(out: RunOutcome, budget = RESPONSE_BUDGET_BYTES): Uint8Array {
  const task = encodeTaskData(out.task);
  const runs = out.runs.map((run) => toBinary(TaskRunInfoSchema, runToProto(run)));
  const stdout = new Tail(out.output.stdout);
  const stderr = new Tail(out.output.stderr);
  let size = framed(task.length) + stdout.bytes + stderr.bytes;
  for (const run of runs) size += framed(run.length);
  while (size > budget && !(stdout.empty && stderr.empty)) {
    const from = stderr.empty || (!stdout.empty && stdout.bytes >= stderr.bytes) ? stdout : stderr;
    size -= from.dropOldest();
  }
  const buf = Buffer.allocUnsafe(size);
  let o = putField(buf, 0, 0x0a, task);
  for (const run of runs) o = putField(buf, o, 0x12, run);
  o = stdout.write(buf, o, 0x1a);
  stderr.write(buf, o, 0x22);
  return buf;
}
