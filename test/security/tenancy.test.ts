/**
 * Per-owner isolation: bob (user) cannot get, list, read the runs or logs of,
 * watch (SSE, WebSocket, gRPC), cancel, start, restart, wait on or delete
 * alice's tasks — over REST and gRPC — and each looks exactly like a task
 * that does not exist. A viewer sees only its own (none); the admin sees all
 * and may filter by owner.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as grpc from "@grpc/grpc-js";
import { collect, failure, serverStream, unary } from "../grpc/proto-client.ts";
import { readSse } from "../helpers/sse.ts";
import { commandSpec } from "../helpers/start-agent.ts";
import { startSecureAgent, type SecureAgent } from "./secure-agent.ts";

let a: SecureAgent;
/** alice's finished task (printed a secret) and her held (pending) one. */
let done: string;
let held: string;
const MISSING = "tsk_01ZZZZZZZZZZZZZZZZZZZZZZZZ";

beforeAll(async () => {
  a = await startSecureAgent();
  const r1 = await a.json("POST", "/api/v1/tasks?wait=true", { spec: commandSpec("echo", ["alice-secret"]) }, a.bearer("alice"));
  expect(r1.status).toBe(200);
  expect(r1.body.task.status.phase).toBe("succeeded");
  done = r1.body.task.metadata.id;
  const r2 = await a.json("POST", "/api/v1/tasks", { spec: commandSpec("true", [], { hold: true }) }, a.bearer("alice"));
  held = r2.body.task_id;
  const r3 = await a.json("POST", "/api/v1/tasks", { spec: commandSpec("true") }, a.bearer("bob"));
  expect(r3.status).toBe(201);
});
afterAll(() => a[Symbol.asyncDispose]());

const notFound = (id: string) => ({ status: 404, body: { error: "TaskNotFound", message: `task ${id} not found` } });

describe("REST", () => {
  test("get, runs, wait, cancel, start, restart: alice's task answers bob exactly like a missing one", async () => {
    const bob = a.bearer("bob");
    for (const [method, suffix] of [
      ["GET", ""],
      ["GET", "/runs"],
      ["GET", "/wait?timeoutMs=0"],
      ["POST", "/cancel"],
      ["POST", "/start"],
      ["POST", "/restart"],
    ] as const) {
      for (const id of [done, held]) {
        expect(await a.json(method, `/api/v1/tasks/${id}${suffix}`, undefined, bob)).toEqual(notFound(id));
      }
      expect(await a.json(method, `/api/v1/tasks/${MISSING}${suffix}`, undefined, bob)).toEqual(notFound(MISSING));
    }
    // Nothing happened to alice's held task.
    expect((await a.json("GET", `/api/v1/tasks/${held}`, undefined, a.bearer("alice"))).body.task.status.phase).toBe("pending");
  });

  test("logs (SSE): 404 for bob, alice reads her output", async () => {
    expect(await a.json("GET", `/api/v1/tasks/${done}/logs?follow=false`, undefined, a.bearer("bob"))).toEqual(notFound(done));
    const res = await a.request("GET", `/api/v1/tasks/${done}/logs?follow=false`, undefined, a.bearer("alice"));
    const lines: string[] = [];
    for await (const e of readSse(res)) if (e.event === "chunk") lines.push(e.data.line);
    expect(lines).toEqual(["alice-secret"]);
  });

  test("list and its total count only the caller's own tasks; an owner filter cannot widen it", async () => {
    const bob = await a.json("GET", "/api/v1/tasks", undefined, a.bearer("bob"));
    expect(bob.body.total).toBe(1);
    expect(bob.body.tasks.map((t: { metadata: { owner: string } }) => t.metadata.owner)).toEqual(["bob"]);
    const sneaky = await a.json("GET", "/api/v1/tasks?owner=alice", undefined, a.bearer("bob"));
    expect(sneaky.body.tasks.some((t: { metadata: { owner: string } }) => t.metadata.owner === "alice")).toBe(false);
    expect(await a.json("GET", "/api/v1/tasks", undefined, a.bearer("vic"))).toEqual({ status: 200, body: { tasks: [], total: 0 } });
  });

  test("the admin sees every task and may filter by owner", async () => {
    const all = await a.json("GET", "/api/v1/tasks", undefined, a.bearer("root"));
    expect(all.body.total).toBe(3);
    const alice = await a.json("GET", "/api/v1/tasks?owner=alice", undefined, a.bearer("root"));
    expect(alice.body.total).toBe(2);
    expect(alice.body.tasks.map((t: { metadata: { id: string; owner: string } }) => [t.metadata.id, t.metadata.owner]).sort()).toEqual(
      [
        [done, "alice"],
        [held, "alice"],
      ].sort(),
    );
    expect((await a.json("GET", `/api/v1/tasks/${done}`, undefined, a.bearer("root"))).status).toBe(200);
  });

  test("watch (SSE) from the start of history shows bob only his own tasks", async () => {
    const res = await a.request("GET", "/api/v1/events?after=0", undefined, a.bearer("bob"));
    expect(res.status).toBe(200);
    const marker = (await a.json("POST", "/api/v1/tasks", { spec: commandSpec("true") }, a.bearer("bob"))).body.task_id;
    const seen: string[] = [];
    for await (const e of readSse(res)) {
      const id = e.event === "task" ? e.data.metadata.id : e.data?.id;
      seen.push(id);
      if (e.event === "task") expect(e.data.metadata.owner).toBe("bob");
      if (id === marker) break;
    }
    expect(seen).not.toContain(done);
    expect(seen).not.toContain(held);
    expect(seen).toContain(marker);
  });

  test("watch (WebSocket) from the start of history shows bob only his own tasks", async () => {
    const ws = new WebSocket(`${a.url.replace("http", "ws")}/ws/tasks?after=0`, { headers: a.bearer("bob") });
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = reject;
    });
    const seen: { id?: string; owner?: string }[] = [];
    const { promise, resolve } = Promise.withResolvers<void>();
    let marker = "";
    ws.onmessage = (m) => {
      const msg = JSON.parse(String(m.data));
      seen.push({ id: msg.task?.metadata?.id, owner: msg.task?.metadata?.owner });
      if (marker !== "" && msg.task?.metadata?.id === marker) resolve();
    };
    marker = (await a.json("POST", "/api/v1/tasks", { spec: commandSpec("true") }, a.bearer("bob"))).body.task_id;
    if (seen.some((s) => s.id === marker)) resolve(); // its events may arrive before the POST answer
    await promise;
    ws.close();
    expect(seen.map((s) => s.id)).not.toContain(done);
    expect(seen.map((s) => s.id)).not.toContain(held);
    expect(seen.every((s) => s.owner === "bob")).toBe(true);
  });

  test("DELETE by bob answers 204 and has no effect", async () => {
    const res = await a.request("DELETE", `/api/v1/tasks/${done}`, undefined, a.bearer("bob"));
    expect(res.status).toBe(204);
    expect((await a.json("GET", `/api/v1/tasks/${done}`, undefined, a.bearer("alice"))).status).toBe(200);
  });
});

describe("gRPC", () => {
  test("GetTaskStatus: alice's task is absent for bob, exactly like a missing id", async () => {
    expect(await unary(a.solti, "GetTaskStatus", { taskId: done }, a.md("bob"))).toEqual(
      await unary(a.solti, "GetTaskStatus", { taskId: MISSING }, a.md("bob")),
    );
    expect(await unary(a.solti, "GetTaskStatus", { taskId: done }, a.md("bob"))).toEqual({});
    expect(await unary<{ task: { metadata: { id: string } } }>(a.solti, "GetTaskStatus", { taskId: done }, a.md("alice"))).toMatchObject({
      task: { metadata: { id: done } },
    });
  });

  test("runs, logs, cancel, start, restart, wait: NOT_FOUND for bob", async () => {
    const nf = { code: grpc.status.NOT_FOUND, details: `task ${done} not found` };
    expect(await failure(unary(a.solti, "ListTaskRuns", { taskId: done }, a.md("bob")))).toEqual(nf);
    const logs = await collect(serverStream(a.solti, "StreamTaskLogs", { taskId: done }, a.md("bob")));
    expect({ code: logs.code, details: logs.details, messages: logs.messages }).toEqual({ ...nf, messages: [] });
    for (const rpc of ["CancelTask", "StartTask", "RestartTask"]) {
      expect(await failure(unary(a.agentSvc, rpc, { taskId: done }, a.md("bob")))).toEqual(nf);
    }
    expect(await failure(unary(a.agentSvc, "WaitTask", { taskId: done, timeoutMs: "0" }, a.md("bob")))).toEqual(nf);
  });

  test("ListTasks and its total count only bob's tasks", async () => {
    const res = await unary<{ tasks: { metadata: { id: string } }[]; total: number }>(a.solti, "ListTasks", {}, a.md("bob"));
    const ids = res.tasks.map((t) => t.metadata.id);
    expect(ids).not.toContain(done);
    expect(ids).not.toContain(held);
    expect(res.total).toBe(ids.length);
    const admin = await unary<{ total: number }>(a.solti, "ListTasks", {}, a.md("root"));
    expect(admin.total).toBe(res.total + 2);
  });

  test("WatchTasks from the start of history shows bob only his own tasks", async () => {
    const stream = serverStream<{ task?: { metadata: { id: string } }; deletedId?: string }>(a.agentSvc, "WatchTasks", { after: "0" }, a.md("bob"));
    const seen: string[] = [];
    const { promise, resolve } = Promise.withResolvers<void>();
    let marker = "";
    stream.on("data", (ev) => {
      const id = ev.task?.metadata.id ?? ev.deletedId ?? "";
      seen.push(id);
      if (marker !== "" && id === marker) resolve();
    });
    stream.on("error", () => resolve());
    marker = (await a.json("POST", "/api/v1/tasks", { spec: commandSpec("true") }, a.bearer("bob"))).body.task_id;
    if (seen.includes(marker)) resolve(); // its events may arrive before the POST answer
    await promise;
    stream.cancel();
    expect(seen).toContain(marker);
    expect(seen).not.toContain(done);
    expect(seen).not.toContain(held);
  });

  test("DeleteTask by bob succeeds and has no effect", async () => {
    expect(await unary(a.solti, "DeleteTask", { taskId: held }, a.md("bob"))).toEqual({});
    expect((await a.json("GET", `/api/v1/tasks/${held}`, undefined, a.bearer("alice"))).status).toBe(200);
  });
});

// Last: it adds tasks of both owners, which the counts above do not expect.
describe("admission", () => {
  test("slots are per owner: bob's dropIfRunning, queue and replace in alice's busy slot neither see nor touch her task", async () => {
    const alice = a.bearer("alice");
    const bob = a.bearer("bob");
    const slot = "nightly-backup";
    const r = await a.json("POST", "/api/v1/tasks", { spec: commandSpec("sleep", ["60"], { slot }) }, alice);
    expect(r.body.admission).toBe("started");
    const hers = r.body.task_id;
    try {
      for (const admission of ["dropIfRunning", "queue", "replace"]) {
        const b = await a.json("POST", "/api/v1/tasks?wait=true&timeoutMs=20000", { spec: commandSpec("true", [], { slot, admission }) }, bob);
        // Bob's task had the slot to itself: it ran at once and succeeded (no "dropped: … busy with <alice's id>").
        expect({ admission, status: b.status, phase: b.body.task.status.phase, error: b.body.task.status.error }).toEqual({
          admission,
          status: 200,
          phase: "succeeded",
          error: undefined,
        });
      }
      const task = (await a.json("GET", `/api/v1/tasks/${hers}`, undefined, alice)).body.task;
      expect(task.status).toEqual({ phase: "running", attempt: 1 });
      // Within one owner the slot still admits as before.
      const again = await a.json("POST", "/api/v1/tasks", { spec: commandSpec("true", [], { slot, admission: "dropIfRunning" }) }, alice);
      expect(again.body.admission).toBe("dropped");
    } finally {
      await a.json("POST", `/api/v1/tasks/${hers}/cancel`, undefined, alice);
    }
  });
});
