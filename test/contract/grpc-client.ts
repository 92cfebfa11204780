/**
 * `ContractClient` over gRPC: the generated protobuf-es code for messages
 * and method descriptors, grpc-js for the wire (binary codecs built here from
 * the descriptors, independent of the server's adapter).
 */
import {
  create,
  fromBinary,
  toBinary,
  type DescMessage,
  type DescMethodServerStreaming,
  type DescMethodUnary,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import type { ErrorCode } from "../../src/errors.ts";
import { SoltiApi } from "../../src/gen/solti/v1/api_pb.ts";
import { AgentService } from "../../src/gen/tasklane/v1/agent_pb.ts";
import type { LogEvent } from "../../src/tasks/model.ts";
import type { TestAgent } from "../helpers/start-agent.ts";
import { ClientError, createPushQueue, watchStreamOf, type ContractClient, type WatchItem, type WatchStream } from "./client.ts";
import { logEventFromProto, runFromProto, specToProto, statusOfPhase, taskFromProto, watchItemFromProto } from "./proto-mapping.ts";

const MiB4 = 4 * 1024 * 1024;
/** Longest a single unary call or log collection may take before the test fails. */
const CALL_MS = 20_000;

const CODES: Partial<Record<grpc.status, ErrorCode>> = {
  [grpc.status.INVALID_ARGUMENT]: "InvalidRequest",
  [grpc.status.NOT_FOUND]: "TaskNotFound",
  [grpc.status.UNAUTHENTICATED]: "Unauthenticated",
  [grpc.status.PERMISSION_DENIED]: "PermissionDenied",
  [grpc.status.UNAVAILABLE]: "Unavailable",
  [grpc.status.INTERNAL]: "Internal",
};

/** gRPC status → the domain label (RESOURCE_EXHAUSTED is a rate limit when the agent says when to retry). */
export function clientErrorOf(err: grpc.ServiceError): ClientError | grpc.ServiceError {
  let code = CODES[err.code];
  if (err.code === grpc.status.RESOURCE_EXHAUSTED) {
    code = err.metadata?.get("retry-after-ms").length ? "RateLimited" : "PayloadTooLarge";
  }
  return code === undefined ? err : new ClientError(code, err.details, err.code);
}

const path = (m: { parent: { typeName: string }; name: string }) => `/${m.parent.typeName}/${m.name}`;
const serializer = <I extends DescMessage>(desc: I) => (msg: MessageShape<I>) => Buffer.from(toBinary(desc, msg));
const deserializer = <O extends DescMessage>(desc: O) => (bytes: Buffer) => fromBinary(desc, bytes);

/** One unary call; rejects with a `ClientError`. */
export function unary<I extends DescMessage, O extends DescMessage>(
  client: grpc.Client,
  m: DescMethodUnary<I, O>,
  req: MessageInitShape<I>,
): Promise<MessageShape<O>> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      path(m),
      serializer(m.input),
      deserializer(m.output),
      create(m.input, req),
      new grpc.Metadata(),
      { deadline: Date.now() + CALL_MS },
      (err, res) => (err ? reject(clientErrorOf(err)) : resolve(res as MessageShape<O>)),
    );
  });
}

/** Start a server-streaming call. */
export function serverStream<I extends DescMessage, O extends DescMessage>(
  client: grpc.Client,
  m: DescMethodServerStreaming<I, O>,
  req: MessageInitShape<I>,
  deadlineMs?: number,
): grpc.ClientReadableStream<MessageShape<O>> {
  return client.makeServerStreamRequest(
    path(m),
    serializer(m.input),
    deserializer(m.output),
    create(m.input, req),
    new grpc.Metadata(),
    deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs },
  );
}

/** A grpc-js client of the agent's gRPC port, 4 MiB both ways. */
export function grpcConnection(agent: TestAgent): grpc.Client {
  return new grpc.Client(agent.grpcAddr, grpc.credentials.createInsecure(), {
    "grpc.max_receive_message_length": MiB4,
    "grpc.max_send_message_length": MiB4,
  });
}

/** The gRPC implementation of the contract client. */
export function createGrpcClient(agent: TestAgent): ContractClient {
  const client = grpcConnection(agent);
  return {
    transport: "grpc",
    async submit(spec) {
      const res = await unary(client, SoltiApi.method.submitTask, { spec: specToProto(spec) });
      return { taskId: res.taskId };
    },
    async get(id) {
      const res = await unary(client, SoltiApi.method.getTaskStatus, { taskId: id });
      return res.task === undefined ? undefined : taskFromProto(res.task);
    },
    async list(q = {}) {
      const req: MessageInitShape<typeof SoltiApi.method.listTasks.input> = {
        limit: q.limit ?? 0,
        offset: q.offset ?? 0,
        labels: q.labels ?? {},
      };
      if (q.slot !== undefined) req.slot = q.slot;
      if (q.status !== undefined) req.status = statusOfPhase(q.status);
      if (q.createdAfter !== undefined) req.createdAfter = BigInt(q.createdAfter);
      if (q.createdBefore !== undefined) req.createdBefore = BigInt(q.createdBefore);
      if (q.order !== undefined) req.desc = q.order === "desc";
      const res = await unary(client, SoltiApi.method.listTasks, req);
      return { tasks: res.tasks.map(taskFromProto), total: res.total };
    },
    async runs(id) {
      return (await unary(client, SoltiApi.method.listTaskRuns, { taskId: id })).runs.map(runFromProto);
    },
    logs(id) {
      const call = serverStream(client, SoltiApi.method.streamTaskLogs, { taskId: id }, CALL_MS);
      const out: LogEvent[] = [];
      return new Promise((resolve, reject) => {
        call.on("data", (m: MessageShape<typeof SoltiApi.method.streamTaskLogs.output>) => out.push(logEventFromProto(m)));
        call.on("error", (err: grpc.ServiceError) => reject(clientErrorOf(err)));
        call.on("end", () => resolve(out));
      });
    },
    async delete(id) {
      await unary(client, SoltiApi.method.deleteTask, { taskId: id });
    },
    async cancel(id) {
      return taskFromProto(need((await unary(client, AgentService.method.cancelTask, { taskId: id })).task));
    },
    async start(id) {
      return taskFromProto(need((await unary(client, AgentService.method.startTask, { taskId: id })).task));
    },
    async restart(id) {
      return taskFromProto(need((await unary(client, AgentService.method.restartTask, { taskId: id })).task));
    },
    async wait(id, timeoutMs) {
      if (timeoutMs <= 0) throw new Error("gRPC WaitTask reads timeout 0 as the default; ask for > 0");
      return taskFromProto(need((await unary(client, AgentService.method.waitTask, { taskId: id, timeoutMs: BigInt(timeoutMs) })).task));
    },
    async run(spec, timeoutMs) {
      const res = await unary(client, AgentService.method.runTask, { spec: specToProto(spec), timeoutMs: BigInt(timeoutMs) });
      return { task: taskFromProto(need(res.task)), runs: res.runs.map(runFromProto), output: { stdout: res.stdout, stderr: res.stderr } };
    },
    watch(opts = {}): WatchStream {
      const req: MessageInitShape<typeof AgentService.method.watchTasks.input> = { labels: opts.labels ?? {} };
      if (opts.slot !== undefined) req.slot = opts.slot;
      if (opts.after !== undefined) req.after = BigInt(opts.after);
      const call = serverStream(client, AgentService.method.watchTasks, req);
      let closed = false;
      const close = () => {
        closed = true;
        call.cancel();
      };
      const q = createPushQueue<WatchItem>(close);
      call.on("data", (m: MessageShape<typeof AgentService.method.watchTasks.output>) => q.push(watchItemFromProto(m)));
      call.on("error", (err: grpc.ServiceError) => (closed ? q.end() : q.fail(clientErrorOf(err))));
      call.on("end", () => q.end());
      return watchStreamOf(q, close);
    },
    async info() {
      const i = await unary(client, AgentService.method.getInfo, {});
      return {
        version: i.version,
        uptimeMs: Number(i.uptimeMs),
        hostname: i.hostname,
        os: i.os,
        arch: i.arch,
        dataDir: i.dataDir,
        maxConcurrent: i.maxConcurrent,
        maxBodyBytes: Number(i.maxBodyBytes),
        maxScriptBytes: Number(i.maxScriptBytes),
        capabilities: i.capabilities,
      };
    },
    [Symbol.dispose]() {
      client.close();
    },
  };
}

function need<T>(task: T | undefined): T {
  if (task === undefined) throw new Error("the agent answered without a task");
  return task;
}
