/**
 * The extension routes of CONTRACT §2 around a task: submit-and-wait,
 * long-poll wait, cancel/start/restart on unknown ids, health.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHttpApp } from "../../src/http/http-app.ts";
import { createServiceRig } from "../helpers/service-rig.ts";
import { bashSpec, commandSpec, startAgent, type TestAgent } from "../helpers/start-agent.ts";
import { submitOk } from "../helpers/task-control.ts";

let a: TestAgent;

/** The HTTP app over a hand-wired service (no agent, no listener). */
function appOverRig() {
  const rig = createServiceRig();
  const app = createHttpApp({
    service: rig.service,
    info: () => ({}),
    metricsJson: () => ({}),
    metricsText: async () => ["text/plain", ""],
    health: () => ({ live: true, ready: true, checks: {} }),
  });
  return { rig, app };
}
/** The app over a rig, listening with a 1 s idle timeout, for the duration of `fn`. */
async function withShortIdleTimeout(fn: (url: string, rig: ReturnType<typeof appOverRig>["rig"]) => Promise<void>): Promise<void> {
  const { rig, app } = appOverRig();
  app.listen({ hostname: "127.0.0.1", port: 0, idleTimeout: 1 });
  try {
    await fn(`http://127.0.0.1:${app.server!.port}`, rig);
  } finally {
    await app.stop(true);
    await rig.close();
  }
}
beforeAll(async () => {
  a = await startAgent();
});
afterAll(async () => {
  await a?.[Symbol.asyncDispose]();
});

describe("POST /api/v1/tasks?wait=true", () => {
  test("answers 200 with the final task, its runs and the output tails", async () => {
    const r = await a.json("POST", "/api/v1/tasks?wait=true", { spec: bashSpec("echo one; echo two >&2; echo three; exit 5") });
    expect(r).toEqual({
      status: 200,
      body: {
        task: {
          metadata: { id: expect.stringMatching(/^tsk_/), resourceVersion: 3, createdAt: expect.any(Number), updatedAt: expect.any(Number) },
          spec: expect.objectContaining({ restart: { type: "never" } }),
          status: { phase: "failed", attempt: 1, exitCode: 5, error: "exit code 5" },
        },
        runs: [{ attempt: 1, phase: "failed", startedAt: expect.any(Number), finishedAt: expect.any(Number), exitCode: 5, error: "exit code 5" }],
        output: { stdout: ["one", "three"], stderr: ["two"] },
      },
    });
  });

  test("timeoutMs bounds the wait: the task is answered as it is then", async () => {
    const r = await a.json("POST", "/api/v1/tasks?wait=true&timeoutMs=30", { spec: commandSpec("true", [], { hold: true }) });
    expect(r.status).toBe(200);
    expect(r.body.task.status).toEqual({ phase: "pending", attempt: 0 });
    expect(r.body.runs).toEqual([]);
  });

  test("a bad timeoutMs is a 400 with or without wait, and nothing is stored", async () => {
    for (const q of ["wait=true&timeoutMs=abc", "timeoutMs=abc", "wait=false&timeoutMs=-1", "timeoutMs=600001", "wait=false&timeoutMs=700000"]) {
      const r = await a.json("POST", `/api/v1/tasks?${q}`, { spec: commandSpec("true", [], { slot: "bad-timeout", hold: true }) });
      expect({ q, status: r.status, error: r.body.error, names: String(r.body.message).startsWith("timeoutMs:") }).toEqual({ q, status: 400, error: "InvalidRequest", names: true });
    }
    expect((await a.json("GET", "/api/v1/tasks?slot=bad-timeout")).body.total).toBe(0);
  });

  test("a bad wait flag is a 400", async () => {
    expect(await a.json("POST", "/api/v1/tasks?wait=maybe", { spec: commandSpec("true") })).toEqual({
      status: 400,
      body: { error: "InvalidRequest", message: 'wait: must be true or false, got "maybe"' },
    });
  });
});

describe("GET /api/v1/tasks/{id}/wait", () => {
  test("timeoutMs above 10 minutes or not a number is a 400", async () => {
    const { id } = await submitOk(a, commandSpec("true", [], { hold: true }));
    expect(await a.json("GET", `/api/v1/tasks/${id}/wait?timeoutMs=600001`)).toEqual({
      status: 400,
      body: { error: "InvalidRequest", message: "timeoutMs: must be an integer 0..600000, got 600001" },
    });
    expect(await a.json("GET", `/api/v1/tasks/${id}/wait?timeoutMs=soon`)).toEqual({
      status: 400,
      body: { error: "InvalidRequest", message: 'timeoutMs: must be a non-negative integer, got "soon"' },
    });
  });
});

describe("unknown ids on the task actions", () => {
  for (const action of ["cancel", "start", "restart"]) {
    test(`POST …/${action} → 404 TaskNotFound`, async () => {
      expect(await a.json("POST", `/api/v1/tasks/tsk_01NOSUCHTASK00000000000000/${action}`)).toEqual({
        status: 404,
        body: { error: "TaskNotFound", message: "task tsk_01NOSUCHTASK00000000000000 not found" },
      });
    });
  }
  test("GET …/wait → 404 TaskNotFound", async () => {
    expect((await a.json("GET", "/api/v1/tasks/tsk_01NOSUCHTASK00000000000000/wait?timeoutMs=10")).status).toBe(404);
  });
});

describe("health", () => {
  test("healthz and readyz", async () => {
    expect(await a.json("GET", "/healthz")).toEqual({ status: 200, body: { status: "alive" } });
    const ready = await a.json("GET", "/readyz");
    expect(ready.status).toBe(200);
    expect(ready.body.status).toBe("ready");
  });
});

describe("long polls outlive the server's idle timeout", () => {
  test("a wait longer than idleTimeout still answers (server listening with idleTimeout 1 s)", async () => {
    await withShortIdleTimeout(async (url, rig) => {
      const { taskId } = await rig.service.submit(commandSpec("true", [], { hold: true }), {});
      // Bun checks idle timeouts every 4 s or so: 5 s of silence is past it (both polls run at once).
      const [wait, run] = await Promise.all([
        fetch(`${url}/api/v1/tasks/${taskId}/wait?timeoutMs=5000`),
        fetch(`${url}/api/v1/tasks?wait=true&timeoutMs=5000`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ spec: commandSpec("true", [], { hold: true }) }),
        }),
      ]);
      expect([wait.status, run.status]).toEqual([200, 200]);
      expect(((await wait.json()) as any).task.status).toEqual({ phase: "pending", attempt: 0 });
      expect(((await run.json()) as any).task.status).toEqual({ phase: "pending", attempt: 0 });
    });
  }, 15_000);
});

describe("stops that wait out a kill grace outlive the server's idle timeout", () => {
  test("cancel and delete of a task ignoring SIGTERM answer after its 5 s grace (idleTimeout 1 s)", async () => {
    await withShortIdleTimeout(async (url, rig) => {
      const stubborn = () => bashSpec("trap '' TERM; echo ready; exec sleep 60", { killGraceMs: 5000 });
      const ids: string[] = [];
      for (let i = 0; i < 2; i++) {
        const { taskId } = await rig.service.submit(stubborn(), {});
        // TERM is ignored from the line "ready" on: wait for it.
        outer: for await (const batch of rig.service.logs(taskId, { follow: true }, {})) {
          for (const r of batch) if (r.event.type === "chunk" && r.event.line === "ready") break outer;
        }
        ids.push(taskId);
      }
      // Bun checks idle timeouts every 4 s or so: 5 s of silence is past it (both stops run at once).
      const [cancel, del] = await Promise.all([
        fetch(`${url}/api/v1/tasks/${ids[0]}/cancel`, { method: "POST" }),
        fetch(`${url}/api/v1/tasks/${ids[1]}`, { method: "DELETE" }),
      ]);
      expect([cancel.status, del.status]).toEqual([200, 204]);
      expect(((await cancel.json()) as any).task.status.phase).toBe("canceled");
    });
  }, 20_000);
});

describe("SSE routes answer HEAD with headers only", () => {
  test("HEAD of the event stream and of a running task's logs: 200, text/event-stream, no subscriber left open", async () => {
    const { id } = await submitOk(a, bashSpec("exec sleep 30"));
    for (const path of ["/api/v1/events", `/api/v1/tasks/${id}/logs`]) {
      const res = await fetch(`${a.url}${path}`, { method: "HEAD" });
      expect({ path, status: res.status, type: res.headers.get("content-type") }).toEqual({
        path,
        status: 200,
        type: "text/event-stream; charset=utf-8",
      });
    }
    const metrics = await (await fetch(`${a.url}/metrics`)).text();
    expect(metrics).toContain('\ntasklane_stream_subscribers{transport="sse"} 0\n');
    expect((await fetch(`${a.url}/api/v1/tasks/tsk_nope/logs`, { method: "HEAD" })).status).toBe(404);
    await fetch(`${a.url}/api/v1/tasks/${id}`, { method: "DELETE" });
  });
});

describe("the read path is synchronous", () => {
  test("GET /api/v1/tasks/{id} answers a Response, not a promise of one, and submit still parses its body", async () => {
    // Elysia compiles a route as async when any parse hook applies to it or when the handler's source
    // looks like it returns a call (`=> f(…)`): a promise per request on the hottest read (bench 5).
    const { rig, app } = appOverRig();
    try {
      const { taskId } = await rig.service.submit(commandSpec("true", [], { hold: true }), {});
      const res = app.fetch(new Request(`http://localhost:3000/api/v1/tasks/${taskId}`));
      expect(res).toBeInstanceOf(Response);
      const r = res as Response;
      expect(r.status).toBe(200);
      expect(r.headers.get("content-type")).toBe("application/json");
      expect(((await r.json()) as any).task.metadata.id).toBe(taskId);
      const bad = await app.fetch(
        new Request("http://localhost:3000/api/v1/tasks", { method: "POST", headers: { "content-type": "application/json" }, body: "{nope" }),
      );
      expect([bad.status, await bad.json()]).toEqual([400, { error: "InvalidRequest", message: expect.stringContaining("JSON") }]);
    } finally {
      await rig.close();
    }
  });
});
