/**
 * `ContractClient` over REST + SSE (fetch), as curl users drive the agent.
 */
import { create, toJson } from "@bufbuild/protobuf";
import type { ErrorCode } from "../../src/errors.ts";
import { CreateSpecSchema } from "../../src/gen/solti/v1/types_pb.ts";
import type { LogEvent, Task, TaskRun } from "../../src/tasks/model.ts";
import { readSse } from "../helpers/sse.ts";
import type { TestAgent } from "../helpers/start-agent.ts";
import { specToProto } from "./proto-mapping.ts";
import { ClientError, createPushQueue, watchStreamOf, type AgentInfo, type ContractClient, type ListQuery, type RunResult, type WatchItem, type WatchStream } from "./client.ts";

/** Longest a single log collection may take before the test fails. */
const STREAM_MS = 15_000;

async function fail(res: Response): Promise<never> {
  const text = await res.text();
  let body: { error?: string; message?: string } = {};
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`HTTP ${res.status} without a JSON error envelope: ${text}`);
  }
  if (typeof body.error !== "string" || typeof body.message !== "string") {
    throw new Error(`HTTP ${res.status} with a malformed error envelope: ${text}`);
  }
  throw new ClientError(body.error as ErrorCode, body.message, res.status);
}

/** Query string of a list query (`label` repeated, one per pair). */
export function listParams(q: ListQuery): URLSearchParams {
  const p = new URLSearchParams();
  if (q.slot !== undefined) p.set("slot", q.slot);
  if (q.status !== undefined) p.set("status", q.status);
  for (const [k, v] of Object.entries(q.labels ?? {})) p.append("label", `${k}=${v}`);
  if (q.createdAfter !== undefined) p.set("createdAfter", String(q.createdAfter));
  if (q.createdBefore !== undefined) p.set("createdBefore", String(q.createdBefore));
  if (q.order !== undefined) p.set("order", q.order);
  if (q.limit !== undefined) p.set("limit", String(q.limit));
  if (q.offset !== undefined) p.set("offset", String(q.offset));
  return p;
}

/**
 * The REST implementation of the contract client. With `protoJson`, submits
 * (and submit-and-wait) post the proto3-JSON `SubmitTaskRequest` shape
 * instead of the domain shape (CONTRACT §2 accepts both on the same route).
 */
export function createRestClient(agent: TestAgent, opts: { protoJson?: boolean } = {}): ContractClient {
  const base = agent.url;
  const submitBody = (spec: Record<string, unknown>) =>
    opts.protoJson ? { spec: toJson(CreateSpecSchema, create(CreateSpecSchema, specToProto(spec))) } : { spec };
  const call = async (method: string, path: string, body?: unknown, ok = [200]): Promise<any> => {
    const res = await fetch(base + path, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!ok.includes(res.status)) return fail(res);
    const text = await res.text();
    return text ? JSON.parse(text) : undefined;
  };
  const enc = encodeURIComponent;

  return {
    transport: "rest",
    async submit(spec) {
      const res = await call("POST", "/api/v1/tasks", submitBody(spec), [201]);
      return { taskId: res.task_id };
    },
    async get(id) {
      const res = await fetch(`${base}/api/v1/tasks/${enc(id)}`);
      if (res.status === 200) return ((await res.json()) as { task: Task }).task;
      if (res.status !== 404) return fail(res);
      const envelope = (await res.json()) as { error?: string };
      if (envelope.error !== "TaskNotFound") throw new Error(`GET task ${id}: 404 ${JSON.stringify(envelope)}`);
      return undefined; // REST says 404 TaskNotFound; the domain answer is "no such task"
    },
    async list(q = {}) {
      const qs = listParams(q).toString();
      return call("GET", `/api/v1/tasks${qs ? `?${qs}` : ""}`);
    },
    async runs(id) {
      return ((await call("GET", `/api/v1/tasks/${enc(id)}/runs`)) as { runs: TaskRun[] }).runs;
    },
    async logs(id) {
      const res = await fetch(`${base}/api/v1/tasks/${enc(id)}/logs`, { signal: AbortSignal.timeout(STREAM_MS) });
      if (res.status !== 200) return fail(res);
      const out: LogEvent[] = [];
      for await (const e of readSse(res)) out.push(e.data as LogEvent);
      return out;
    },
    async delete(id) {
      await call("DELETE", `/api/v1/tasks/${enc(id)}`, undefined, [204]);
    },
    async cancel(id) {
      return (await call("POST", `/api/v1/tasks/${enc(id)}/cancel`)).task;
    },
    async start(id) {
      return (await call("POST", `/api/v1/tasks/${enc(id)}/start`)).task;
    },
    async restart(id) {
      return (await call("POST", `/api/v1/tasks/${enc(id)}/restart`)).task;
    },
    async wait(id, timeoutMs) {
      return (await call("GET", `/api/v1/tasks/${enc(id)}/wait?timeoutMs=${timeoutMs}`)).task;
    },
    async run(spec, timeoutMs): Promise<RunResult> {
      return call("POST", `/api/v1/tasks?wait=true&timeoutMs=${timeoutMs}`, submitBody(spec));
    },
    watch(opts = {}): WatchStream {
      const p = new URLSearchParams();
      if (opts.after !== undefined) p.set("after", String(opts.after));
      if (opts.slot !== undefined) p.set("slot", opts.slot);
      for (const [k, v] of Object.entries(opts.labels ?? {})) p.append("label", `${k}=${v}`);
      const ac = new AbortController();
      const close = () => ac.abort();
      const q = createPushQueue<WatchItem>(close);
      void (async () => {
        const res = await fetch(`${base}/api/v1/events?${p}`, { signal: ac.signal });
        if (res.status !== 200) return fail(res);
        for await (const e of readSse(res)) {
          const id = e.id ?? 0;
          if (e.event === "task") q.push({ id, type: "task", task: e.data as Task });
          else if (e.event === "deleted") q.push({ id, type: "deleted", taskId: e.data.id });
          else if (e.event === "lagged") q.push({ id, type: "lagged", skipped: e.data.skipped });
          else throw new Error(`unexpected watch event ${e.event}`);
        }
        q.end();
      })().catch((err: unknown) => (ac.signal.aborted ? q.end() : q.fail(err)));
      return watchStreamOf(q, close);
    },
    async info(): Promise<AgentInfo> {
      const d = await call("GET", "/api/v1/info");
      return {
        version: d.version,
        uptimeMs: d.uptimeMs,
        hostname: d.hostname,
        os: d.os,
        arch: d.arch,
        dataDir: d.dataDir,
        maxConcurrent: d.limits.maxConcurrent,
        maxBodyBytes: d.limits.maxBodyBytes,
        maxScriptBytes: d.limits.maxScriptBytes,
        capabilities: d.capabilities,
      };
    },
    [Symbol.dispose]() {},
  };
}
