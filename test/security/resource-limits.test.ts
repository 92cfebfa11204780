/**
 * Resource limits: detection and wrapping (unit, against a fake cgroup
 * directory and with injected prlimit/euid), then what this host can enforce
 * for real: a task over its memory limit fails with a clear error, a limit
 * that cannot be enforced is a 400 naming the field (or accepted with
 * --resource-limits=best-effort), and a fork bomb under a pids limit is
 * contained when pids can be limited here.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AgentError } from "../../src/errors.ts";
import { createResourceLimiter, formatBytes } from "../../src/runner/resource-limits.ts";
import { readSse } from "../helpers/sse.ts";
import { bashSpec } from "../helpers/start-agent.ts";
import { startSecureAgent } from "./secure-agent.ts";

const SH = Bun.which("sh")!;
const PRLIMIT = Bun.which("prlimit");
const MiB = 1024 * 1024;

function fakeCgroup(procs: string): string {
  const dir = mkdtempSync(join(tmpdir(), "tasklane-cg-"));
  writeFileSync(join(dir, "cgroup.controllers"), "cpuset cpu io memory pids\n");
  writeFileSync(join(dir, "cgroup.subtree_control"), "");
  writeFileSync(join(dir, "cgroup.procs"), procs);
  return dir;
}

describe("createResourceLimiter (unit)", () => {
  test("a delegated cgroup v2: the agent moves into a leaf, controllers are enabled, each run gets its own cgroup", async () => {
    const dir = fakeCgroup("4242\n");
    try {
      const l = createResourceLimiter({ mode: "strict", cgroupDir: dir, sh: SH, prlimit: null, euid: 0, pid: 4242 });
      expect(l.support).toEqual({ memory: "cgroup", cpu: "cgroup", pids: "cgroup" });
      expect(l.cgroupDir).toBe(dir);
      expect(readFileSync(join(dir, "tasklane-agent", "cgroup.procs"), "utf8")).toBe("4242");
      expect(readFileSync(join(dir, "cgroup.subtree_control"), "utf8").split(/\s+/).filter(Boolean).sort()).toEqual(["+cpu", "+memory", "+pids"]);
      l.check({ memoryBytes: 64 * MiB, cpuMillis: 500, pids: 16 });

      const run = l.prepare("tsk_1-1", { memoryBytes: 64 * MiB, cpuMillis: 500, pids: 16 })!;
      const cg = join(dir, "tasklane-tsk_1-1");
      expect(["memory.max", "cpu.max", "pids.max"].map((f) => readFileSync(join(cg, f), "utf8"))).toEqual([String(64 * MiB), "50000 100000", "16"]);
      // The wrapper joins the cgroup (writes its pid) and execs the command with the same pid.
      const argv = run.argv(["/bin/echo", "hi"]);
      const proc = Bun.spawnSync({ cmd: argv, stdout: "pipe", stderr: "pipe" });
      expect(proc.stdout.toString()).toBe("hi\n");
      expect(readFileSync(join(cg, "cgroup.procs"), "utf8").trim()).toMatch(/^\d+$/);

      writeFileSync(join(cg, "memory.events"), "low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n");
      expect(await run.finish({ signal: "SIGKILL", startedAt: 0, finishedAt: 1 })).toEqual({ limitError: "killed: memory limit 64MiB exceeded" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("an OOM kill is not claimed for a run that was stopped, and pids exhaustion is a note", async () => {
    const dir = fakeCgroup("");
    try {
      const l = createResourceLimiter({ mode: "strict", cgroupDir: dir, sh: SH, prlimit: null, euid: 0, pid: 1 });
      const a = l.prepare("tsk_2-1", { memoryBytes: MiB })!;
      writeFileSync(join(dir, "tasklane-tsk_2-1", "memory.events"), "oom_kill 1\n");
      expect(await a.finish({ stoppedBy: "timeout", signal: "SIGTERM", startedAt: 0, finishedAt: 1 })).toEqual({});
      const b = l.prepare("tsk_3-1", { pids: 4 })!;
      writeFileSync(join(dir, "tasklane-tsk_3-1", "pids.events"), "max 3\n");
      expect(await b.finish({ exitCode: 1, startedAt: 0, finishedAt: 1 })).toEqual({ limitNote: "pids limit 4 reached" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a cgroup shared with other processes is not used; rlimits take over", () => {
    const dir = fakeCgroup("1\n2\n");
    try {
      const l = createResourceLimiter({ mode: "strict", cgroupDir: dir, sh: SH, prlimit: "/usr/bin/prlimit", euid: 1000, pid: 1 });
      expect(l.support).toEqual({ memory: "rlimit", cpu: "none", pids: "rlimit" });
      expect(l.notes.cpu).toContain("holds other processes");
      const run = l.prepare("tsk_4-1", { memoryBytes: 64 * MiB, pids: 32 })!;
      expect(run.argv(["/bin/true"])).toEqual(["/usr/bin/prlimit", `--as=${64 * MiB}`, "--nproc=32", "--", "/bin/true"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("rlimits: RLIMIT_NPROC does not bind root; strict mode rejects what cannot be enforced, naming the field", async () => {
    const root = createResourceLimiter({ mode: "strict", noCgroup: true, prlimit: "/usr/bin/prlimit", euid: 0 });
    expect(root.support).toEqual({ memory: "rlimit", cpu: "none", pids: "none" });
    expect(root.notes.pids).toBe("cgroups not used; RLIMIT_NPROC does not apply to root");
    const reject = (res: Record<string, number>) => {
      try {
        root.check(res);
      } catch (err) {
        expect(err).toBeInstanceOf(AgentError);
        return (err as AgentError).message;
      }
      return "accepted";
    };
    expect(reject({ memoryBytes: MiB })).toBe("accepted");
    expect(reject({ pids: 8 })).toBe(
      "spec.resources.pids: cannot be enforced on this host (cgroups not used; RLIMIT_NPROC does not apply to root); start the agent with --resource-limits=best-effort to accept limits it cannot enforce",
    );
    expect(reject({ memoryBytes: MiB, cpuMillis: 100 })).toStartWith("spec.resources.cpuMillis: cannot be enforced on this host");

    const lenient = createResourceLimiter({ mode: "best-effort", noCgroup: true, prlimit: "/usr/bin/prlimit", euid: 0 });
    lenient.check({ cpuMillis: 100, pids: 8 });
    expect(lenient.prepare("tsk_5-1", { cpuMillis: 100, pids: 8 })).toBeUndefined();
    const mem = lenient.prepare("tsk_5-2", { memoryBytes: 64 * MiB, pids: 8 })!;
    expect(mem.argv(["/bin/true"])).toEqual(["/usr/bin/prlimit", `--as=${64 * MiB}`, "--", "/bin/true"]);
    expect(await mem.finish({ exitCode: 2, startedAt: 0, finishedAt: 1 })).toEqual({ limitNote: "ran under memory 64MiB (RLIMIT_AS)" });

    const nothing = createResourceLimiter({ mode: "strict", noCgroup: true, prlimit: null, euid: 1000 });
    expect(nothing.support).toEqual({ memory: "none", cpu: "none", pids: "none" });
  });

  test("formatBytes", () => {
    expect([64 * MiB, 1 << 30, 1536 * 1024, 1000].map(formatBytes)).toEqual(["64MiB", "1GiB", "1536KiB", "1000 bytes"]);
  });
});

/** What the agent started here detected (the same detection the tests below depend on). */
const here = createResourceLimiter({ mode: "strict" });

describe(`resource limits on this host (memory: ${here.support.memory}, cpu: ${here.support.cpu}, pids: ${here.support.pids})`, () => {
  test("/api/v1/info reports what is enforced", async () => {
    await using a = await startSecureAgent();
    const { body } = await a.json("GET", "/api/v1/info", undefined, a.bearer("vic"));
    expect(body.resourceLimits).toEqual({ mode: "strict", ...here.support, notes: here.notes });
    for (const r of ["memory", "cpu", "pids"] as const) {
      expect(body.capabilities.includes(`resource_limits.${r}`)).toBe(here.support[r] !== "none");
    }
  });

  test.skipIf(here.support.memory === "none")("a task over its memory limit fails and says so", async () => {
    await using a = await startSecureAgent();
    // Grows a shell variable to ~300 MB under a 64 MiB limit.
    const spec = bashSpec('x=$(head -c 300000000 /dev/zero | tr "\\0" a); echo "survived ${#x}"', { resources: { memoryBytes: 64 * MiB }, timeout: 60_000 });
    const r = await a.json("POST", "/api/v1/tasks?wait=true", { spec }, a.bearer("alice"));
    expect(r.status).toBe(200);
    const { task, runs, output } = r.body;
    expect(task.status.phase).toBe("failed");
    expect(output.stdout).toEqual([]);
    if (here.support.memory === "cgroup") {
      expect(task.status.error).toBe("killed: memory limit 64MiB exceeded");
    } else {
      // RLIMIT_AS: the allocation fails inside the program, which exits with an error of its own.
      expect(task.status.error).toBe(`exit code ${task.status.exitCode} (ran under memory 64MiB (RLIMIT_AS))`);
      expect(output.stderr.join("\n")).toContain("cannot allocate");
    }
    expect(runs[0].error).toBe(task.status.error);
  });

  test.skipIf(here.support.memory === "none")("a memory limit changes nothing about whether or how a command starts", async () => {
    await using a = await startSecureAgent();
    const dir = mkdtempSync(join(tmpdir(), "tasklane-limit-exec-"));
    try {
      const files: [string, string, number][] = [
        ["no-shebang", "echo run by sh\n", 0o755],
        ["bad-shebang", "#!/nonexistent/interp\necho hi\n", 0o755],
        ["not-executable", "echo hi\n", 0o644],
      ];
      for (const [name, content, mode] of files) writeFileSync(join(dir, name), content, { mode });
      const outcome = async (command: string, resources: object | undefined, cwd = dir) => {
        const spec = { slot: `exec-${crypto.randomUUID().slice(0, 8)}`, kind: { subprocess: { cwd, mode: { command: { command } } } }, ...(resources ? { resources } : {}) };
        const r = await a.json("POST", "/api/v1/tasks?wait=true", { spec }, a.bearer("alice"));
        expect(r.status).toBe(200);
        const { status } = r.body.task;
        return { phase: status.phase, error: status.error, stdout: r.body.output.stdout };
      };
      const limit = { memoryBytes: 256 * MiB };
      const refused: [string, string][] = [
        ["./no-shebang", `cannot start ${dir}/no-shebang: not an executable format`],
        ["./bad-shebang", `cannot start ${dir}/bad-shebang: its interpreter (#! line) or a library it needs was not found`],
        ["./not-executable", `permission denied: cannot execute ${dir}/not-executable`],
        [dir, `permission denied: cannot execute ${dir}`],
      ];
      for (const [command, error] of refused) {
        const plain = await outcome(command, undefined);
        expect(plain).toEqual({ phase: "failed", error, stdout: [] });
        // Before: the first ran under /bin/sh and succeeded; the others failed as "exit code 126/127 (ran under memory …)".
        expect(await outcome(command, limit)).toEqual(plain);
      }
      // Nothing ran, so nothing ran under a limit.
      const missing = join(dir, "missing-dir");
      expect(await outcome("/bin/true", limit, missing)).toEqual({ phase: "failed", error: `cwd ${missing} does not exist or is not a directory`, stdout: [] });
      // What can run still runs, under the limit.
      writeFileSync(join(dir, "good"), "#!/bin/sh\necho fine\n", { mode: 0o755 });
      expect(await outcome("./good", limit)).toEqual({ phase: "succeeded", error: undefined, stdout: ["fine"] });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test.skipIf(here.support.cpu !== "none")("cpuMillis cannot be enforced here: 400 naming the field; accepted with best-effort", async () => {
    await using a = await startSecureAgent();
    const spec = bashSpec("true", { resources: { cpuMillis: 250 } });
    const r = await a.json("POST", "/api/v1/tasks", { spec }, a.bearer("alice"));
    expect(r.status).toBe(400);
    expect(r.body.error).toBe("InvalidRequest");
    expect(r.body.message).toStartWith("spec.resources.cpuMillis: cannot be enforced on this host (");
    await using lenient = await startSecureAgent({ args: ["--resource-limits", "best-effort"] });
    const ok = await lenient.json("POST", "/api/v1/tasks?wait=true", { spec }, lenient.bearer("alice"));
    expect(ok.body.task.status.phase).toBe("succeeded");
  });

  test.skipIf(here.support.pids !== "none")("pids cannot be enforced here (e.g. root without a delegated cgroup): 400 naming the field", async () => {
    await using a = await startSecureAgent();
    const r = await a.json("POST", "/api/v1/tasks", { spec: bashSpec("true", { resources: { pids: 16 } }) }, a.bearer("alice"));
    expect(r.status).toBe(400);
    expect(r.body.message).toStartWith("spec.resources.pids: cannot be enforced on this host (");
    expect(r.body.message).toEndWith("start the agent with --resource-limits=best-effort to accept limits it cannot enforce");
  });

  test.skipIf(here.support.pids === "none")("a fork bomb under a pids limit is contained", async () => {
    await using a = await startSecureAgent();
    // Starts background sleepers until fork fails (dash exits on "Cannot fork"; a bash-like sh retries
    // until the timeout ends the run). Either way no more than the limit ever exist.
    const body = 'i=0\nwhile [ "$i" -lt 200 ]; do sleep 60 & i=$((i+1)); echo "started $i"; done\n';
    const spec = {
      slot: `bomb-${crypto.randomUUID().slice(0, 8)}`,
      kind: { subprocess: { mode: { script: { runtime: { custom: { command: "sh", flag: "-c" } }, body: Buffer.from(body).toString("base64") } } } },
      resources: { pids: 16 },
      timeout: 30_000,
      killGraceMs: 0,
    };
    const r = await a.json("POST", "/api/v1/tasks?wait=true", { spec }, a.bearer("alice"));
    expect(r.status).toBe(200);
    expect(["failed", "timeout"]).toContain(r.body.task.status.phase);
    const logs = await a.request("GET", `/api/v1/tasks/${r.body.task.metadata.id}/logs?follow=false`, undefined, a.bearer("alice"));
    let started = 0;
    for await (const e of readSse(logs)) {
      const m = e.event === "chunk" ? /^started (\d+)$/.exec(e.data.line) : null;
      if (m) started = Number(m[1]);
    }
    expect(started).toBeLessThanOrEqual(16);
  });
});

describe("secrets do not reach tasks", () => {
  test("the agent's tokens are stripped from a task's environment; the rest of the agent's environment is passed on", async () => {
    // The control plane is a closed port: the heartbeats fail, the agent serves on (its token needs one).
    const secrets = {
      TASKLANE_ADMIN_TOKEN: "admin-secret-1",
      TASKLANE_TOKEN: "client-secret-2",
      TASKLANE_CONTROL_PLANE_TOKEN: "cp-secret-3",
      TASKLANE_CONTROL_PLANE: "http://127.0.0.1:9/cp-secret-4",
    };
    await using a = await startSecureAgent({ env: { ...secrets, SITE_NAME: "edge-7" } });
    const adminHeaders = { authorization: `Bearer ${secrets.TASKLANE_ADMIN_TOKEN}` };
    const r = await a.json("POST", "/api/v1/tasks?wait=true", { spec: bashSpec("env | sort") }, adminHeaders);
    expect(r.status).toBe(200);
    const env = (r.body.output.stdout as string[]).join("\n");
    expect(env).toContain("SITE_NAME=edge-7");
    expect(env).toContain("PATH=");
    for (const [k, v] of Object.entries(secrets)) {
      expect(env).not.toContain(k);
      expect(env).not.toContain(v);
    }
    // The env admin authenticated as the principal "admin".
    expect(r.body.task.metadata.owner).toBe("admin");
  });
});
