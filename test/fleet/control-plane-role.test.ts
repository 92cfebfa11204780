/**
 * End to end: a client plays the control plane. It learns the agent from the
 * agent's own registration (the recorded SyncRequest), dials the advertised
 * endpoint with a client built only from the .proto files (proto-loader +
 * grpc-js, as a solti control plane would), and drives the agent through the
 * `solti.v1` API alone: submit, list, runs, stream logs, delete.
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { expect, test } from "bun:test";
import { join } from "node:path";
import { startAgent } from "../helpers/start-agent.ts";
import { startGrpcControlPlane } from "./fake-control-plane.ts";

const PROTO_DIR = join(import.meta.dir, "../../proto");

/** `solti.v1.SoltiApi` at `address`, from proto/solti/v1/api.proto. */
function dialSoltiApi(address: string): grpc.Client {
  const def = protoLoader.loadSync("solti/v1/api.proto", { longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [PROTO_DIR] });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { solti: { v1: { SoltiApi: grpc.ServiceClientConstructor } } };
  return new pkg.solti.v1.SoltiApi(address, grpc.credentials.createInsecure());
}

type Unary = (req: unknown, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;

function call<T = Record<string, unknown>>(client: grpc.Client, method: string, req: unknown): Promise<T> {
  const fn = (client as unknown as Record<string, Unary>)[method]!;
  return new Promise((resolve, reject) => fn.call(client, req, (err, res) => (err ? reject(err) : resolve(res as T))));
}

/** Every message of a server stream, once it ends OK. */
function drain(stream: grpc.ClientReadableStream<Record<string, unknown>>): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  return new Promise((resolve, reject) => {
    stream.on("data", (m: Record<string, unknown>) => out.push(m));
    stream.on("error", reject);
    stream.on("end", () => resolve(out));
  });
}

test("a control plane drives a self-registered agent over solti.v1 only", async () => {
  await using cp = await startGrpcControlPlane();
  await using agent = await startAgent({ args: ["--control-plane", cp.url, "--heartbeat", "100ms"] });

  // 1. The agent announced itself; the control plane takes the endpoint from the heartbeat.
  const reg = await cp.request(1);
  expect(reg.json).toMatchObject({ endpointType: "ENDPOINT_TYPE_GRPC", apiVersion: 1, capabilities: ["task_runs", "task_delete"] });
  const endpoint = new URL(String(reg.json.endpoint));
  expect(endpoint.protocol).toBe("grpc:");
  const client = dialSoltiApi(endpoint.host);
  try {
    // 2. Submit.
    const spec = {
      slot: "fleet-e2e",
      kind: { subprocess: { command: { command: "sh", args: ["-c", "echo from-agent; echo to-stderr >&2"] }, failOnNonZero: true } },
      timeoutMs: "30000",
      restart: "RESTART_STRATEGY_NEVER",
      backoff: { jitter: "JITTER_STRATEGY_FULL", firstMs: "1000", maxMs: "10000", factor: 2 },
      admission: "ADMISSION_STRATEGY_DROP_IF_RUNNING",
      labels: { fleet: "yes" },
    };
    const { taskId } = await call<{ taskId: string }>(client, "SubmitTask", { spec });
    expect(taskId).toMatch(/^tsk_[0-9A-HJKMNP-TV-Z]{26}$/);

    // 3. Stream its logs to the end (the stream ends when the task is terminal).
    const events = await drain((client as unknown as { StreamTaskLogs(req: unknown): grpc.ClientReadableStream<Record<string, unknown>> }).StreamTaskLogs({ taskId }));
    const kinds = events.map((e) => e.kind);
    expect(kinds[0]).toBe("runStarted");
    expect(kinds.at(-1)).toBe("runFinished");
    const lines = events
      .filter((e) => e.kind === "chunk")
      .map((e) => {
        const c = e.chunk as { stream: string; line: Buffer; attempt: number };
        return [c.attempt, c.stream, c.line.toString("utf8")];
      })
      .sort();
    expect(lines).toEqual([
      [1, "OUTPUT_STREAM_KIND_STDERR", "to-stderr"],
      [1, "OUTPUT_STREAM_KIND_STDOUT", "from-agent"],
    ]);
    expect(events.at(-1)!.runFinished).toMatchObject({ attempt: 1, exitCode: 0 });

    // 4. List: the task is there, succeeded, with the spec the control plane sent.
    const list = await call<{ tasks: Array<Record<string, unknown>>; total: number }>(client, "ListTasks", { slot: "fleet-e2e" });
    expect(list.total).toBe(1);
    expect(list.tasks[0]).toMatchObject({
      metadata: { id: taskId },
      spec: { slot: "fleet-e2e", labels: { fleet: "yes" }, restart: "RESTART_STRATEGY_NEVER" },
      status: { phase: "TASK_STATUS_SUCCEEDED", attempt: 1, exitCode: 0 },
    });

    // 5. Runs.
    const { runs } = await call<{ runs: unknown[] }>(client, "ListTaskRuns", { taskId });
    // proto-loader marks set proto3 `optional` fields with a synthetic `_field` oneof name.
    expect(runs).toEqual([
      { attempt: 1, status: "TASK_STATUS_SUCCEEDED", startedAt: expect.any(String), finishedAt: expect.any(String), _finishedAt: "finishedAt", exitCode: 0, _exitCode: "exitCode" },
    ]);

    // 6. Delete: gone from the list, its runs are NOT_FOUND.
    expect(await call(client, "DeleteTask", { taskId })).toEqual({});
    expect(await call(client, "ListTasks", { slot: "fleet-e2e" })).toEqual({ tasks: [], total: 0 });
    const err = await call(client, "ListTaskRuns", { taskId }).then(
      () => undefined,
      (e: grpc.ServiceError) => e.code,
    );
    expect(err).toBe(grpc.status.NOT_FOUND);
  } finally {
    client.close();
  }

  // The agent keeps heartbeating as the same agent.
  expect((await cp.request(2)).json.id).toBe(reg.json.id);
});
