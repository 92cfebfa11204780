/**
 * Agent info: `GET /api/v1/info` and gRPC `AgentService.GetInfo` carry
 * version, uptime, hostname, os/arch, limits, capabilities and data dir —
 * the same values over both.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join, relative } from "node:path";
import { AgentService } from "../../src/gen/tasklane/v1/agent_pb.ts";
import { archName } from "../../src/platform.ts";
import { VERSION } from "../../src/version.ts";
import { startAgent, type TestAgent } from "../helpers/start-agent.ts";
import { grpcConnection, unary } from "../contract/grpc-client.ts";
import { TRANSPORTS } from "../contract/specs.ts";

// Real processes and servers: allow more than the 5 s default when run on its own.
setDefaultTimeout(30_000);

let agent: TestAgent;
beforeAll(async () => {
  agent = await startAgent({ persistent: true, args: ["--max-concurrent", "3"] });
});
afterAll(async () => {
  await agent?.[Symbol.asyncDispose]();
});

const CAPABILITIES = ["task_runs", "task_delete", "cancel", "wait", "watch", "hold", "restart", "submit_and_wait"];

describe("GET /api/v1/info", () => {
  test("version, uptime, host, os/arch, data dir, limits, capabilities", async () => {
    const before = Date.now();
    const { status, body } = await agent.json("GET", "/api/v1/info");
    expect(status).toBe(200);
    expect(body).toEqual({
      name: "tasklane",
      version: VERSION,
      apiVersion: 1,
      startedAt: expect.any(Number),
      uptimeMs: expect.any(Number),
      hostname: hostname(),
      os: process.platform,
      arch: archName(),
      pid: process.pid,
      dataDir: agent.dataDir,
      store: expect.any(String),
      auth: expect.objectContaining({ enabled: false }),
      resourceLimits: expect.objectContaining({ mode: expect.any(String) }),
      limits: {
        maxConcurrent: 3,
        maxQueuePerSlot: expect.any(Number),
        maxBodyBytes: 4_194_304,
        maxScriptBytes: 2_097_152,
        maxLineBytes: 16_384,
        logRetain: expect.any(Number),
        logRetainBytes: expect.any(Number),
        killGraceMs: 2000,
        taskTtlMs: expect.any(Number),
        maxTasks: expect.any(Number),
        maxRuns: expect.any(Number),
      },
      capabilities: expect.arrayContaining(CAPABILITIES),
      running: 0,
    });
    expect(body.startedAt).toBeLessThanOrEqual(before);
    expect(body.uptimeMs).toBeGreaterThanOrEqual(0);
    expect(body.startedAt + body.uptimeMs).toBeGreaterThanOrEqual(before - 1000);
  });
});

test("a relative --data-dir is shown resolved, where the data is (as `store` shows it)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tasklane-info-"));
  try {
    await using rel = await startAgent({ dataDir: relative(process.cwd(), dir) });
    const { body } = await rel.json("GET", "/api/v1/info");
    expect([body.dataDir, body.store]).toEqual([dir, `sqlite:${dir}/tasklane.db`]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe("gRPC GetInfo", () => {
  test("the same facts, and the whole REST document in infoJson", async () => {
    const conn = grpcConnection(agent);
    try {
      const info = await unary(conn, AgentService.method.getInfo, {});
      const { infoJson, $typeName: _t, ...fields } = info;
      expect(fields).toEqual({
        version: VERSION,
        uptimeMs: expect.any(BigInt),
        hostname: hostname(),
        os: process.platform,
        arch: archName(),
        dataDir: agent.dataDir,
        maxConcurrent: 3,
        maxBodyBytes: 4_194_304n,
        maxScriptBytes: 2_097_152n,
        capabilities: expect.arrayContaining(CAPABILITIES),
      });
      expect(info.uptimeMs).toBeGreaterThanOrEqual(0n);
      const rest = (await agent.json("GET", "/api/v1/info")).body;
      expect(JSON.parse(infoJson)).toEqual({ ...rest, uptimeMs: expect.any(Number), running: expect.any(Number) });
      expect(info.capabilities).toEqual(rest.capabilities);
    } finally {
      conn.close();
    }
  });
});

describe("info is the same over both transports", () => {
  test("the contract clients agree", async () => {
    const [first, ...others] = await Promise.all(
      TRANSPORTS.map(async ([, factory]) => {
        using c = factory(agent);
        return await c.info();
      }),
    );
    for (const info of others) expect(info).toEqual({ ...first!, uptimeMs: expect.any(Number) });
    for (const info of [first!, ...others]) expect(info.uptimeMs).toBeGreaterThanOrEqual(0);
  });
});
