/**
 * The task resource in its domain (REST) shape — CONTRACT §1.
 *
 * One TypeBox schema per shape: the schemas validate input, give the static
 * types and feed the OpenAPI document. The *input* schema (`TaskSpecInput`)
 * lets optional fields be omitted; `parseTaskSpec` (validate-spec.ts) turns it
 * into a normalized `TaskSpec` with every default filled in.
 */
import { Type, type Static, type TSchema } from "@sinclair/typebox";

const strict = { additionalProperties: false } as const;

/** Union of string literals, kept as a TypeBox union so errors can list the allowed values. */
function literals<const T extends readonly string[]>(values: T, description?: string) {
  return Type.Union(
    values.map((v) => Type.Literal(v)),
    description ? { description } : {},
  ) as unknown as TSchema & { static: T[number] };
}

export const PHASES = ["pending", "running", "succeeded", "failed", "timeout", "canceled", "exhausted"] as const;
/** Lifecycle phase of a task or of one run. */
export type Phase = (typeof PHASES)[number];
export const PhaseSchema = literals(PHASES, "task phase");

/** Phases after which the task never runs again (unless restarted explicitly). */
export const TERMINAL_PHASES: ReadonlySet<Phase> = new Set(["succeeded", "failed", "timeout", "canceled", "exhausted"]);
export function isTerminal(phase: Phase): boolean {
  return TERMINAL_PHASES.has(phase);
}

export const JITTERS = ["none", "full", "equal", "decorrelated"] as const;
export type Jitter = (typeof JITTERS)[number];
export const ADMISSIONS = ["dropIfRunning", "replace", "queue"] as const;
export type Admission = (typeof ADMISSIONS)[number];
export const WELL_KNOWN_RUNTIMES = ["bash", "python", "node"] as const;
export type WellKnownRuntime = (typeof WELL_KNOWN_RUNTIMES)[number];
export const STREAMS = ["stdout", "stderr"] as const;
export type StreamKind = (typeof STREAMS)[number];

/** Longest backoff or restart interval: 7 days (ms). Integers only, so every value fits the proto uint64 fields. */
export const MAX_DELAY_MS = 7 * 24 * 3600 * 1000;
/** Largest value of a proto uint32 field (maxAttempts, cpuMillis, pids). */
export const UINT32_MAX = 4_294_967_295;

export const KeyValueSchema = Type.Object({ key: Type.String(), value: Type.String() }, strict);
export type KeyValue = Static<typeof KeyValueSchema>;

export const CommandModeSchema = Type.Object(
  {
    command: Type.Object(
      { command: Type.String({ description: "executable name or path" }), args: Type.Optional(Type.Array(Type.String())) },
      strict,
    ),
  },
  strict,
);

export const CustomRuntimeSchema = Type.Object(
  { custom: Type.Object({ command: Type.String(), flag: Type.String() }, strict) },
  strict,
);

export const ScriptModeSchema = Type.Object(
  {
    script: Type.Object(
      {
        runtime: Type.Union([literals(WELL_KNOWN_RUNTIMES), CustomRuntimeSchema]),
        body: Type.String({ description: "script source, standard base64, ≤ 2 MiB decoded" }),
        args: Type.Optional(Type.Array(Type.String())),
      },
      strict,
    ),
  },
  strict,
);

export const SubprocessInputSchema = Type.Object(
  {
    mode: Type.Union([CommandModeSchema, ScriptModeSchema]),
    env: Type.Optional(Type.Array(KeyValueSchema)),
    cwd: Type.Optional(Type.String()),
    failOnNonZero: Type.Optional(Type.Boolean({ description: "default true on REST" })),
  },
  strict,
);

export const RestartInputSchema = Type.Union([
  Type.Object({ type: Type.Literal("never") }, strict),
  Type.Object({ type: Type.Literal("onFailure") }, strict),
  Type.Object({ type: Type.Literal("always"), intervalMs: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_DELAY_MS })) }, strict),
]);

export const BackoffSchema = Type.Object(
  {
    jitter: literals(JITTERS),
    firstMs: Type.Integer({ exclusiveMinimum: 0, maximum: MAX_DELAY_MS }),
    maxMs: Type.Integer({ exclusiveMinimum: 0, maximum: MAX_DELAY_MS }),
    factor: Type.Number({ minimum: 1 }),
  },
  strict,
);
export type Backoff = Static<typeof BackoffSchema>;

export const ResourcesSchema = Type.Object(
  {
    memoryBytes: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })),
    cpuMillis: Type.Optional(Type.Integer({ minimum: 1, maximum: UINT32_MAX })),
    pids: Type.Optional(Type.Integer({ minimum: 1, maximum: UINT32_MAX })),
  },
  strict,
);
export type Resources = Static<typeof ResourcesSchema>;

export const MAX_TIMEOUT_MS = 7 * 24 * 3600 * 1000;

/** What a client may send as `spec` (REST shape). */
export const TaskSpecInputSchema = Type.Object(
  {
    slot: Type.String({ description: "1..64 of [A-Za-z0-9._-], not . or .." }),
    kind: Type.Object({ subprocess: SubprocessInputSchema }, strict),
    timeout: Type.Optional(Type.Integer({ exclusiveMinimum: 0, maximum: MAX_TIMEOUT_MS, description: "ms per attempt" })),
    restart: Type.Optional(RestartInputSchema),
    backoff: Type.Optional(BackoffSchema),
    admission: Type.Optional(literals(ADMISSIONS)),
    labels: Type.Optional(Type.Record(Type.String(), Type.String())),
    maxAttempts: Type.Optional(Type.Integer({ minimum: 1, maximum: UINT32_MAX })),
    killGraceMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 600_000 })),
    priority: Type.Optional(Type.Integer({ minimum: 0, maximum: 10 })),
    hold: Type.Optional(Type.Boolean()),
    resources: Type.Optional(ResourcesSchema),
  },
  strict,
);
export type TaskSpecInput = Static<typeof TaskSpecInputSchema>;

export type CommandMode = { command: { command: string; args: string[] } };
export type ScriptRuntime = WellKnownRuntime | { custom: { command: string; flag: string } };
export type ScriptMode = { script: { runtime: ScriptRuntime; body: string; args: string[] } };
export type RestartPolicy = { type: "never" } | { type: "onFailure" } | { type: "always"; intervalMs: number };

/** A validated spec with every default filled in; this is what is stored and returned. */
export interface TaskSpec {
  slot: string;
  kind: {
    subprocess: {
      mode: CommandMode | ScriptMode;
      env: KeyValue[];
      cwd?: string;
      failOnNonZero: boolean;
    };
  };
  timeout: number;
  restart: RestartPolicy;
  backoff: Backoff;
  admission: Admission;
  labels: Record<string, string>;
  maxAttempts?: number;
  killGraceMs?: number;
  priority?: number;
  hold?: boolean;
  resources?: Resources;
}

/** Output schema of a stored spec (same shape as input, defaults present). */
export const TaskSpecSchema = TaskSpecInputSchema;

export const TaskMetadataSchema = Type.Object({
  id: Type.String({ description: "tsk_ + ULID" }),
  resourceVersion: Type.Integer(),
  createdAt: Type.Integer({ description: "Unix ms" }),
  updatedAt: Type.Integer({ description: "Unix ms" }),
  owner: Type.Optional(Type.String()),
});
export type TaskMetadata = Static<typeof TaskMetadataSchema>;

export const TaskStatusSchema = Type.Object({
  phase: PhaseSchema,
  attempt: Type.Integer(),
  exitCode: Type.Optional(Type.Integer()),
  error: Type.Optional(Type.String()),
});
export interface TaskStatus {
  phase: Phase;
  attempt: number;
  exitCode?: number;
  error?: string;
}

export const TaskSchema = Type.Object({ metadata: TaskMetadataSchema, spec: TaskSpecSchema, status: TaskStatusSchema });
/** The task resource. */
export interface Task {
  metadata: TaskMetadata;
  spec: TaskSpec;
  status: TaskStatus;
}

export const TaskRunSchema = Type.Object({
  attempt: Type.Integer(),
  phase: PhaseSchema,
  startedAt: Type.Integer(),
  finishedAt: Type.Optional(Type.Integer()),
  exitCode: Type.Optional(Type.Integer()),
  error: Type.Optional(Type.String()),
});
/** One attempt of a task. */
export interface TaskRun {
  attempt: number;
  phase: Phase;
  startedAt: number;
  finishedAt?: number;
  exitCode?: number;
  error?: string;
}

/** Process identity of a run, recorded so recovery can kill a leftover group and never a reused pid. */
export interface RunProcess {
  pid: number;
  pgid: number;
  /** Start time in clock ticks since boot, as field 22 of /proc/<pid>/stat shows it: estimated at spawn, compared within a tolerance (runner/proc-stat.ts). */
  startTime?: string;
}

/** Live-log events (CONTRACT §3). */
export type LogEvent =
  | { type: "runStarted"; attempt: number; startedAt: number }
  | { type: "chunk"; attempt: number; stream: StreamKind; seq: number; ts: number; line: string }
  | { type: "runFinished"; attempt: number; exitCode?: number; finishedAt: number }
  | { type: "lagged"; skipped: number };

/** A log event with its per-task event number (the SSE `id`). `lagged` carries the id of the last skipped event. */
export interface LogRecord {
  id: number;
  event: LogEvent;
}

/** Page size of a task list when the client names none (REST: no `limit`; gRPC: `limit` 0). */
export const LIST_DEFAULT_LIMIT = 100;
/** Largest page of a task list; a larger `limit` is `InvalidRequest` on every transport. */
export const LIST_MAX_LIMIT = 1000;

/** Task-list query (REST query parameters / ListTasksRequest). */
export interface TaskQuery {
  slot?: string;
  status?: Phase;
  labels?: Record<string, string>;
  owner?: string;
  createdAfter?: number;
  createdBefore?: number;
  order: "asc" | "desc";
  limit: number;
  offset: number;
}

/** Result of admission for a submitted task. */
export type AdmissionOutcome = "started" | "queued" | "replaced" | "dropped";

/** Who is calling; `undefined` principal means auth is off (everything allowed). */
export interface Caller {
  principal?: { name: string; role: "admin" | "user" | "viewer" };
}
