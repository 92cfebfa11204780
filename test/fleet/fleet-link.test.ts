/**
 * The agent joins a control plane: real agents (in-process, port 0) sending
 * heartbeats to fake control planes over HTTP and over gRPC. Every wait is for
 * a recorded request or a logged state change, never for time.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { hostname, release, tmpdir, type } from "node:os";
import { join } from "node:path";
import { startAgent, bashSpec, commandSpec, type TestAgent } from "../helpers/start-agent.ts";
import { submitOk, waitForLine } from "../helpers/task-control.ts";
import { captureLogs } from "./capture-logger.ts";
import { startHttpControlPlane, TRANSPORTS, type FakeControlPlane, type Recorded } from "./fake-control-plane.ts";

const HEARTBEAT = "100ms";
const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;
const ARCH = process.arch === "x64" ? "amd64" : process.arch;
const PLATFORM = process.platform === "darwin" ? "macos" : process.platform;

function joinAgent(cp: FakeControlPlane, opts: { args?: string[]; env?: Record<string, string>; dataDir?: string; logs?: ReturnType<typeof captureLogs> } = {}): Promise<TestAgent> {
  return startAgent({
    args: ["--control-plane", cp.url, "--heartbeat", HEARTBEAT, ...(opts.args ?? [])],
    env: opts.env,
    dataDir: opts.dataDir,
    logger: opts.logs?.logger,
    random: () => 0.5,
  });
}

async function controlPlaneInfo(a: TestAgent): Promise<Record<string, unknown>> {
  const { status, body } = await a.json<{ controlPlane: Record<string, unknown> }>("GET", "/api/v1/info");
  expect(status).toBe(200);
  return body.controlPlane;
}

/**
 * The first heartbeat from `a` after request #`after`: a stopped agent's last
 * call may still land after it stopped, so match by the advertised endpoint.
 */
async function firstFrom(cp: FakeControlPlane, a: TestAgent, after: number): Promise<Recorded> {
  for (let n = after + 1; ; n++) {
    const r = await cp.request(n);
    if (r.json.endpoint === `grpc://127.0.0.1:${a.agent.grpcPort}`) return r;
  }
}

/** Proof that local work goes on: a task submitted now runs to success. */
async function runsLocalWork(a: TestAgent): Promise<void> {
  const submit = await a.json<{ task_id: string }>("POST", "/api/v1/tasks", { spec: commandSpec("echo", ["still serving"]) });
  expect(submit.status).toBe(201);
  const done = await a.json<{ task: { status: { phase: string } } }>("GET", `/api/v1/tasks/${submit.body.task_id}/wait?timeoutMs=10000`);
  expect(done.body.task.status.phase).toBe("succeeded");
}

for (const transport of TRANSPORTS) {
  describe(`fleet over ${transport.name}`, () => {
    test("heartbeats arrive at the interval with every field of SyncRequest", async () => {
      await using cp = await transport.start();
      const before = Date.now();
      await using a = await joinAgent(cp, { env: { TASKLANE_CONTROL_PLANE_TOKEN: "cp-secret" } });
      const [r1, r2, r3] = await Promise.all([cp.request(1), cp.request(2), cp.request(3)]);

      expect(r1.json).toEqual({
        id: expect.stringMatching(ULID),
        name: hostname(),
        endpoint: `grpc://127.0.0.1:${a.agent.grpcPort}`,
        uptimeSeconds: expect.any(String),
        os: `${type()} ${release()}`,
        arch: ARCH,
        platform: PLATFORM,
        ts: expect.any(String),
        metadata: {},
        endpointType: "ENDPOINT_TYPE_GRPC",
        apiVersion: 1,
        heartbeatIntervalS: 1,
        capabilities: ["task_runs", "task_delete"],
      });
      // HTTP posts proto3-JSON with every field present, exactly as decoded.
      if (transport.name === "http") expect(r1.raw).toEqual(r1.json);
      expect(Number(r1.json.ts)).toBeGreaterThanOrEqual(Math.floor(before / 1000));
      expect(Number(r1.json.ts)).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000));
      expect(Number(r1.json.uptimeSeconds)).toBeGreaterThanOrEqual(0);
      for (const r of [r1, r2, r3]) {
        expect(r.json.id).toBe(r1.json.id);
        expect(r.authorization).toBe("Bearer cp-secret");
      }
      // One beat per interval: not before it (small tolerance for timer rounding), not far after.
      for (const gap of [r2.at - r1.at, r3.at - r2.at]) {
        expect(gap).toBeGreaterThanOrEqual(90);
        expect(gap).toBeLessThan(5000);
      }

      expect(await controlPlaneInfo(a)).toEqual({
        url: cp.url,
        transport: transport.name,
        state: "up",
        lastSuccessAt: expect.any(Number),
        consecutiveFailures: 0,
        agentId: r1.json.id,
        endpoint: `grpc://127.0.0.1:${a.agent.grpcPort}`,
      });
    });

    test("--agent-id, --agent-name and an http:// --advertise are announced as given", async () => {
      await using cp = await transport.start();
      await using a = await joinAgent(cp, { args: ["--agent-id", "edge-7", "--agent-name", "rack 3", "--advertise", "https://edge-7.example:8443"] });
      const r = await cp.request(1);
      expect(r.json).toMatchObject({ id: "edge-7", name: "rack 3", endpoint: "https://edge-7.example:8443", endpointType: "ENDPOINT_TYPE_HTTP" });
      expect(r.authorization).toBeUndefined();
      expect(await controlPlaneInfo(a)).toMatchObject({ agentId: "edge-7", endpoint: "https://edge-7.example:8443" });
    });

    test("the generated id survives a restart on the same data dir; another data dir gets another id", async () => {
      await using cp = await transport.start();
      const dir = mkdtempSync(join(tmpdir(), "tasklane-fleet-"));
      try {
        let first: string;
        {
          await using a = await joinAgent(cp, { dataDir: dir });
          first = String((await cp.request(1)).json.id);
          expect(first).toMatch(ULID);
          expect(await controlPlaneInfo(a)).toMatchObject({ agentId: first });
        }
        const seen = cp.requests.length;
        {
          await using b = await joinAgent(cp, { dataDir: dir });
          expect((await firstFrom(cp, b, seen)).json.id).toBe(first);
        }
        const seen2 = cp.requests.length;
        await using c = await joinAgent(cp);
        const other = await firstFrom(cp, c, seen2);
        expect(other.json.id).toMatch(ULID);
        expect(other.json.id).not.toBe(first);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    test("an unavailable control plane: down with backoff while local work goes on, then up again", async () => {
      await using cp = await transport.start();
      const logs = captureLogs();
      await using a = await joinAgent(cp, { logs });
      await cp.request(2); // the answer to #1 was processed: the link is up

      const failFrom = cp.requests.length;
      let okFrom = Infinity;
      cp.reply = (_r, i) => (i >= failFrom && i < okFrom ? "unavailable" : { success: true });
      // Three failed attempts in a row; #k+1 arriving means #k's answer was processed.
      await cp.request(failFrom + 3);
      const down = await controlPlaneInfo(a);
      expect(down).toEqual({
        url: cp.url,
        transport: transport.name,
        state: "down",
        lastSuccessAt: expect.any(Number),
        lastError: transport.name === "http" ? "HTTP 503: control plane unavailable" : "gRPC UNAVAILABLE: control plane unavailable",
        lastErrorAt: expect.any(Number),
        consecutiveFailures: expect.any(Number),
        agentId: expect.stringMatching(ULID),
        endpoint: expect.any(String),
      });
      expect(down.consecutiveFailures).toBeGreaterThanOrEqual(2);
      expect(down.lastErrorAt as number).toBeGreaterThanOrEqual(down.lastSuccessAt as number);
      await runsLocalWork(a);

      okFrom = cp.requests.length;
      await cp.request(okFrom + 2);
      const up = await controlPlaneInfo(a);
      expect(up).toMatchObject({ state: "up", consecutiveFailures: 0 });
      expect(up.lastSuccessAt as number).toBeGreaterThanOrEqual(down.lastErrorAt as number);

      // Logged once per state change, not once per attempt.
      expect(logs.matching("control plane link down")).toHaveLength(1);
      expect(logs.matching("control plane link up")).toHaveLength(2);
      expect(logs.matching("control plane link down")[0]).toMatchObject({ level: "warn", url: cp.url, transport: transport.name });
    });

    test("a closed control plane: down until it listens again, then heartbeats resume", async () => {
      await using cp = await transport.start();
      const logs = captureLogs();
      await using a = await joinAgent(cp, { logs });
      await cp.request(2);
      await cp.down();
      await logs.waitFor("control plane link down");
      expect(await controlPlaneInfo(a)).toMatchObject({ state: "down", lastError: expect.any(String) });
      await runsLocalWork(a);

      const seen = cp.requests.length;
      await cp.up();
      const resumed = await cp.request(seen + 1);
      expect(resumed.json.id).toBe(cp.requests[0]!.json.id);
      await logs.waitFor("control plane link up", 2);
      expect(await controlPlaneInfo(a)).toMatchObject({ state: "up", consecutiveFailures: 0 });
      expect(logs.matching("control plane link down")).toHaveLength(1);
    });

    test("success:false with retryAfterS: the next attempt waits at least that long", async () => {
      await using cp = await transport.start();
      const logs = captureLogs();
      cp.reply = (_r, i) => (i === 0 ? { success: false, reason: "maintenance", retryAfterS: 1 } : { success: true });
      await using a = await joinAgent(cp, { logs });
      const r1 = await cp.request(1);
      await logs.waitFor("control plane link down");
      expect(await controlPlaneInfo(a)).toMatchObject({ state: "down", lastError: "refused: maintenance", consecutiveFailures: 1 });

      const r2 = await cp.request(2);
      // With --heartbeat 100ms and a 100 ms first backoff, only retryAfterS explains a ≥ 1 s gap.
      expect(r2.at - r1.at).toBeGreaterThanOrEqual(990);
      await logs.waitFor("control plane link up");
      expect(await controlPlaneInfo(a)).toMatchObject({ state: "up", consecutiveFailures: 0, lastError: "refused: maintenance" });
    });
  });
}

test("a control-plane URL with user info from TASKLANE_CONTROL_PLANE does not reach tasks", async () => {
  await using cp = await startHttpControlPlane();
  const withCreds = cp.url.replace("http://", "http://bob:URLSECRET@");
  await using a = await startAgent({
    args: ["--heartbeat", HEARTBEAT],
    env: { TASKLANE_CONTROL_PLANE: withCreds, TASKLANE_CONTROL_PLANE_TOKEN: "cp-secret", TASKLANE_VISIBLE: "yes" },
  });
  await cp.request(1); // the agent did join with it
  const { id } = await submitOk(a, bashSpec('echo "cp=${TASKLANE_CONTROL_PLANE-unset} token=${TASKLANE_CONTROL_PLANE_TOKEN-unset} visible=${TASKLANE_VISIBLE-unset}"'));
  expect(await waitForLine(a, id, (l) => l.startsWith("cp="))).toBe("cp=unset token=unset visible=yes");
  expect(await controlPlaneInfo(a)).toMatchObject({ url: cp.url });
});

test("a bad --control-plane URL fails start-up naming the flag", async () => {
  await expect(startAgent({ args: ["--control-plane", "ftp://cp.example"] })).rejects.toThrow(
    '--control-plane: scheme must be http://, https://, grpc:// or grpcs://, got "ftp://cp.example"',
  );
});
