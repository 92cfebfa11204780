/**
 * The gRPC client's own mapping between the REST/domain shape and the proto
 * messages (written independently of src/grpc/convert.ts, so the contract
 * suite checks that module rather than reusing it).
 *
 * REST-shaped spec → proto `CreateSpec` is literal: what the REST spec omits
 * becomes the proto3 zero value (timeout 0, `*_UNSPECIFIED` enums,
 * `failOnNonZero` false), and a REST enum string the proto does not know
 * becomes `*_UNSPECIFIED`. Scenarios therefore spell out timeout, restart,
 * admission and failOnNonZero.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { LogEvent, Phase, Task, TaskRun, TaskSpec } from "../../src/tasks/model.ts";
import {
  AdmissionStrategy,
  JitterStrategy,
  OutputStreamKind,
  RestartStrategy,
  ScriptRuntime,
  TaskStatus,
  type CreateSpecSchema,
  type SubprocessTaskSchema,
  type OutputEventProto,
  type TaskData,
  type TaskRunInfo,
} from "../../src/gen/solti/v1/types_pb.ts";
import type { WatchEvent } from "../../src/gen/tasklane/v1/agent_pb.ts";
import type { WatchItem } from "./client.ts";

type Json = Record<string, any>;

const RESTARTS: Record<string, RestartStrategy> = {
  never: RestartStrategy.NEVER,
  onFailure: RestartStrategy.ON_FAILURE,
  always: RestartStrategy.ALWAYS,
};
const JITTERS: Record<string, JitterStrategy> = {
  none: JitterStrategy.NONE,
  full: JitterStrategy.FULL,
  equal: JitterStrategy.EQUAL,
  decorrelated: JitterStrategy.DECORRELATED,
};
const ADMISSIONS: Record<string, AdmissionStrategy> = {
  dropIfRunning: AdmissionStrategy.DROP_IF_RUNNING,
  replace: AdmissionStrategy.REPLACE,
  queue: AdmissionStrategy.QUEUE,
};
const RUNTIMES: Record<string, ScriptRuntime> = {
  bash: ScriptRuntime.BASH,
  python: ScriptRuntime.PYTHON,
  node: ScriptRuntime.NODE,
};
const PHASES: Record<TaskStatus, Phase | undefined> = {
  [TaskStatus.UNSPECIFIED]: undefined,
  [TaskStatus.PENDING]: "pending",
  [TaskStatus.RUNNING]: "running",
  [TaskStatus.SUCCEEDED]: "succeeded",
  [TaskStatus.FAILED]: "failed",
  [TaskStatus.TIMEOUT]: "timeout",
  [TaskStatus.CANCELED]: "canceled",
  [TaskStatus.EXHAUSTED]: "exhausted",
};

/** Domain phase → proto status (for ListTasksRequest.status). */
export function statusOfPhase(phase: Phase): TaskStatus {
  const entry = Object.entries(PHASES).find(([, p]) => p === phase);
  if (!entry) throw new Error(`no TaskStatus for ${phase}`);
  return Number(entry[0]) as TaskStatus;
}

function phaseOf(status: TaskStatus): Phase {
  const p = PHASES[status];
  if (p === undefined) throw new Error(`the agent sent TaskStatus ${status}`);
  return p;
}

const enumOf = <E extends number>(table: Record<string, E>, value: unknown): E => (table[String(value)] ?? 0) as E;
const big = (n: unknown): bigint => BigInt(typeof n === "number" ? n : 0);

/** REST-shaped spec → proto `CreateSpec` init (literal; see the module comment). */
export function specToProto(spec: Json): MessageInitShape<typeof CreateSpecSchema> {
  const out: MessageInitShape<typeof CreateSpecSchema> = {
    slot: spec.slot,
    timeoutMs: big(spec.timeout),
    restart: enumOf(RESTARTS, spec.restart?.type),
    admission: enumOf(ADMISSIONS, spec.admission),
    labels: spec.labels ?? {},
  };
  if (spec.restart?.intervalMs !== undefined) out.restartIntervalMs = big(spec.restart.intervalMs);
  const sp: Json | undefined = spec.kind?.subprocess;
  if (sp) {
    const mode = sp.mode ?? {};
    let m: MessageInitShape<typeof SubprocessTaskSchema>["mode"];
    if (mode.command) m = { case: "command", value: { command: mode.command.command, args: mode.command.args ?? [] } };
    else if (mode.script) {
      const s = mode.script;
      const runtime =
        typeof s.runtime === "object" && s.runtime !== null
          ? { case: "custom" as const, value: { command: s.runtime.custom?.command ?? "", flag: s.runtime.custom?.flag ?? "" } }
          : { case: "wellKnown" as const, value: enumOf(RUNTIMES, s.runtime) };
      m = { case: "script", value: { runtime, body: s.body, args: s.args ?? [] } };
    } else m = { case: undefined };
    out.kind = {
      kind: {
        case: "subprocess",
        value: { mode: m, env: sp.env ?? [], cwd: sp.cwd, failOnNonZero: sp.failOnNonZero ?? false },
      },
    };
  }
  if (spec.backoff) {
    const b = spec.backoff;
    out.backoff = { jitter: enumOf(JITTERS, b.jitter), firstMs: big(b.firstMs), maxMs: big(b.maxMs), factor: b.factor };
  }
  for (const k of ["maxAttempts", "killGraceMs", "priority", "hold"] as const) {
    if (spec[k] !== undefined) (out as Json)[k] = spec[k];
  }
  if (spec.resources) {
    const r = spec.resources;
    out.resources = { memoryBytes: r.memoryBytes === undefined ? undefined : big(r.memoryBytes), cpuMillis: r.cpuMillis, pids: r.pids };
  }
  return out;
}

const nameOf = <E extends number>(table: Record<string, E>, value: E): string => {
  const entry = Object.entries(table).find(([, v]) => v === value);
  if (!entry) throw new Error(`the agent sent enum value ${value}`);
  return entry[0];
};

/** Proto `TaskData` → domain task (the inverse of the agent's conversion). */
export function taskFromProto(t: TaskData): Task {
  const meta = t.metadata;
  const spec = t.spec;
  const st = t.status;
  if (!meta || !spec || !st) throw new Error("TaskData without metadata, spec or status");
  const kind = spec.kind?.kind;
  if (kind?.case !== "subprocess") throw new Error(`TaskData with kind ${kind?.case}`);
  const sp = kind.value;
  let mode: TaskSpec["kind"]["subprocess"]["mode"];
  if (sp.mode.case === "command") mode = { command: { command: sp.mode.value.command, args: sp.mode.value.args } };
  else if (sp.mode.case === "script") {
    const s = sp.mode.value;
    const runtime =
      s.runtime.case === "custom"
        ? { custom: { command: s.runtime.value.command, flag: s.runtime.value.flag } }
        : (nameOf(RUNTIMES, s.runtime.value ?? 0) as "bash" | "python" | "node");
    mode = { script: { runtime, body: s.body, args: s.args } };
  } else throw new Error("TaskData without a mode");
  const subprocess: TaskSpec["kind"]["subprocess"] = { mode, env: sp.env.map((kv) => ({ key: kv.key, value: kv.value })), failOnNonZero: sp.failOnNonZero };
  if (sp.cwd !== undefined) subprocess.cwd = sp.cwd;
  const restartType = nameOf(RESTARTS, spec.restart);
  const b = spec.backoff;
  if (!b) throw new Error("TaskData without backoff");
  const domainSpec: TaskSpec = {
    slot: spec.slot,
    kind: { subprocess },
    timeout: Number(spec.timeoutMs),
    restart:
      restartType === "always"
        ? { type: "always", intervalMs: Number(spec.restartIntervalMs ?? 0n) }
        : { type: restartType as "never" | "onFailure" },
    backoff: { jitter: nameOf(JITTERS, b.jitter) as TaskSpec["backoff"]["jitter"], firstMs: Number(b.firstMs), maxMs: Number(b.maxMs), factor: b.factor },
    admission: nameOf(ADMISSIONS, spec.admission) as TaskSpec["admission"],
    labels: { ...spec.labels },
  };
  if (spec.maxAttempts !== undefined) domainSpec.maxAttempts = spec.maxAttempts;
  if (spec.killGraceMs !== undefined) domainSpec.killGraceMs = spec.killGraceMs;
  if (spec.priority !== undefined) domainSpec.priority = spec.priority;
  if (spec.hold !== undefined) domainSpec.hold = spec.hold;
  if (spec.resources !== undefined) {
    const r = spec.resources;
    domainSpec.resources = {};
    if (r.memoryBytes !== undefined) domainSpec.resources.memoryBytes = Number(r.memoryBytes);
    if (r.cpuMillis !== undefined) domainSpec.resources.cpuMillis = r.cpuMillis;
    if (r.pids !== undefined) domainSpec.resources.pids = r.pids;
  }
  const task: Task = {
    metadata: { id: meta.id, resourceVersion: Number(meta.resourceVersion), createdAt: Number(meta.createdAt), updatedAt: Number(meta.updatedAt) },
    spec: domainSpec,
    status: { phase: phaseOf(st.phase), attempt: st.attempt },
  };
  if (meta.owner !== undefined) task.metadata.owner = meta.owner;
  if (st.exitCode !== undefined) task.status.exitCode = st.exitCode;
  if (st.error !== undefined) task.status.error = st.error;
  return task;
}

/** Proto `TaskRunInfo` → domain run. */
export function runFromProto(r: TaskRunInfo): TaskRun {
  const run: TaskRun = { attempt: r.attempt, phase: phaseOf(r.status), startedAt: Number(r.startedAt) };
  if (r.finishedAt !== undefined) run.finishedAt = Number(r.finishedAt);
  if (r.exitCode !== undefined) run.exitCode = r.exitCode;
  if (r.error !== undefined) run.error = r.error;
  return run;
}

const utf8 = new TextDecoder();

/** Proto `OutputEventProto` → domain log event. */
export function logEventFromProto(e: OutputEventProto): LogEvent {
  switch (e.kind.case) {
    case "runStarted":
      return { type: "runStarted", attempt: e.kind.value.attempt, startedAt: Number(e.kind.value.startedAt) };
    case "chunk": {
      const c = e.kind.value;
      const stream = c.stream === OutputStreamKind.STDOUT ? "stdout" : c.stream === OutputStreamKind.STDERR ? "stderr" : undefined;
      if (!stream) throw new Error(`chunk with stream ${c.stream}`);
      return { type: "chunk", attempt: c.attempt, stream, seq: Number(c.seq), ts: Number(c.ts), line: utf8.decode(c.line) };
    }
    case "runFinished": {
      const f = e.kind.value;
      const ev: LogEvent = { type: "runFinished", attempt: f.attempt, finishedAt: Number(f.finishedAt) };
      if (f.exitCode !== undefined) ev.exitCode = f.exitCode;
      return ev;
    }
    case "lagged":
      return { type: "lagged", skipped: Number(e.kind.value.skipped) };
    case undefined:
      throw new Error("OutputEventProto without kind");
  }
}

/** Proto `WatchEvent` → domain watch item. */
export function watchItemFromProto(e: WatchEvent): WatchItem {
  const id = Number(e.id);
  switch (e.kind.case) {
    case "task":
      return { id, type: "task", task: taskFromProto(e.kind.value) };
    case "deletedId":
      return { id, type: "deleted", taskId: e.kind.value };
    case "lagged":
      return { id, type: "lagged", skipped: Number(e.kind.value) };
    case undefined:
      throw new Error("WatchEvent without kind");
  }
}
