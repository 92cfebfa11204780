import { describe, expect, test } from "bun:test";
import { create, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { AgentError } from "../../src/errors.ts";
import { ListTasksRequestSchema } from "../../src/gen/solti/v1/api_pb.ts";
import {
  AdmissionStrategy,
  CreateSpecSchema,
  JitterStrategy,
  ObjectMetaSchema,
  OutputStreamKind,
  RestartStrategy,
  ScriptRuntime,
  TaskStatus,
} from "../../src/gen/solti/v1/types_pb.ts";
import {
  infoToProto,
  logEventToProto,
  phaseFromStatus,
  queryFromProto,
  runToProto,
  specFromProto,
  specFromProtoJson,
  specToProto,
  statusFromPhase,
  taskToProto,
  waitTimeoutFromProto,
  watchRecordToProto,
} from "../../src/grpc/convert.ts";
import { looksLikeProtoJson } from "../../src/grpc/proto-json-shape.ts";
import { PHASES, type Task } from "../../src/tasks/model.ts";
import { parseTaskSpec } from "../../src/tasks/validate-spec.ts";

type SpecInit = MessageInitShape<typeof CreateSpecSchema>;

const commandSpec: SpecInit = {
  slot: "my-job",
  kind: {
    kind: {
      case: "subprocess",
      value: {
        mode: { case: "command", value: { command: "echo", args: ["hello world"] } },
        env: [{ key: "ENV", value: "production" }],
        failOnNonZero: true,
      },
    },
  },
  timeoutMs: 30_000n,
  restart: RestartStrategy.NEVER,
  backoff: { jitter: JitterStrategy.FULL, firstMs: 1000n, maxMs: 10_000n, factor: 2 },
  admission: AdmissionStrategy.DROP_IF_RUNNING,
};

const scriptSpec: SpecInit = {
  slot: "my-script",
  kind: {
    kind: {
      case: "subprocess",
      value: {
        mode: {
          case: "script",
          value: { runtime: { case: "wellKnown", value: ScriptRuntime.BASH }, body: "ZWNobyBoaQo=", args: ["a"] },
        },
        cwd: "/tmp",
        failOnNonZero: false,
      },
    },
  },
  timeoutMs: 60_000n,
  restart: RestartStrategy.ALWAYS,
  restartIntervalMs: 5000n,
  backoff: { jitter: JitterStrategy.DECORRELATED, firstMs: 2000n, maxMs: 30_000n, factor: 1.5 },
  admission: AdmissionStrategy.QUEUE,
  labels: { team: "edge" },
  maxAttempts: 5,
  killGraceMs: 2000,
  priority: 7,
  hold: true,
  resources: { memoryBytes: 268_435_456n, cpuMillis: 500, pids: 64 },
};

function rejection(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (err) {
    if (err instanceof AgentError) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error("expected a rejection");
}

function withSpec(patch: Partial<SpecInit>): SpecInit {
  return { ...commandSpec, ...patch } as SpecInit;
}

describe("specFromProto", () => {
  test("command spec becomes the REST shape", () => {
    expect(specFromProto(create(CreateSpecSchema, commandSpec))).toEqual({
      slot: "my-job",
      kind: {
        subprocess: {
          mode: { command: { command: "echo", args: ["hello world"] } },
          env: [{ key: "ENV", value: "production" }],
          failOnNonZero: true,
        },
      },
      timeout: 30_000,
      restart: { type: "never" },
      backoff: { jitter: "full", firstMs: 1000, maxMs: 10_000, factor: 2 },
      admission: "dropIfRunning",
      labels: {},
    });
  });

  test("script spec with every extension becomes the REST shape", () => {
    expect(specFromProto(create(CreateSpecSchema, scriptSpec))).toEqual({
      slot: "my-script",
      kind: {
        subprocess: {
          mode: { script: { runtime: "bash", body: "ZWNobyBoaQo=", args: ["a"] } },
          env: [],
          cwd: "/tmp",
          failOnNonZero: false,
        },
      },
      timeout: 60_000,
      restart: { type: "always", intervalMs: 5000 },
      backoff: { jitter: "decorrelated", firstMs: 2000, maxMs: 30_000, factor: 1.5 },
      admission: "queue",
      labels: { team: "edge" },
      maxAttempts: 5,
      killGraceMs: 2000,
      priority: 7,
      hold: true,
      resources: { memoryBytes: 268_435_456, cpuMillis: 500, pids: 64 },
    });
  });

  test("custom runtime, python and node runtimes", () => {
    const script = (runtime: NonNullable<SpecInit["kind"]>) => specFromProto(create(CreateSpecSchema, withSpec({ kind: runtime }))).kind.subprocess.mode;
    const sp = (r: { case: "wellKnown"; value: ScriptRuntime } | { case: "custom"; value: { command: string; flag: string } }) => ({
      kind: { case: "subprocess" as const, value: { mode: { case: "script" as const, value: { runtime: r, body: "eA==" } } } },
    });
    expect(script(sp({ case: "custom", value: { command: "ruby", flag: "-e" } }))).toEqual({
      script: { runtime: { custom: { command: "ruby", flag: "-e" } }, body: "eA==", args: [] },
    });
    expect(script(sp({ case: "wellKnown", value: ScriptRuntime.PYTHON }))).toEqual({ script: { runtime: "python", body: "eA==", args: [] } });
    expect(script(sp({ case: "wellKnown", value: ScriptRuntime.NODE }))).toEqual({ script: { runtime: "node", body: "eA==", args: [] } });
  });

  test("restart ON_FAILURE and ALWAYS without interval; missing backoff is omitted", () => {
    const onFailure = specFromProto(create(CreateSpecSchema, withSpec({ restart: RestartStrategy.ON_FAILURE, backoff: undefined })));
    expect(onFailure.restart).toEqual({ type: "onFailure" });
    expect("backoff" in onFailure).toBe(false);
    expect(specFromProto(create(CreateSpecSchema, withSpec({ restart: RestartStrategy.ALWAYS }))).restart).toEqual({ type: "always" });
  });

  test("proto3 defaults: fail_on_non_zero unset stays false; timeout_ms 0 reaches the domain, which rejects it as REST does", () => {
    const spec = create(CreateSpecSchema, withSpec({ timeoutMs: 0n }));
    if (spec.kind?.kind.case === "subprocess") spec.kind.kind.value.failOnNonZero = false;
    const rest = specFromProto(spec);
    expect(rest.kind.subprocess.failOnNonZero).toBe(false);
    expect(rest.timeout).toBe(0);
    const viaProto = rejection(() => parseTaskSpec(rest));
    const viaRest = rejection(() => parseTaskSpec({ ...rest, timeout: 0 }));
    expect(viaProto).toEqual(viaRest);
    expect(viaProto.code).toBe("InvalidRequest");
  });

  const cases: [string, () => unknown, string][] = [
    ["missing spec", () => specFromProto(undefined), "spec: missing"],
    ["missing kind", () => specFromProto(create(CreateSpecSchema, withSpec({ kind: undefined }))), "spec.kind: missing; set subprocess"],
    ["empty kind", () => specFromProto(create(CreateSpecSchema, withSpec({ kind: {} }))), "spec.kind: missing; set subprocess"],
    [
      "wasm kind",
      () => specFromProto(create(CreateSpecSchema, withSpec({ kind: { kind: { case: "wasm", value: { module: "m.wasm" } } } }))),
      "spec.kind: unsupported kind wasm (only subprocess is supported)",
    ],
    [
      "container kind",
      () => specFromProto(create(CreateSpecSchema, withSpec({ kind: { kind: { case: "container", value: { image: "alpine" } } } }))),
      "spec.kind: unsupported kind container (only subprocess is supported)",
    ],
    [
      "missing mode",
      () => specFromProto(create(CreateSpecSchema, withSpec({ kind: { kind: { case: "subprocess", value: {} } } }))),
      "spec.kind.subprocess.mode: missing; set command or script",
    ],
    [
      "missing script runtime",
      () =>
        specFromProto(
          create(CreateSpecSchema, withSpec({ kind: { kind: { case: "subprocess", value: { mode: { case: "script", value: { body: "eA==" } } } } } })),
        ),
      "spec.kind.subprocess.script.runtime: missing; set wellKnown or custom",
    ],
    [
      "SCRIPT_RUNTIME_UNSPECIFIED",
      () =>
        specFromProto(
          create(
            CreateSpecSchema,
            withSpec({
              kind: {
                kind: {
                  case: "subprocess",
                  value: { mode: { case: "script", value: { runtime: { case: "wellKnown", value: ScriptRuntime.UNSPECIFIED }, body: "eA==" } } },
                },
              },
            }),
          ),
        ),
      "spec.kind.subprocess.script.wellKnown: SCRIPT_RUNTIME_UNSPECIFIED is not allowed; use one of SCRIPT_RUNTIME_BASH, SCRIPT_RUNTIME_PYTHON, SCRIPT_RUNTIME_NODE",
    ],
    [
      "RESTART_STRATEGY_UNSPECIFIED",
      () => specFromProto(create(CreateSpecSchema, withSpec({ restart: RestartStrategy.UNSPECIFIED }))),
      "spec.restart: RESTART_STRATEGY_UNSPECIFIED is not allowed; use one of RESTART_STRATEGY_NEVER, RESTART_STRATEGY_ON_FAILURE, RESTART_STRATEGY_ALWAYS",
    ],
    [
      "undefined restart number",
      () => specFromProto(create(CreateSpecSchema, withSpec({ restart: 9 as RestartStrategy }))),
      "spec.restart: unknown value 9 is not defined; use one of RESTART_STRATEGY_NEVER, RESTART_STRATEGY_ON_FAILURE, RESTART_STRATEGY_ALWAYS",
    ],
    [
      "ADMISSION_STRATEGY_UNSPECIFIED",
      () => specFromProto(create(CreateSpecSchema, withSpec({ admission: AdmissionStrategy.UNSPECIFIED }))),
      "spec.admission: ADMISSION_STRATEGY_UNSPECIFIED is not allowed; use one of ADMISSION_STRATEGY_DROP_IF_RUNNING, ADMISSION_STRATEGY_REPLACE, ADMISSION_STRATEGY_QUEUE",
    ],
    [
      "JITTER_STRATEGY_UNSPECIFIED",
      () => specFromProto(create(CreateSpecSchema, withSpec({ backoff: { firstMs: 1n, maxMs: 2n, factor: 1 } }))),
      "spec.backoff.jitter: JITTER_STRATEGY_UNSPECIFIED is not allowed; use one of JITTER_STRATEGY_NONE, JITTER_STRATEGY_FULL, JITTER_STRATEGY_EQUAL, JITTER_STRATEGY_DECORRELATED",
    ],
    [
      "restart interval without ALWAYS",
      () => specFromProto(create(CreateSpecSchema, withSpec({ restartIntervalMs: 10n }))),
      "spec.restartIntervalMs: only allowed with RESTART_STRATEGY_ALWAYS, not RESTART_STRATEGY_NEVER",
    ],
  ];
  for (const [name, fn, message] of cases) {
    test(`rejects ${name}`, () => {
      expect(rejection(fn)).toEqual({ code: "InvalidRequest", message });
    });
  }
});

describe("domain → proto", () => {
  const task = (spec: SpecInit): Task => ({
    metadata: { id: "tsk_01JR0000000000000000000001", resourceVersion: 2, createdAt: 1_712_750_400_000, updatedAt: 1_712_750_401_000, owner: "alice" },
    spec: parseTaskSpec(specFromProto(create(CreateSpecSchema, spec))),
    status: { phase: "failed", attempt: 3, exitCode: 1, error: "exit code 1" },
  });

  test("CreateSpec survives proto → REST → domain → proto when every field is set", () => {
    for (const spec of [commandSpec, scriptSpec]) {
      const original = create(CreateSpecSchema, spec);
      const back = create(CreateSpecSchema, specToProto(task(spec).spec));
      expect(back).toEqual(original);
      expect(toBinary(CreateSpecSchema, back)).toEqual(toBinary(CreateSpecSchema, original));
    }
  });

  test("Task → TaskData", () => {
    const data = taskToProto(task(commandSpec));
    expect(data.metadata).toEqual(
      create(ObjectMetaSchema, {
        id: "tsk_01JR0000000000000000000001",
        createdAt: 1_712_750_400_000n,
        updatedAt: 1_712_750_401_000n,
        resourceVersion: 2n,
        owner: "alice",
      }),
    );
    expect(data.spec).toEqual(create(CreateSpecSchema, commandSpec));
    expect({ ...data.status }).toEqual({
      $typeName: "solti.v1.TaskStatusInfo",
      phase: TaskStatus.FAILED,
      attempt: 3,
      error: "exit code 1",
      exitCode: 1,
    });
  });

  test("TaskRun → TaskRunInfo, with and without the optional fields", () => {
    expect({ ...runToProto({ attempt: 1, phase: "failed", startedAt: 10, finishedAt: 20, exitCode: 1, error: "exit code 1" }) }).toEqual({
      $typeName: "solti.v1.TaskRunInfo",
      attempt: 1,
      status: TaskStatus.FAILED,
      startedAt: 10n,
      finishedAt: 20n,
      exitCode: 1,
      error: "exit code 1",
    });
    expect({ ...runToProto({ attempt: 2, phase: "running", startedAt: 30 }) }).toEqual({
      $typeName: "solti.v1.TaskRunInfo",
      attempt: 2,
      status: TaskStatus.RUNNING,
      startedAt: 30n,
    });
  });

  test("every phase maps to its TaskStatus and back; UNSPECIFIED is rejected", () => {
    const statuses = PHASES.map(statusFromPhase);
    expect(statuses).toEqual([
      TaskStatus.PENDING,
      TaskStatus.RUNNING,
      TaskStatus.SUCCEEDED,
      TaskStatus.FAILED,
      TaskStatus.TIMEOUT,
      TaskStatus.CANCELED,
      TaskStatus.EXHAUSTED,
    ]);
    expect(statuses.map((s) => phaseFromStatus(s))).toEqual([...PHASES]);
    expect(rejection(() => phaseFromStatus(TaskStatus.UNSPECIFIED))).toEqual({
      code: "InvalidRequest",
      message:
        "status: TASK_STATUS_UNSPECIFIED is not allowed; use one of TASK_STATUS_PENDING, TASK_STATUS_RUNNING, TASK_STATUS_SUCCEEDED, TASK_STATUS_FAILED, TASK_STATUS_TIMEOUT, TASK_STATUS_CANCELED, TASK_STATUS_EXHAUSTED",
    });
  });

  test("log events → OutputEventProto (line as UTF-8 bytes)", () => {
    const plain = (e: Parameters<typeof logEventToProto>[0]) => {
      const k = logEventToProto(e).kind;
      return { case: k.case, value: k.value === undefined ? undefined : { ...k.value } };
    };
    expect(plain({ type: "chunk", attempt: 1, stream: "stderr", seq: 3, ts: 99, line: "héllo" })).toEqual({
      case: "chunk",
      value: {
        $typeName: "solti.v1.OutputChunkProto",
        attempt: 1,
        stream: OutputStreamKind.STDERR,
        seq: 3n,
        ts: 99n,
        line: new TextEncoder().encode("héllo"),
      },
    });
    expect(plain({ type: "runStarted", attempt: 2, startedAt: 5 })).toEqual({
      case: "runStarted",
      value: { $typeName: "solti.v1.RunStartedProto", attempt: 2, startedAt: 5n },
    });
    expect(plain({ type: "runFinished", attempt: 2, finishedAt: 6 })).toEqual({
      case: "runFinished",
      value: { $typeName: "solti.v1.RunFinishedProto", attempt: 2, finishedAt: 6n },
    });
    expect(plain({ type: "runFinished", attempt: 2, exitCode: 0, finishedAt: 6 })).toEqual({
      case: "runFinished",
      value: { $typeName: "solti.v1.RunFinishedProto", attempt: 2, exitCode: 0, finishedAt: 6n },
    });
    expect(plain({ type: "lagged", skipped: 42 })).toEqual({ case: "lagged", value: { $typeName: "solti.v1.LaggedProto", skipped: 42n } });
  });

  test("watch records → WatchEvent", () => {
    const t = task(commandSpec);
    expect(watchRecordToProto({ id: 7, event: { type: "task", task: t } }).kind).toEqual({ case: "task", value: taskToProto(t) });
    const deleted = watchRecordToProto({ id: 8, event: { type: "deleted", id: "tsk_x", slot: "s", labels: {} } });
    expect([deleted.id, deleted.kind]).toEqual([8n, { case: "deletedId", value: "tsk_x" }]);
    expect(watchRecordToProto({ id: 9, event: { type: "lagged", skipped: 3 } }).kind).toEqual({ case: "lagged", value: 3n });
  });

  test("info document → Info, with the whole document in info_json", () => {
    const doc = {
      name: "tasklane",
      version: "1.2.3",
      uptimeMs: 1234,
      hostname: "edge-1",
      os: "linux",
      arch: "x64",
      dataDir: "/var/lib/tasklane",
      limits: { maxConcurrent: 8, maxBodyBytes: 4_194_304, maxScriptBytes: 2_097_152 },
      capabilities: ["cancel", "wait"],
    };
    const info = infoToProto(doc, "9.9.9");
    expect({ ...info }).toEqual({
      $typeName: "tasklane.v1.Info",
      version: "1.2.3",
      uptimeMs: 1234n,
      hostname: "edge-1",
      os: "linux",
      arch: "x64",
      dataDir: "/var/lib/tasklane",
      maxConcurrent: 8,
      maxBodyBytes: 4_194_304n,
      maxScriptBytes: 2_097_152n,
      capabilities: ["cancel", "wait"],
      infoJson: JSON.stringify(doc),
    });
    expect(infoToProto(undefined, "9.9.9").version).toBe("9.9.9");
  });
});

describe("requests", () => {
  test("ListTasksRequest → query: limit 0 means 100, 1000 is the maximum", () => {
    expect(queryFromProto(create(ListTasksRequestSchema, {}))).toEqual({ order: "asc", limit: 100, offset: 0 });
    expect(
      queryFromProto(
        create(ListTasksRequestSchema, {
          slot: "s",
          status: TaskStatus.RUNNING,
          limit: 1000,
          offset: 5,
          labels: { team: "edge" },
          createdAfter: 1n,
          createdBefore: 2n,
          desc: true,
          owner: "alice",
        }),
      ),
    ).toEqual({
      slot: "s",
      status: "running",
      limit: 1000,
      offset: 5,
      labels: { team: "edge" },
      createdAfter: 1,
      createdBefore: 2,
      order: "desc",
      owner: "alice",
    });
    expect(rejection(() => queryFromProto(create(ListTasksRequestSchema, { limit: 1001 })))).toEqual({
      code: "InvalidRequest",
      message: "limit: must be an integer 0..1000 (0 means 100), got 1001",
    });
    expect(rejection(() => queryFromProto(create(ListTasksRequestSchema, { status: TaskStatus.UNSPECIFIED }))).message).toStartWith(
      "status: TASK_STATUS_UNSPECIFIED is not allowed",
    );
  });

  test("wait timeout: 0 means 30 s, others pass through", () => {
    expect([waitTimeoutFromProto(0n), waitTimeoutFromProto(5n), waitTimeoutFromProto(700_000n)]).toEqual([30_000, 5, 700_000]);
  });
});

describe("proto3 JSON on REST", () => {
  // The two grpcurl examples of the API document, verbatim.
  const seedCommand = {
    spec: {
      slot: "my-job",
      kind: { subprocess: { command: { command: "echo", args: ["hello world"] }, failOnNonZero: true } },
      timeoutMs: "30000",
      restart: "RESTART_STRATEGY_NEVER",
      backoff: { jitter: "JITTER_STRATEGY_FULL", firstMs: "1000", maxMs: "10000", factor: 2.0 },
      admission: "ADMISSION_STRATEGY_DROP_IF_RUNNING",
    },
  };
  const seedScript = {
    spec: {
      slot: "my-script",
      kind: {
        subprocess: {
          script: { wellKnown: "SCRIPT_RUNTIME_BASH", body: "ZWNobyAiaGVsbG8gZnJvbSBzY3JpcHQiCg==", args: [] },
          env: [{ key: "ENV", value: "production" }],
          failOnNonZero: true,
        },
      },
      timeoutMs: "60000",
      restart: "RESTART_STRATEGY_ON_FAILURE",
      backoff: { jitter: "JITTER_STRATEGY_EQUAL", firstMs: "2000", maxMs: "30000", factor: 2.0 },
      admission: "ADMISSION_STRATEGY_REPLACE",
    },
  };
  const restCommand = {
    spec: {
      slot: "my-job",
      kind: { subprocess: { mode: { command: { command: "echo", args: ["hello world"] } }, env: [], failOnNonZero: true } },
      timeout: 30000,
      restart: { type: "never" },
      backoff: { jitter: "full", firstMs: 1000, maxMs: 10000, factor: 2.0 },
      admission: "dropIfRunning",
    },
  };

  test("detects the proto3 shape and not the REST shape", () => {
    expect([seedCommand, seedScript].map(looksLikeProtoJson)).toEqual([true, true]);
    expect(looksLikeProtoJson({ spec: { slot: "x", kind: { subprocess: { command: { command: "echo" } } } } })).toBe(true);
    expect(looksLikeProtoJson({ spec: { slot: "x", restart: "RESTART_STRATEGY_NEVER" } })).toBe(true);
    expect(looksLikeProtoJson({ spec: { slot: "x", kind: { wasm: {} } } })).toBe(true);
    const noMode = { spec: { slot: "x", kind: { subprocess: { env: [] } } } };
    const notProto: unknown[] = [restCommand, noMode, {}, null, "x", { spec: { slot: "x" } }];
    expect(notProto.map((b) => looksLikeProtoJson(b))).toEqual([false, false, false, false, false, false]);
  });

  test("the seed examples become REST-shaped specs that validate", () => {
    expect(specFromProtoJson(seedCommand) as unknown).toEqual({ ...restCommand.spec, labels: {} });
    expect(specFromProtoJson(seedScript)).toEqual({
      slot: "my-script",
      kind: {
        subprocess: {
          mode: { script: { runtime: "bash", body: "ZWNobyAiaGVsbG8gZnJvbSBzY3JpcHQiCg==", args: [] } },
          env: [{ key: "ENV", value: "production" }],
          failOnNonZero: true,
        },
      },
      timeout: 60000,
      restart: { type: "onFailure" },
      backoff: { jitter: "equal", firstMs: 2000, maxMs: 30000, factor: 2 },
      admission: "replace",
      labels: {},
    });
    expect(parseTaskSpec(specFromProtoJson(seedScript)).slot).toBe("my-script");
  });

  test("unknown fields, bad enum names and missing enums are InvalidRequest", () => {
    const typo = { spec: { ...seedCommand.spec, timeoutMS: "1" } };
    expect(rejection(() => specFromProtoJson(typo))).toEqual({
      code: "InvalidRequest",
      message: 'invalid proto3 JSON SubmitTaskRequest: cannot decode message solti.v1.CreateSpec from JSON: key "timeoutMS" is unknown',
    });
    const badEnum = { spec: { ...seedCommand.spec, restart: "RESTART_STRATEGY_SOMETIMES" } };
    expect(rejection(() => specFromProtoJson(badEnum)).message).toStartWith("invalid proto3 JSON SubmitTaskRequest: ");
    const { restart: _omit, ...noRestart } = seedCommand.spec;
    expect(rejection(() => specFromProtoJson({ spec: noRestart })).message).toStartWith("spec.restart: RESTART_STRATEGY_UNSPECIFIED is not allowed");
  });
});
