/**
 * Start-up of the compiled binary (bench/README.md, benchmark 10): the first
 * 200 on /readyz means the agent really serves — gRPC health is SERVING at
 * that moment and the store was opened and recovered — and anything /readyz
 * answers before is a 503 "not ready".
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSqliteStore } from "../../src/store/sqlite-store.ts";
import type { Task } from "../../src/tasks/model.ts";
import { protoClient, unary } from "../grpc/proto-client.ts";
import { makeTask } from "../store/make-task.ts";
import { binaryPath } from "./binary.ts";

function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

/** A finished task and an interrupted one (running when the previous agent died). */
async function seed(dbPath: string): Promise<void> {
  const store = createSqliteStore({ path: dbPath });
  // restart: never, so the interrupted run ends the task.
  const task = (id: string, phase: "succeeded" | "running"): Task => {
    const t = makeTask({ id, slot: "boot", phase, createdAt: 1_000, updatedAt: 1_005 });
    t.spec.restart = { type: "never" };
    if (phase === "running") delete t.status.exitCode;
    return t;
  };
  store.putTask(task("tsk_00000000000000000000000001", "succeeded"));
  store.putTask(task("tsk_00000000000000000000000002", "running"));
  await store.flush();
  await store.close();
}

describe("start-up", () => {
  test("the first /readyz 200 comes with gRPC serving and the store recovered", async () => {
    const bin = await binaryPath();
    const dir = mkdtempSync(join(tmpdir(), "tasklane-startup-"));
    await seed(join(dir, "tasklane.db"));
    const httpPort = freePort();
    const grpcPort = freePort();
    const proc = Bun.spawn([bin, "serve", "--http-addr", `127.0.0.1:${httpPort}`, "--grpc-addr", `127.0.0.1:${grpcPort}`, "--data-dir", dir], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
      stdin: "ignore",
      stdout: "ignore",
      stderr: "pipe",
    });
    const health = protoClient("grpc/health/v1/health.proto", "grpc.health.v1.Health", grpcPort);
    try {
      const before: unknown[] = [];
      let ready: unknown;
      const deadline = Date.now() + 30_000;
      while (ready === undefined) {
        if (proc.exitCode !== null) throw new Error(`agent exited ${proc.exitCode}: ${await new Response(proc.stderr).text()}`);
        if (Date.now() > deadline) throw new Error("agent never answered 200 on /readyz");
        const res = await fetch(`http://127.0.0.1:${httpPort}/readyz`).catch(() => undefined);
        if (res?.status === 200) ready = await res.json();
        else if (res) before.push({ status: res.status, body: await res.json() });
        else await new Promise<void>((r) => setImmediate(r));
      }
      expect(ready).toEqual({ status: "ready", checks: { storeOpen: true, storeWritable: true, httpListening: true, grpcListening: true, accepting: true } });
      for (const b of before) expect(b).toMatchObject({ status: 503, body: { status: "not ready" } });
      expect(await unary(health, "Check", { service: "solti.v1.SoltiApi" })).toEqual({ status: "SERVING" });
      // Recovery ran before ready: the task interrupted by the previous agent's death is closed (restart: never).
      const interrupted = (await (await fetch(`http://127.0.0.1:${httpPort}/api/v1/tasks/tsk_00000000000000000000000002`)).json()) as { task: Task };
      expect(interrupted.task.status.phase).toBe("failed");
    } finally {
      health.close();
      proc.kill("SIGKILL");
      await proc.exited;
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
