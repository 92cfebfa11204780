/**
 * The compiled binary's gRPC server against a client on gRPC's C core
 * (Python `grpcio`, Debian's python3-grpcio; `.ci/run` installs it): a
 * second gRPC implementation that shares no code with the agent's grpc-js,
 * as a Go, Rust or C++ control plane would be. The fixture only carries
 * bytes; requests are encoded and answers decoded here with the generated
 * protobuf code. Covers a log stream far beyond one flow-control window
 * followed while the task runs, status codes with their details, auth
 * metadata, deadlines and cancellation from the client, health and
 * reflection.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromBinary, fromJson, toBinary, type DescMessage, type JsonValue } from "@bufbuild/protobuf";
import { HealthCheckRequestSchema, HealthCheckResponseSchema, HealthCheckResponse_ServingStatus } from "../../src/gen/grpc/health/v1/health_pb.ts";
import { ServerReflectionRequestSchema, ServerReflectionResponseSchema } from "../../src/gen/grpc/reflection/v1/reflection_pb.ts";
import {
  GetTaskStatusRequestSchema,
  GetTaskStatusResponseSchema,
  ListTaskRunsRequestSchema,
  ListTaskRunsResponseSchema,
  StreamTaskLogsRequestSchema,
  SubmitTaskRequestSchema,
  SubmitTaskResponseSchema,
} from "../../src/gen/solti/v1/api_pb.ts";
import { OutputEventProtoSchema, OutputStreamKind, TaskStatus } from "../../src/gen/solti/v1/types_pb.ts";
import { WaitTaskRequestSchema, WaitTaskResponseSchema } from "../../src/gen/tasklane/v1/agent_pb.ts";
import { cCore, Code, hasGrpcio } from "../helpers/c-core-client.ts";
import { startBinary } from "./binary.ts";

const { OK, CANCELLED, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND, UNIMPLEMENTED, UNAUTHENTICATED } = Code;

const TOKEN = "c-core-interop-token";
const AUTH: [string, string][] = [["authorization", `Bearer ${TOKEN}`]];

const enc = <D extends DescMessage>(schema: D, json: JsonValue) => toBinary(schema, fromJson(schema, json));
const SOLTI = "/solti.v1.SoltiApi";
const AGENT = "/tasklane.v1.AgentService";

/** A bash task that prints `lines` lines, one to stderr, then waits for `gate` to exist and prints one more. */
function gatedSpec(gate: string, lines: number): JsonValue {
  const script = `for i in $(seq 1 ${lines}); do echo "out $i"; done; echo err-line >&2; while [ ! -e "$GATE" ]; do sleep 0.01; done; echo after-gate`;
  return {
    spec: {
      slot: `c-core-${crypto.randomUUID().slice(0, 8)}`,
      kind: { subprocess: { script: { wellKnown: "SCRIPT_RUNTIME_BASH", body: Buffer.from(script).toString("base64") }, env: [{ key: "GATE", value: gate }], failOnNonZero: true } },
      timeoutMs: "60000",
      restart: "RESTART_STRATEGY_NEVER",
      admission: "ADMISSION_STRATEGY_QUEUE",
    },
  };
}

async function withAgent(fn: (grpcAddr: string, dir: string) => Promise<void>, args: string[] = []): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "tasklane-c-core-"));
  try {
    await using agent = await startBinary({ env: { TASKLANE_ADMIN_TOKEN: TOKEN }, dataDir: join(dir, "data"), args });
    await fn(agent.grpcAddr, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function submit(target: string, body: JsonValue): Promise<string> {
  const [a] = await cCore(target, [{ path: `${SOLTI}/SubmitTask`, kind: "unary", request: enc(SubmitTaskRequestSchema, body), metadata: AUTH }]);
  expect(a!.code).toBe(OK);
  return fromBinary(SubmitTaskResponseSchema, a!.messages[0]!).taskId;
}

// CI installs python3-grpcio (.ci/run) and must run these; elsewhere they need it installed.
describe.skipIf(!hasGrpcio && !process.env.CI)("gRPC with a C-core client (grpcio)", () => {
  test("a log stream of 20 000 lines followed while the task runs arrives complete and in order; status and runs after", async () => {
    await withAgent(async (target, dir) => {
      const gate = join(dir, "gate");
      const lines = 20_000;
      const taskId = await submit(target, gatedSpec(gate, lines));
      const idReq = (schema: DescMessage) => enc(schema, { taskId });
      // runStarted + 20 000 stdout lines + the stderr line are out before the task waits for the gate:
      // the client opens the gate once it has all of them, so the stream is followed live to the end.
      const [logs, status, runs] = await cCore(target, [
        { path: `${SOLTI}/StreamTaskLogs`, kind: "stream", request: idReq(StreamTaskLogsRequestSchema), metadata: AUTH, timeout: 60, touchAfter: [lines + 2, gate] },
        { path: `${SOLTI}/GetTaskStatus`, kind: "unary", request: idReq(GetTaskStatusRequestSchema), metadata: AUTH },
        { path: `${SOLTI}/ListTaskRuns`, kind: "unary", request: idReq(ListTaskRunsRequestSchema), metadata: AUTH },
      ]);
      expect(logs!.code).toBe(OK);
      const events = logs!.messages.map((m) => fromBinary(OutputEventProtoSchema, m).kind);
      expect(events.length).toBe(lines + 4);
      expect(events[0]).toMatchObject({ case: "runStarted", value: { attempt: 1 } });
      expect(events.at(-1)).toMatchObject({ case: "runFinished", value: { attempt: 1, exitCode: 0 } });
      const text = (stream: OutputStreamKind) =>
        events.flatMap((e) => (e.case === "chunk" && e.value.stream === stream ? [Buffer.from(e.value.line).toString()] : []));
      const stdout = text(OutputStreamKind.STDOUT);
      expect(stdout.length).toBe(lines + 1);
      expect(stdout.slice(0, lines).every((l, i) => l === `out ${i + 1}`)).toBe(true);
      expect(stdout.at(-1)).toBe("after-gate");
      expect(text(OutputStreamKind.STDERR)).toEqual(["err-line"]);
      // seq numbers each stream's lines from 0 within the attempt
      const seqs = events.flatMap((e) => (e.case === "chunk" && e.value.stream === OutputStreamKind.STDOUT ? [Number(e.value.seq)] : []));
      expect(seqs.every((s, i) => s === i)).toBe(true);

      expect(status!.code).toBe(OK);
      expect(fromBinary(GetTaskStatusResponseSchema, status!.messages[0]!).task?.status).toMatchObject({ phase: TaskStatus.SUCCEEDED, attempt: 1, exitCode: 0 });
      expect(runs!.code).toBe(OK);
      const r = fromBinary(ListTaskRunsResponseSchema, runs!.messages[0]!).runs;
      expect(r.map((x) => [x.attempt, x.status, x.exitCode])).toEqual([[1, TaskStatus.SUCCEEDED, 0]]);
    }, ["--log-retain", "50000", "--log-retain-bytes", "8MiB"]);
  }, 90_000);

  test("a subscriber that stops reading while the task prints is told exactly how many events it missed", async () => {
    await withAgent(async (target, dir) => {
      const [gate, done] = [join(dir, "gate"), join(dir, "done")];
      const lines = 200_000;
      // ≈ 9 MB of messages while the client reads nothing: more than flow control and the 1 000-event ring hold.
      const script = `while [ ! -e "$GATE" ]; do sleep 0.01; done; seq -f "out %.0f" 1 ${lines}; : > "$DONE"`;
      const taskId = await submit(target, {
        spec: {
          slot: "c-core-lag",
          kind: { subprocess: { script: { wellKnown: "SCRIPT_RUNTIME_BASH", body: Buffer.from(script).toString("base64") }, env: [{ key: "GATE", value: gate }, { key: "DONE", value: done }], failOnNonZero: true } },
          timeoutMs: "60000",
          restart: "RESTART_STRATEGY_NEVER",
          admission: "ADMISSION_STRATEGY_QUEUE",
        },
      });
      const [logs] = await cCore(target, [
        { path: `${SOLTI}/StreamTaskLogs`, kind: "stream", request: enc(StreamTaskLogsRequestSchema, { taskId }), metadata: AUTH, timeout: 60, touchAfter: [1, gate], waitAfter: [1, done] },
      ]);
      expect(logs!.code).toBe(OK);
      const events = logs!.messages.map((m) => fromBinary(OutputEventProtoSchema, m).kind);
      expect(events[0]!.case).toBe("runStarted");
      expect(events.at(-1)).toMatchObject({ case: "runFinished", value: { exitCode: 0 } });
      const lagged = events.flatMap((e) => (e.case === "lagged" ? [Number(e.value.skipped)] : []));
      expect(lagged.length).toBeGreaterThan(0);
      // Every event is either delivered or counted: runStarted, the lines, runFinished.
      expect(events.length - lagged.length + lagged.reduce((a, b) => a + b, 0)).toBe(lines + 2);
      // What arrives is what the task printed, each line under its own number.
      const chunks = events.flatMap((e) => (e.case === "chunk" ? [e.value] : []));
      expect(chunks.every((c) => Buffer.from(c.line).toString() === `out ${Number(c.seq) + 1}`)).toBe(true);
      expect(chunks.every((c, i) => i === 0 || c.seq > chunks[i - 1]!.seq)).toBe(true);
    });
  }, 90_000);

  test("status codes and their details: unknown ids, a bad spec, bytes that are no message, unknown methods, missing or wrong tokens", async () => {
    await withAgent(async (target) => {
      const unknown = "tsk_01JNOSUCHTASK0000000000000";
      const badSpec = enc(SubmitTaskRequestSchema, {
        spec: { slot: "", kind: { subprocess: { command: { command: "/bin/true" } } }, timeoutMs: "1000", restart: "RESTART_STRATEGY_NEVER", admission: "ADMISSION_STRATEGY_QUEUE" },
      });
      const answers = await cCore(target, [
        { path: `${SOLTI}/GetTaskStatus`, kind: "unary", request: enc(GetTaskStatusRequestSchema, { taskId: unknown }), metadata: AUTH },
        { path: `${SOLTI}/ListTaskRuns`, kind: "unary", request: enc(ListTaskRunsRequestSchema, { taskId: unknown }), metadata: AUTH },
        { path: `${SOLTI}/StreamTaskLogs`, kind: "stream", request: enc(StreamTaskLogsRequestSchema, { taskId: unknown }), metadata: AUTH },
        { path: `${SOLTI}/SubmitTask`, kind: "unary", request: badSpec, metadata: AUTH },
        { path: `${SOLTI}/GetTaskStatus`, kind: "unary", request: new Uint8Array([0x0a, 0xff, 0xff, 0x03, 0x41]), metadata: AUTH },
        { path: `${SOLTI}/Nope`, kind: "unary", request: new Uint8Array(), metadata: AUTH },
        { path: `${SOLTI}/GetTaskStatus`, kind: "unary", request: enc(GetTaskStatusRequestSchema, { taskId: unknown }) },
        { path: `${SOLTI}/GetTaskStatus`, kind: "unary", request: enc(GetTaskStatusRequestSchema, { taskId: unknown }), metadata: [["authorization", "Bearer wrong"]] },
      ]);
      const [status, runs, logs, spec, garbage, nope, anonymous, wrong] = answers;
      expect(status!.code).toBe(OK);
      expect(fromBinary(GetTaskStatusResponseSchema, status!.messages[0]!).task).toBeUndefined();
      for (const a of [runs, logs]) {
        expect(a!.code).toBe(NOT_FOUND);
        expect(a!.details).toContain(unknown);
      }
      expect(logs!.messages).toEqual([]);
      expect(spec!.code).toBe(INVALID_ARGUMENT);
      expect(spec!.details).toContain("slot");
      expect(garbage!.code).toBe(INVALID_ARGUMENT);
      expect(garbage!.details).toStartWith("malformed request message: ");
      expect(nope!.code).toBe(UNIMPLEMENTED);
      for (const a of [anonymous, wrong]) {
        expect(a!.code).toBe(UNAUTHENTICATED);
        expect(a!.details.length).toBeGreaterThan(0);
      }
    });
  }, 60_000);

  test("a client deadline and a client cancel end the calls; the agent keeps serving and the task runs on", async () => {
    await withAgent(async (target, dir) => {
      const gate = join(dir, "gate");
      const taskId = await submit(target, gatedSpec(gate, 3));
      const health = enc(HealthCheckRequestSchema, { service: "" });
      const [waited, cancelled, healthy] = await cCore(target, [
        { path: `${AGENT}/WaitTask`, kind: "unary", request: enc(WaitTaskRequestSchema, { taskId, timeoutMs: "60000" }), metadata: AUTH, timeout: 0.3 },
        { path: `${SOLTI}/StreamTaskLogs`, kind: "stream", request: enc(StreamTaskLogsRequestSchema, { taskId }), metadata: AUTH, timeout: 30, cancelAfter: 2 },
        { path: "/grpc.health.v1.Health/Check", kind: "unary", request: health, metadata: AUTH },
      ]);
      expect(waited!.code).toBe(DEADLINE_EXCEEDED);
      expect(cancelled!.code).toBe(CANCELLED);
      expect(cancelled!.messages.length).toBe(2);
      expect(fromBinary(OutputEventProtoSchema, cancelled!.messages[0]!).kind.case).toBe("runStarted");
      expect(healthy!.code).toBe(OK);
      expect(fromBinary(HealthCheckResponseSchema, healthy!.messages[0]!).status).toBe(HealthCheckResponse_ServingStatus.SERVING);

      // The task was not touched by either: open its gate and wait for it over the same client.
      await Bun.write(gate, "");
      const [done] = await cCore(target, [
        { path: `${AGENT}/WaitTask`, kind: "unary", request: enc(WaitTaskRequestSchema, { taskId, timeoutMs: "30000" }), metadata: AUTH, timeout: 40 },
      ]);
      expect(done!.code).toBe(OK);
      expect(fromBinary(WaitTaskResponseSchema, done!.messages[0]!).task?.status).toMatchObject({ phase: TaskStatus.SUCCEEDED, exitCode: 0 });
    });
  }, 60_000);

  test("reflection lists the services and serves their files to a C-core client", async () => {
    await withAgent(async (target) => {
      const path = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
      const [list, file] = await cCore(target, [
        { path, kind: "bidi", request: enc(ServerReflectionRequestSchema, { listServices: "" }), metadata: AUTH, timeout: 30 },
        { path, kind: "bidi", request: enc(ServerReflectionRequestSchema, { fileContainingSymbol: "solti.v1.SoltiApi" }), metadata: AUTH, timeout: 30 },
      ]);
      expect(list!.code).toBe(OK);
      const services = fromBinary(ServerReflectionResponseSchema, list!.messages[0]!).messageResponse;
      expect(services.case).toBe("listServicesResponse");
      const names = services.case === "listServicesResponse" ? services.value.service.map((s) => s.name) : [];
      expect(names).toEqual(expect.arrayContaining(["solti.v1.SoltiApi", "tasklane.v1.AgentService", "grpc.health.v1.Health"]));
      expect(file!.code).toBe(OK);
      const files = fromBinary(ServerReflectionResponseSchema, file!.messages[0]!).messageResponse;
      expect(files.case).toBe("fileDescriptorResponse");
      expect(files.case === "fileDescriptorResponse" ? files.value.fileDescriptorProto.length : 0).toBeGreaterThan(0);
    });
  }, 60_000);
});
