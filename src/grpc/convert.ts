/**
 * The one module that converts between the proto shape (CONTRACT §5) and the
 * domain / REST shape (CONTRACT §1).
 *
 * Input specs are not validated here: a proto `CreateSpec` is turned into the
 * REST-shaped spec JSON that the domain's `parseTaskSpec` accepts, so REST and
 * gRPC share one validation and one set of messages (a message names its field
 * as the proto does, `inProtoTerms`). Only what the REST shape
 * cannot express is rejected here: `*_UNSPECIFIED` enum values, unset oneofs
 * and the unsupported wasm / container kinds.
 *
 * Proto3 has no "absent" for plain scalars, so two defaults differ from REST:
 * `fail_on_non_zero` unset is `false` (REST default `true`), and `timeout_ms`
 * unset is `0`, which is passed through so the domain rejects it with the same
 * message as REST.
 */
import { create, fromJson, toBinary, type DescEnum, type JsonValue, type MessageInitShape } from "@bufbuild/protobuf";
import { AgentError, clipLine, invalid } from "../errors.ts";
import { isRecord } from "./proto-json-shape.ts";
import { LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT, type LogEvent, type Phase, type Task, type TaskQuery, type TaskRun, type TaskSpec, type TaskSpecInput } from "../tasks/model.ts";
import { DEFAULT_WAIT_MS, type WatchRecord } from "../tasks/task-service.ts";
import {
  AdmissionStrategy,
  AdmissionStrategySchema,
  JitterStrategy,
  JitterStrategySchema,
  OutputStreamKind,
  RestartStrategy,
  RestartStrategySchema,
  ScriptRuntime,
  ScriptRuntimeSchema,
  TaskDataSchema,
  TaskRunInfoSchema,
  TaskStatus,
  TaskStatusSchema,
  OutputEventProtoSchema,
  type BackoffStrategy,
  type CreateSpec,
  type CreateSpecSchema,
  type OutputEventProto,
  type SubprocessTask,
  type SubprocessTaskSchema,
  type TaskData,
  type TaskRunInfo,
} from "../gen/solti/v1/types_pb.ts";
import { SubmitTaskRequestSchema, type ListTasksRequest } from "../gen/solti/v1/api_pb.ts";
import { InfoSchema, WatchEventSchema, type Info, type WatchEvent } from "../gen/tasklane/v1/agent_pb.ts";
import { putVarint, varintSize } from "./proto-writer.ts";

type SubprocessInput = TaskSpecInput["kind"]["subprocess"];

// ---------------------------------------------------------------- enums

/** Reject 0 (`*_UNSPECIFIED`) and numbers the enum does not define; message names the field and the allowed values. */
function checkEnum(schema: DescEnum, value: number, field: string): void {
  const allowed = schema.values.filter((v) => v.number !== 0).map((v) => v.name);
  const known = schema.values.find((v) => v.number === value);
  if (value === 0 || known === undefined) {
    const got = known?.name ?? `unknown value ${value}`;
    const verb = known ? "is not allowed" : "is not defined";
    throw invalid(`${field}: ${got} ${verb}; use one of ${allowed.join(", ")}`);
  }
}

/** Domain phase → proto `TaskStatus`. */
export const PHASE_TO_STATUS: Readonly<Record<Phase, TaskStatus>> = {
  pending: TaskStatus.PENDING,
  running: TaskStatus.RUNNING,
  succeeded: TaskStatus.SUCCEEDED,
  failed: TaskStatus.FAILED,
  timeout: TaskStatus.TIMEOUT,
  canceled: TaskStatus.CANCELED,
  exhausted: TaskStatus.EXHAUSTED,
};

/** Domain phase → proto `TaskStatus`. */
export function statusFromPhase(phase: Phase): TaskStatus {
  return PHASE_TO_STATUS[phase];
}

/** Proto `TaskStatus` → domain phase; `field` names the request field in the error. */
export function phaseFromStatus(status: TaskStatus, field = "status"): Phase {
  checkEnum(TaskStatusSchema, status, field);
  const entry = Object.entries(PHASE_TO_STATUS).find(([, s]) => s === status);
  // checkEnum guarantees a match; the fallback only satisfies the type checker.
  return (entry?.[0] ?? "pending") as Phase;
}

function restartFromProto(spec: CreateSpec): TaskSpecInput["restart"] {
  checkEnum(RestartStrategySchema, spec.restart, "spec.restart");
  const interval = spec.restartIntervalMs;
  if (spec.restart !== RestartStrategy.ALWAYS && interval !== undefined) {
    const name = RestartStrategySchema.values.find((v) => v.number === spec.restart)?.name ?? "";
    throw invalid(`spec.restartIntervalMs: only allowed with RESTART_STRATEGY_ALWAYS, not ${name}`);
  }
  switch (spec.restart) {
    case RestartStrategy.NEVER:
      return { type: "never" };
    case RestartStrategy.ON_FAILURE:
      return { type: "onFailure" };
    default:
      return interval === undefined ? { type: "always" } : { type: "always", intervalMs: Number(interval) };
  }
}

const JITTERS = {
  [JitterStrategy.NONE]: "none",
  [JitterStrategy.FULL]: "full",
  [JitterStrategy.EQUAL]: "equal",
  [JitterStrategy.DECORRELATED]: "decorrelated",
} as const;

const ADMISSIONS = {
  [AdmissionStrategy.DROP_IF_RUNNING]: "dropIfRunning",
  [AdmissionStrategy.REPLACE]: "replace",
  [AdmissionStrategy.QUEUE]: "queue",
} as const;

const RUNTIMES = {
  [ScriptRuntime.BASH]: "bash",
  [ScriptRuntime.PYTHON]: "python",
  [ScriptRuntime.NODE]: "node",
} as const;

function admissionFromProto(a: AdmissionStrategy): NonNullable<TaskSpecInput["admission"]> {
  checkEnum(AdmissionStrategySchema, a, "spec.admission");
  return ADMISSIONS[a as keyof typeof ADMISSIONS];
}

function backoffFromProto(b: BackoffStrategy): NonNullable<TaskSpecInput["backoff"]> {
  checkEnum(JitterStrategySchema, b.jitter, "spec.backoff.jitter");
  return {
    jitter: JITTERS[b.jitter as keyof typeof JITTERS],
    firstMs: Number(b.firstMs),
    maxMs: Number(b.maxMs),
    factor: b.factor,
  };
}

function subprocessFromProto(sp: SubprocessTask): SubprocessInput {
  const base = "spec.kind.subprocess";
  let mode: SubprocessInput["mode"];
  switch (sp.mode.case) {
    case "command":
      mode = { command: { command: sp.mode.value.command, args: [...sp.mode.value.args] } };
      break;
    case "script": {
      const s = sp.mode.value;
      let runtime: "bash" | "python" | "node" | { custom: { command: string; flag: string } };
      switch (s.runtime.case) {
        case "wellKnown":
          checkEnum(ScriptRuntimeSchema, s.runtime.value, `${base}.script.wellKnown`);
          runtime = RUNTIMES[s.runtime.value as keyof typeof RUNTIMES];
          break;
        case "custom":
          runtime = { custom: { command: s.runtime.value.command, flag: s.runtime.value.flag } };
          break;
        case undefined:
          throw invalid(`${base}.script.runtime: missing; set wellKnown or custom`);
      }
      mode = { script: { runtime, body: s.body, args: [...s.args] } };
      break;
    }
    case undefined:
      throw invalid(`${base}.mode: missing; set command or script`);
  }
  const out: SubprocessInput = {
    mode,
    env: sp.env.map((kv) => ({ key: kv.key, value: kv.value })),
    failOnNonZero: sp.failOnNonZero,
  };
  if (sp.cwd !== undefined) out.cwd = sp.cwd;
  return out;
}

/**
 * Proto `CreateSpec` → REST-shaped spec JSON (the input of `parseTaskSpec`).
 * Throws `InvalidRequest` for what the REST shape cannot express.
 */
export function specFromProto(spec: CreateSpec | undefined): TaskSpecInput {
  if (spec === undefined) throw invalid("spec: missing");
  const kind = spec.kind?.kind;
  if (kind === undefined || kind.case === undefined) {
    throw invalid("spec.kind: missing; set subprocess");
  }
  if (kind.case !== "subprocess") {
    throw invalid(`spec.kind: unsupported kind ${kind.case} (only subprocess is supported)`);
  }
  const out: TaskSpecInput = {
    slot: spec.slot,
    kind: { subprocess: subprocessFromProto(kind.value) },
    timeout: Number(spec.timeoutMs),
    restart: restartFromProto(spec),
    admission: admissionFromProto(spec.admission),
    labels: { ...spec.labels },
  };
  if (spec.backoff !== undefined) out.backoff = backoffFromProto(spec.backoff);
  if (spec.maxAttempts !== undefined) out.maxAttempts = spec.maxAttempts;
  if (spec.killGraceMs !== undefined) out.killGraceMs = spec.killGraceMs;
  if (spec.priority !== undefined) out.priority = spec.priority;
  if (spec.hold !== undefined) out.hold = spec.hold;
  if (spec.resources !== undefined) {
    const r = spec.resources;
    const resources: NonNullable<TaskSpecInput["resources"]> = {};
    if (r.memoryBytes !== undefined) resources.memoryBytes = Number(r.memoryBytes);
    if (r.cpuMillis !== undefined) resources.cpuMillis = r.cpuMillis;
    if (r.pids !== undefined) resources.pids = r.pids;
    out.resources = resources;
  }
  return out;
}

/**
 * The field paths where the REST shape and the proto (in proto3-JSON names)
 * differ, most specific first: a custom runtime is `script.custom`, a mode is
 * the oneof itself, the timeout and the restart interval are top-level
 * `…Ms` fields.
 */
const PROTO_PATHS: readonly (readonly [rest: string, proto: string])[] = [
  ["spec.kind.subprocess.mode.script.runtime", "spec.kind.subprocess.script"],
  ["spec.kind.subprocess.mode.command", "spec.kind.subprocess.command"],
  ["spec.kind.subprocess.mode.script", "spec.kind.subprocess.script"],
  ["spec.kind.subprocess.mode", "spec.kind.subprocess"],
  ["spec.restart.intervalMs", "spec.restartIntervalMs"],
  ["spec.timeout", "spec.timeoutMs"],
];

/**
 * Rethrow `err`; an `InvalidRequest` about a spec field (its message starts
 * with the field's REST path, see validate-spec.ts) is rethrown naming the
 * field as the proto does, so a gRPC or proto3-JSON client reads the name it
 * sent (`spec.timeoutMs`, not `spec.timeout`). Use as `.catch(inProtoTerms)`.
 */
export function inProtoTerms(err: unknown): never {
  if (err instanceof AgentError && err.code === "InvalidRequest") {
    const msg = err.message;
    for (const [rest, proto] of PROTO_PATHS) {
      const next = msg.charAt(rest.length);
      if (msg.startsWith(rest) && (next === "." || next === "[" || next === ":" || next === "")) {
        throw new AgentError(err.code, proto + msg.slice(rest.length), { cause: err });
      }
    }
  }
  throw err;
}

// ---------------------------------------------------------------- proto3 JSON on REST

/**
 * Parse a proto3-JSON `SubmitTaskRequest` body (`{"spec": {…}}`) and return the
 * REST-shaped spec; unknown fields and malformed values are `InvalidRequest`.
 * The submit validates the spec; pass its errors through `inProtoTerms`, as
 * gRPC does, so that a bad field is named as the body named it.
 */
export function specFromProtoJson(json: unknown): TaskSpecInput {
  let req;
  try {
    req = fromJson(SubmitTaskRequestSchema, json as JsonValue);
  } catch (err) {
    throw invalid(`invalid proto3 JSON SubmitTaskRequest: ${clipLine(err instanceof Error ? err.message : String(err), 200)}`);
  }
  return specFromProto(req.spec);
}

// ---------------------------------------------------------------- requests

/** `ListTasksRequest` → domain query: limit 0 → 100; above 1000 is `InvalidRequest`, as on REST. */
export function queryFromProto(req: ListTasksRequest): TaskQuery {
  if (req.limit > LIST_MAX_LIMIT) throw invalid(`limit: must be an integer 0..${LIST_MAX_LIMIT} (0 means ${LIST_DEFAULT_LIMIT}), got ${req.limit}`);
  const query: TaskQuery = {
    order: req.desc === true ? "desc" : "asc",
    limit: req.limit === 0 ? LIST_DEFAULT_LIMIT : req.limit,
    offset: req.offset,
  };
  if (req.slot !== undefined) query.slot = req.slot;
  if (req.status !== undefined) query.status = phaseFromStatus(req.status, "status");
  if (Object.keys(req.labels).length > 0) query.labels = { ...req.labels };
  if (req.createdAfter !== undefined) query.createdAfter = Number(req.createdAfter);
  if (req.createdBefore !== undefined) query.createdBefore = Number(req.createdBefore);
  if (req.owner !== undefined) query.owner = req.owner;
  return query;
}

/**
 * WaitTask / RunTask `timeout_ms`: 0 (proto3 "unset") → the REST default
 * (30 s); anything else goes to the domain, which rejects > 10 min with the
 * same message as REST.
 */
export function waitTimeoutFromProto(timeoutMs: bigint): number {
  return timeoutMs === 0n ? DEFAULT_WAIT_MS : Number(timeoutMs);
}

// ---------------------------------------------------------------- domain → proto

/** Non-negative integer → uint64 (fractions are truncated; the domain stores integers). */
function u64(n: number): bigint {
  return BigInt(Math.max(0, Math.trunc(n)));
}

/** Domain jitter → proto `JitterStrategy`. */
export const JITTER_OUT = { none: JitterStrategy.NONE, full: JitterStrategy.FULL, equal: JitterStrategy.EQUAL, decorrelated: JitterStrategy.DECORRELATED } as const;
/** Domain admission → proto `AdmissionStrategy`. */
export const ADMISSION_OUT = { dropIfRunning: AdmissionStrategy.DROP_IF_RUNNING, replace: AdmissionStrategy.REPLACE, queue: AdmissionStrategy.QUEUE } as const;
/** Domain well-known runtime → proto `ScriptRuntime`. */
export const RUNTIME_OUT = { bash: ScriptRuntime.BASH, python: ScriptRuntime.PYTHON, node: ScriptRuntime.NODE } as const;

/** Normalized domain spec → proto `CreateSpec` init. */
export function specToProto(spec: TaskSpec): MessageInitShape<typeof CreateSpecSchema> {
  const sp = spec.kind.subprocess;
  const mode: NonNullable<MessageInitShape<typeof SubprocessTaskSchema>["mode"]> =
    "command" in sp.mode
      ? { case: "command", value: { command: sp.mode.command.command, args: sp.mode.command.args } }
      : {
          case: "script",
          value: {
            runtime:
              typeof sp.mode.script.runtime === "string"
                ? { case: "wellKnown", value: RUNTIME_OUT[sp.mode.script.runtime] }
                : { case: "custom", value: { ...sp.mode.script.runtime.custom } },
            body: sp.mode.script.body,
            args: sp.mode.script.args,
          },
        };
  const restart =
    spec.restart.type === "never"
      ? RestartStrategy.NEVER
      : spec.restart.type === "onFailure"
        ? RestartStrategy.ON_FAILURE
        : RestartStrategy.ALWAYS;
  return {
    slot: spec.slot,
    kind: {
      kind: {
        case: "subprocess",
        value: {
          mode,
          env: sp.env.map((kv) => ({ key: kv.key, value: kv.value })),
          cwd: sp.cwd,
          failOnNonZero: sp.failOnNonZero,
        },
      },
    },
    timeoutMs: u64(spec.timeout),
    restart,
    restartIntervalMs: spec.restart.type === "always" ? u64(spec.restart.intervalMs) : undefined,
    backoff: {
      jitter: JITTER_OUT[spec.backoff.jitter],
      firstMs: u64(spec.backoff.firstMs),
      maxMs: u64(spec.backoff.maxMs),
      factor: spec.backoff.factor,
    },
    admission: ADMISSION_OUT[spec.admission],
    labels: { ...spec.labels },
    maxAttempts: spec.maxAttempts,
    killGraceMs: spec.killGraceMs,
    priority: spec.priority,
    hold: spec.hold,
    resources:
      spec.resources === undefined
        ? undefined
        : {
            memoryBytes: spec.resources.memoryBytes === undefined ? undefined : u64(spec.resources.memoryBytes),
            cpuMillis: spec.resources.cpuMillis,
            pids: spec.resources.pids,
          },
  };
}

/** Domain task → proto `TaskData`. */
export function taskToProto(task: Task): TaskData {
  return create(TaskDataSchema, {
    metadata: {
      id: task.metadata.id,
      createdAt: BigInt(task.metadata.createdAt),
      updatedAt: BigInt(task.metadata.updatedAt),
      resourceVersion: u64(task.metadata.resourceVersion),
      owner: task.metadata.owner,
    },
    spec: specToProto(task.spec),
    status: {
      phase: statusFromPhase(task.status.phase),
      attempt: task.status.attempt,
      error: task.status.error,
      exitCode: task.status.exitCode,
    },
  });
}

/** Domain run → proto `TaskRunInfo`. */
export function runToProto(run: TaskRun): TaskRunInfo {
  return create(TaskRunInfoSchema, {
    attempt: run.attempt,
    status: statusFromPhase(run.phase),
    startedAt: BigInt(run.startedAt),
    finishedAt: run.finishedAt === undefined ? undefined : BigInt(run.finishedAt),
    error: run.error,
    exitCode: run.exitCode,
  });
}

const utf8 = new TextEncoder();

/**
 * The wire bytes of `logEventToProto(ev)` — for `chunk` events encoded by
 * hand (the log stream's hot path: reflection-based `toBinary` cost more per
 * line than everything else in the agent), byte for byte what `toBinary`
 * writes (proto3: zero scalars and empty bytes omitted); other events through
 * `toBinary`.
 */
export function encodeLogEvent(ev: LogEvent): Uint8Array {
  if (ev.type !== "chunk" || ev.seq < 0 || ev.ts < 0 || !Number.isSafeInteger(ev.seq) || !Number.isSafeInteger(ev.ts)) {
    return toBinary(OutputEventProtoSchema, logEventToProto(ev));
  }
  const stream = ev.stream === "stdout" ? OutputStreamKind.STDOUT : OutputStreamKind.STDERR;
  const lineBytes = Buffer.byteLength(ev.line, "utf8");
  const inner =
    (ev.attempt !== 0 ? 1 + varintSize(ev.attempt) : 0) +
    1 + varintSize(stream) +
    (ev.seq !== 0 ? 1 + varintSize(ev.seq) : 0) +
    (ev.ts !== 0 ? 1 + varintSize(ev.ts) : 0) +
    (lineBytes !== 0 ? 1 + varintSize(lineBytes) + lineBytes : 0);
  const buf = Buffer.allocUnsafe(1 + varintSize(inner) + inner);
  buf[0] = 0x0a; // field 1 (chunk), length-delimited
  let o = putVarint(buf, 1, inner);
  if (ev.attempt !== 0) {
    buf[o++] = 0x08;
    o = putVarint(buf, o, ev.attempt);
  }
  buf[o++] = 0x10;
  o = putVarint(buf, o, stream);
  if (ev.seq !== 0) {
    buf[o++] = 0x18;
    o = putVarint(buf, o, ev.seq);
  }
  if (ev.ts !== 0) {
    buf[o++] = 0x20;
    o = putVarint(buf, o, ev.ts);
  }
  if (lineBytes !== 0) {
    buf[o++] = 0x2a;
    o = putVarint(buf, o, lineBytes);
    buf.write(ev.line, o, "utf8");
  }
  return buf;
}

/** Live-log event → proto `OutputEventProto` (the line as UTF-8 bytes). */
export function logEventToProto(ev: LogEvent): OutputEventProto {
  switch (ev.type) {
    case "chunk":
      return create(OutputEventProtoSchema, {
        kind: {
          case: "chunk",
          value: {
            attempt: ev.attempt,
            stream: ev.stream === "stdout" ? OutputStreamKind.STDOUT : OutputStreamKind.STDERR,
            seq: BigInt(ev.seq),
            ts: BigInt(ev.ts),
            line: utf8.encode(ev.line),
          },
        },
      });
    case "runStarted":
      return create(OutputEventProtoSchema, {
        kind: { case: "runStarted", value: { attempt: ev.attempt, startedAt: BigInt(ev.startedAt) } },
      });
    case "runFinished":
      return create(OutputEventProtoSchema, {
        kind: {
          case: "runFinished",
          value: { attempt: ev.attempt, exitCode: ev.exitCode, finishedAt: BigInt(ev.finishedAt) },
        },
      });
    case "lagged":
      return create(OutputEventProtoSchema, { kind: { case: "lagged", value: { skipped: BigInt(ev.skipped) } } });
  }
}

/** Task-watch record → proto `WatchEvent`. */
export function watchRecordToProto(rec: WatchRecord): WatchEvent {
  const ev = rec.event;
  const id = BigInt(rec.id);
  switch (ev.type) {
    case "task":
      return create(WatchEventSchema, { id, kind: { case: "task", value: taskToProto(ev.task) } });
    case "deleted":
      return create(WatchEventSchema, { id, kind: { case: "deletedId", value: ev.id } });
    case "lagged":
      return create(WatchEventSchema, { id, kind: { case: "lagged", value: BigInt(ev.skipped) } });
  }
}

function pick(doc: Record<string, unknown>, key: string): unknown {
  if (key in doc) return doc[key];
  for (const v of Object.values(doc)) {
    if (isRecord(v) && key in v) return v[key];
  }
  return undefined;
}

/**
 * REST info document → proto `Info`. Known fields are picked from the top
 * level or one level down (e.g. `limits.maxConcurrent`); the whole document
 * is also carried verbatim in `info_json`.
 */
export function infoToProto(doc: unknown, version: string): Info {
  const d = isRecord(doc) ? doc : {};
  const str = (k: string) => {
    const v = pick(d, k);
    return typeof v === "string" ? v : "";
  };
  const num = (k: string) => {
    const v = pick(d, k);
    return typeof v === "number" && Number.isFinite(v) && v >= 0 ? Math.trunc(v) : 0;
  };
  const caps = pick(d, "capabilities");
  return create(InfoSchema, {
    version: str("version") || version,
    uptimeMs: BigInt(num("uptimeMs")),
    hostname: str("hostname"),
    os: str("os"),
    arch: str("arch"),
    dataDir: str("dataDir"),
    maxConcurrent: num("maxConcurrent"),
    maxBodyBytes: BigInt(num("maxBodyBytes")),
    maxScriptBytes: BigInt(num("maxScriptBytes")),
    capabilities: Array.isArray(caps) ? caps.filter((c): c is string => typeof c === "string") : [],
    infoJson: JSON.stringify(doc ?? {}),
  });
}
