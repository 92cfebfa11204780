/**
 * Server-wide behaviour: message limits, malformed input, auth and error
 * mapping, health, reflection and shutdown.
 */
import { describe, expect, test } from "bun:test";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { AgentError } from "../../src/errors.ts";
import { loadSync } from "@grpc/proto-loader";
import { readFileSync } from "node:fs";
import { collect, failure, PROTO_DIR, rawCall, serverStream, unary } from "./proto-client.ts";
import { selfSignedCert } from "../helpers/self-signed.ts";
import { startServer, type TestServer } from "./start-server.ts";

const spec = {
  slot: "my-job",
  kind: { subprocess: { command: { command: "echo" } } },
  timeoutMs: "1000",
  restart: "RESTART_STRATEGY_NEVER",
  admission: "ADMISSION_STRATEGY_QUEUE",
};

function health(s: TestServer) {
  return s.client("grpc/health/v1/health.proto", "grpc.health.v1.Health");
}

describe("limits and malformed input", () => {
  test("a 5 MiB request is RESOURCE_EXHAUSTED and the server keeps serving", async () => {
    await using s = await startServer();
    const big = { spec: { ...spec, labels: { big: "x".repeat(5 * 1024 * 1024) } } };
    const err = await failure(unary(s.solti, "SubmitTask", big));
    expect(err.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(s.fake.inputs).toEqual([]);
    expect(await unary(s.solti, "SubmitTask", { spec })).toEqual({ taskId: "tsk_01JR0000000000000000000001" });
  });

  test("a response over 4 MiB is RESOURCE_EXHAUSTED for the client, then normal calls work", async () => {
    await using s = await startServer();
    // The agent keeps every task it accepts within one message (validate-spec's size rule, the
    // byte-limited list page); the fake service can still hold a task too large to send.
    const { taskId } = await unary<{ taskId: string }>(s.solti, "SubmitTask", { spec });
    s.fake.setPhase(taskId, "failed", { error: "e".repeat(4_200_000) });
    expect((await failure(unary(s.solti, "GetTaskStatus", { taskId }))).code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(await unary(s.solti, "ListTaskRuns", { taskId })).toEqual({ runs: [] });
  });

  test("bytes that are not a protobuf message are INVALID_ARGUMENT, and the server stays healthy", async () => {
    await using s = await startServer();
    // Field 1, wire type 7 (does not exist).
    const badWireType = await rawCall(s.port, "/solti.v1.SoltiApi/SubmitTask", new Uint8Array([0x0f, 0x01]));
    // Field 1, length-delimited, length far beyond the message.
    const truncated = await rawCall(s.port, "/solti.v1.SoltiApi/GetTaskStatus", new Uint8Array([0x0a, 0xff, 0xff, 0x03, 0x41]));
    const streaming = await rawCall(s.port, "/solti.v1.SoltiApi/StreamTaskLogs", new Uint8Array([0x0a, 0x05, 0x41]));
    for (const r of [badWireType, truncated, streaming]) {
      expect(r.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(r.details).toStartWith("malformed request message: ");
    }
    expect(await unary(health(s), "Check", { service: "" })).toEqual({ status: "SERVING" });
    expect(await unary(s.solti, "GetTaskStatus", { taskId: "x" })).toEqual({});
  });

  test("unknown methods are UNIMPLEMENTED", async () => {
    await using s = await startServer();
    expect((await rawCall(s.port, "/solti.v1.SoltiApi/Nope", new Uint8Array())).code).toBe(grpc.status.UNIMPLEMENTED);
  });
});

describe("auth and error mapping", () => {
  test("authenticate sees the metadata; its AgentError becomes the status", async () => {
    const seen: Record<string, string>[] = [];
    await using s = await startServer({
      authenticate(md) {
        seen.push(md);
        if (md.authorization !== "Bearer good") throw new AgentError("Unauthenticated", "missing or unknown bearer token");
        return { principal: { name: "alice", role: "viewer" } };
      },
    });
    expect(await failure(unary(s.solti, "ListTasks", {}))).toEqual({
      code: grpc.status.UNAUTHENTICATED,
      details: "missing or unknown bearer token",
    });
    const md = new grpc.Metadata();
    md.set("authorization", "Bearer good");
    expect(await unary(s.solti, "ListTasks", {}, md)).toEqual({ tasks: [], total: 0 });
    expect(seen.map((m) => m.authorization)).toEqual([undefined, "Bearer good"]);
    expect((await collect(serverStream(s.solti, "StreamTaskLogs", { taskId: "x" }))).code).toBe(grpc.status.UNAUTHENTICATED);
    // Health and reflection stay open.
    expect(await unary(health(s), "Check", { service: "" })).toEqual({ status: "SERVING" });
  });

  test("PermissionDenied and RateLimited map to their codes; the retry delay travels in trailers", async () => {
    const errors = [
      new AgentError("PermissionDenied", "principal bob (viewer) may not change tasks"),
      new AgentError("RateLimited", "rate limit exceeded", { retryAfterMs: 1500 }),
    ];
    await using s = await startServer({
      authenticate() {
        throw errors.shift();
      },
    });
    expect(await failure(unary(s.solti, "ListTasks", {}))).toEqual({
      code: grpc.status.PERMISSION_DENIED,
      details: "principal bob (viewer) may not change tasks",
    });
    const trailers = await new Promise<{ code: number; retry: unknown[] }>((resolve) => {
      const call = (s.solti as unknown as Record<string, (r: unknown, cb: () => void) => grpc.ClientUnaryCall>).ListTasks!({}, () => {});
      call.on("status", (st: grpc.StatusObject) => resolve({ code: st.code, retry: st.metadata.get("retry-after-ms") }));
    });
    expect(trailers).toEqual({ code: grpc.status.RESOURCE_EXHAUSTED, retry: ["1500"] });
  });

  test("an unexpected exception is INTERNAL with a correlation id that onInternal also gets", async () => {
    const logged: [string, unknown][] = [];
    await using s = await startServer({ onInternal: (id, err) => logged.push([id, err]) });
    s.fake.list = () => {
      throw new TypeError("boom");
    };
    const err = await failure(unary(s.solti, "ListTasks", {}));
    expect(logged.length).toBe(1);
    const [id, cause] = logged[0]!;
    expect(err).toEqual({ code: grpc.status.INTERNAL, details: `internal error (correlation id ${id})` });
    expect(cause).toEqual(new TypeError("boom"));
  });
});

describe("health", () => {
  test("NOT_SERVING until setServing(true), then SERVING for the server and each service", async () => {
    await using s = await startServer();
    const h = health(s);
    s.server.setServing(false);
    expect(await unary(h, "Check", { service: "" })).toEqual({ status: "NOT_SERVING" });
    s.server.setServing(true);
    for (const service of ["", "solti.v1.SoltiApi", "tasklane.v1.AgentService"]) {
      expect(await unary(h, "Check", { service })).toEqual({ status: "SERVING" });
    }
    expect(await failure(unary(h, "Check", { service: "nope.Service" }))).toEqual({
      code: grpc.status.NOT_FOUND,
      details: "health status unknown for service nope.Service",
    });
    // A 70 000-character name is cut in the message: uncut it would not fit the trailer.
    expect(await failure(unary(h, "Check", { service: "n".repeat(70_000) }))).toEqual({
      code: grpc.status.NOT_FOUND,
      details: `health status unknown for service ${"n".repeat(80)}…`,
    });
    expect(await unary(h, "List", {})).toEqual({
      statuses: {
        "": { status: "SERVING" },
        "solti.v1.SoltiApi": { status: "SERVING" },
        "tasklane.v1.AgentService": { status: "SERVING" },
      },
    });
  });

  test("Watch sends the current status, then changes; close ends it with UNAVAILABLE", async () => {
    await using s = await startServer();
    const stream = serverStream<{ status: string }>(health(s), "Watch", { service: "" });
    const done = collect(stream);
    const seen: string[] = [];
    stream.on("data", (m: { status: string }) => {
      seen.push(m.status);
      if (seen.length === 1) s.server.setServing(false);
      if (seen.length === 2) void s.server.close(60_000);
    });
    expect(await done).toEqual({
      code: grpc.status.UNAVAILABLE,
      details: "server is shutting down",
      messages: [{ status: "SERVING" }, { status: "NOT_SERVING" }],
    });
  });

  test("a stop's first step (NOT_SERVING) reaches Watch, which stays open until close", async () => {
    await using s = await startServer();
    const h = health(s);
    const watches = ["", "solti.v1.SoltiApi", "tasklane.v1.AgentService"].map((service) => {
      const stream = serverStream<{ status: string }>(h, "Watch", { service });
      const seen: string[] = [];
      const notServing = new Promise<void>((resolve) =>
        stream.on("data", (m: { status: string }) => {
          seen.push(m.status);
          if (m.status === "NOT_SERVING") resolve();
        }),
      );
      return { done: collect(stream), first: new Promise((r) => stream.once("data", r)), notServing, seen };
    });
    await Promise.all(watches.map((w) => w.first));
    // What agent.stop() does first: not ready.
    s.server.setServing(false);
    // (A watch that ended instead fails the checks below rather than hanging.)
    await Promise.all(watches.map((w) => Promise.race([w.notServing, w.done])));
    expect(watches.map((w) => w.seen)).toEqual([["SERVING", "NOT_SERVING"], ["SERVING", "NOT_SERVING"], ["SERVING", "NOT_SERVING"]]);
    // Still open through the drain: a call on the same connection is answered, no watch has ended.
    expect(await unary(h, "Check", { service: "" })).toEqual({ status: "NOT_SERVING" });
    let ended = false;
    void Promise.race(watches.map((w) => w.done)).then(() => (ended = true));
    await unary(h, "List", {});
    expect(ended).toBe(false);
    await s.server.close(60_000);
    for (const w of watches) {
      expect(await w.done).toEqual({
        code: grpc.status.UNAVAILABLE,
        details: "server is shutting down",
        messages: [{ status: "SERVING" }, { status: "NOT_SERVING" }],
      });
    }
  });

  test("close() while SERVING still tells Watch NOT_SERVING before its stream ends", async () => {
    await using s = await startServer();
    const stream = serverStream<{ status: string }>(health(s), "Watch", { service: "" });
    const done = collect(stream);
    await new Promise((r) => stream.once("data", r));
    await s.server.close(60_000);
    expect(await done).toEqual({
      code: grpc.status.UNAVAILABLE,
      details: "server is shutting down",
      messages: [{ status: "SERVING" }, { status: "NOT_SERVING" }],
    });
  });

  test("Watch of an unknown service says SERVICE_UNKNOWN", async () => {
    await using s = await startServer();
    const stream = serverStream<{ status: string }>(health(s), "Watch", { service: "nope" });
    const first = await new Promise<unknown>((resolve) => stream.once("data", resolve));
    stream.on("error", () => {});
    stream.cancel();
    expect(first).toEqual({ status: "SERVICE_UNKNOWN" });
  });
});

type ReflectionResponse = {
  listServicesResponse?: { service: { name: string }[] };
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  errorResponse?: { errorCode: number; errorMessage: string };
};

/** One request on a fresh ServerReflectionInfo stream of `version` ("v1" | "v1alpha"). */
async function reflect(s: TestServer, version: "v1" | "v1alpha", request: Record<string, unknown>): Promise<ReflectionResponse> {
  const client = s.client(`grpc/reflection/${version}/reflection.proto`, `grpc.reflection.${version}.ServerReflection`);
  const call = (client as unknown as Record<string, () => grpc.ClientDuplexStream<unknown, ReflectionResponse>>).ServerReflectionInfo!.call(client);
  const response = new Promise<ReflectionResponse>((resolve, reject) => {
    call.once("data", resolve);
    call.once("error", reject);
  });
  call.write({ host: "", ...request });
  call.end();
  return response;
}

describe("reflection", () => {
  const services = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
    "solti.v1.SoltiApi",
    "tasklane.v1.AgentService",
  ];

  test("lists every service, over v1 and v1alpha", async () => {
    await using s = await startServer();
    for (const version of ["v1", "v1alpha"] as const) {
      const res = await reflect(s, version, { listServices: "*" });
      expect(res.listServicesResponse?.service.map((x) => x.name).sort()).toEqual(services);
    }
  });

  test("describes a service with its file and imports, as the .proto files declare them", async () => {
    await using s = await startServer();
    for (const [symbol, files] of [
      ["solti.v1.SoltiApi", ["solti/v1/api.proto", "solti/v1/types.proto"]],
      ["tasklane.v1.AgentService", ["tasklane/v1/agent.proto", "solti/v1/types.proto"]],
      ["solti.v1.CreateSpec", ["solti/v1/types.proto"]],
    ] as const) {
      const res = await reflect(s, "v1", { fileContainingSymbol: symbol });
      const protos = (res.fileDescriptorResponse?.fileDescriptorProto ?? []).map((b) => fromBinary(FileDescriptorProtoSchema, b));
      expect(protos.map((p) => p.name)).toEqual([...files]);
    }
    const api = await reflect(s, "v1alpha", { fileByFilename: "solti/v1/api.proto" });
    const [file] = (api.fileDescriptorResponse?.fileDescriptorProto ?? []).map((b) => fromBinary(FileDescriptorProtoSchema, b));
    expect(file?.service.map((svc) => [svc.name, svc.method.map((m) => m.name)])).toEqual([
      ["SoltiApi", ["SubmitTask", "GetTaskStatus", "ListTasks", "ListTaskRuns", "DeleteTask", "StreamTaskLogs"]],
    ]);
    expect(file?.dependency).toEqual(["solti/v1/types.proto"]);
  });

  test("an unknown symbol is an error response, not a broken stream", async () => {
    await using s = await startServer();
    expect((await reflect(s, "v1", { fileContainingSymbol: "nope.Nothing" })).errorResponse).toEqual({
      errorCode: grpc.status.NOT_FOUND,
      errorMessage: "Symbol not found: nope.Nothing",
    });
  });
});

describe("tls", () => {
  test("with a certificate the server speaks TLS only", async () => {
    using tls = selfSignedCert();
    const cert = readFileSync(tls.certPath);
    await using s = await startServer({ tls: { cert, key: readFileSync(tls.keyPath) } });
    const Health = grpc.loadPackageDefinition(loadSync("grpc/health/v1/health.proto", { includeDirs: [PROTO_DIR] })).grpc as grpc.GrpcObject;
    const Ctor = ((Health.health as grpc.GrpcObject).v1 as grpc.GrpcObject).Health as grpc.ServiceClientConstructor;
    const secure = new Ctor(`localhost:${s.port}`, grpc.credentials.createSsl(cert));
    const plain = new Ctor(`localhost:${s.port}`, grpc.credentials.createInsecure());
    try {
      // SERVING (this loader keeps enums numeric).
      expect(await unary(secure, "Check", { service: "" })).toEqual({ status: 1 });
      expect((await failure(unary(plain, "Check", { service: "" }))).code).toBe(grpc.status.UNAVAILABLE);
    } finally {
      secure.close();
      plain.close();
    }
  });
});

describe("shutdown", () => {
  test("close() ends open streams with UNAVAILABLE and closes their subscriptions without waiting the grace", async () => {
    await using s = await startServer();
    const id = (await unary<{ taskId: string }>(s.solti, "SubmitTask", { spec })).taskId;
    s.fake.setPhase(id, "running");
    s.fake.hub.runStarted(id, 1, 1);
    const logs = serverStream(s.solti, "StreamTaskLogs", { taskId: id });
    const watch = serverStream(s.agent, "WatchTasks", {});
    const ended = Promise.all([collect(logs), collect(watch)]);
    await Promise.all([new Promise((r) => logs.once("data", r)), new Promise((r) => watch.once("data", r))]);
    await s.server.close(60_000);
    const [l, w] = await ended;
    expect([l.code, l.details, w.code, w.details]).toEqual([
      grpc.status.UNAVAILABLE,
      "server is shutting down",
      grpc.status.UNAVAILABLE,
      "server is shutting down",
    ]);
    await s.fake.allClosed();
    expect([s.fake.openLogs(), s.fake.openWatches()]).toEqual([0, 0]);
  });

  test("close() makes a pending WaitTask answer with the current task", async () => {
    await using s = await startServer();
    const id = (await unary<{ taskId: string }>(s.solti, "SubmitTask", { spec })).taskId;
    const wait = s.fake.wait;
    const started = Promise.withResolvers<void>();
    s.fake.wait = (...args) => {
      started.resolve();
      return wait(...args);
    };
    const waited = unary<{ task: { status: unknown } }>(s.agent, "WaitTask", { taskId: id, timeoutMs: "600000" });
    await started.promise;
    await s.server.close(60_000);
    expect((await waited).task.status).toEqual({ phase: "TASK_STATUS_PENDING", attempt: 0 });
  });

  test("listen after close is refused; close is idempotent", async () => {
    await using s = await startServer();
    await s.server.close();
    await s.server.close();
    expect(s.server.listen("127.0.0.1:0")).rejects.toThrow("grpc server is closed");
  });
});
