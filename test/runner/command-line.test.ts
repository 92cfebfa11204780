import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createCommandResolver,
  interpreterFor,
  prepareArgv,
  removeScript,
} from "../../src/runner/command-line.ts";
import { startRun } from "../../src/runner/run-process.ts";
import type { ScriptMode, ScriptRuntime } from "../../src/tasks/model.ts";
import { createLineCollector } from "./line-collector.ts";

const tmp = realpathSync(mkdtempSync(join(tmpdir(), "command-line-test-")));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let seq = 0;
const taskId = () => `tsk_TEST${++seq}`;
const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");
const script = (runtime: ScriptRuntime, body: string, args: string[] = []): ScriptMode => ({
  script: { runtime, body: b64(body), args },
});
/** Node ≥ 20.19 / 22.7 runs a `.js` file with ES module syntax as a module (no `"type"` needed). */
function nodeDetectsModules(): boolean {
  const v = Bun.spawnSync(["node", "--version"]).stdout.toString().trim();
  const [major = 0, minor = 0] = v.replace(/^v/, "").split(".").map(Number);
  return major > 22 || (major === 22 && minor >= 7) || (major === 20 && minor >= 19);
}
const inheritedEnv = () =>
  Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined));

describe("createCommandResolver", () => {
  test("resolves names on PATH to absolute paths; paths with '/' as-is when they exist", () => {
    const r = createCommandResolver();
    expect(r.which("bash")).toBe(Bun.which("bash")!);
    expect(r.which("bash")).toBe(r.which("bash"));
    expect(r.which("/bin/sh")).toBe("/bin/sh");
    expect(r.which("/nonexistent/tool")).toBeUndefined();
    expect(r.which("definitely-not-a-command-xyz")).toBeUndefined();
  });

  test("a path found to exist is not checked again for a second; a missing one is checked every time", () => {
    let clock = 0;
    const r = createCommandResolver(() => clock);
    const file = join(tmp, "tool");
    expect(r.which(file)).toBeUndefined();
    Bun.spawnSync(["touch", file]);
    expect(r.which(file)).toBe(file); // a miss is not remembered
    rmSync(file);
    clock = 999;
    expect(r.which(file)).toBe(file); // within the second: taken as existing
    clock = 1000;
    expect(r.which(file)).toBeUndefined(); // checked again
  });
});

describe("the run's own cwd and PATH", () => {
  test("a relative command is the file in the run's cwd (as a shell there would find it), not in the agent's", () => {
    const r = createCommandResolver();
    const dir = mkdtempSync(join(tmp, "wd-"));
    Bun.spawnSync(["bash", "-c", 'printf "#!/bin/sh\necho ran\n" > run.sh && chmod +x run.sh'], { cwd: dir });
    expect(r.which("./run.sh", { cwd: dir })).toBe(join(dir, "run.sh"));
    expect(r.which("./run.sh")).toBeUndefined(); // not in the agent's own cwd
    expect(r.which("./run.sh", { cwd: tmp })).toBeUndefined();
  });

  test("a bare name is looked up on the run's PATH; the agent's PATH stays the default", () => {
    const r = createCommandResolver();
    const bin = mkdtempSync(join(tmp, "bin-"));
    Bun.spawnSync(["bash", "-c", 'printf "#!/bin/sh\necho mine\n" > mytool-xyz && chmod +x mytool-xyz'], { cwd: bin });
    expect(r.which("mytool-xyz")).toBeUndefined();
    expect(r.which("mytool-xyz", { path: `${bin}:/usr/bin:/bin` })).toBe(join(bin, "mytool-xyz"));
    expect(r.which("mytool-xyz", { path: "/usr/bin:/bin" })).toBeUndefined();
    // An interpreter shadowed on the run's PATH is the run's one.
    Bun.spawnSync(["bash", "-c", 'printf "#!/bin/sh\necho fake\n" > bash && chmod +x bash'], { cwd: bin });
    expect(r.which("bash", { path: `${bin}:/usr/bin:/bin` })).toBe(join(bin, "bash"));
    expect(r.which("bash")).toBe(Bun.which("bash")!);
  });

  test("prepareArgv passes the lookup context for commands and interpreters", async () => {
    const r = createCommandResolver();
    const dir = mkdtempSync(join(tmp, "wd-"));
    Bun.spawnSync(["bash", "-c", 'printf "#!/bin/sh\necho ran\n" > run.sh && chmod +x run.sh'], { cwd: dir });
    const prepared = await prepareArgv({ command: { command: "./run.sh", args: ["a"] } }, { taskId: taskId(), scriptDir: tmp, resolver: r, lookup: { cwd: dir } });
    expect(prepared).toEqual({ ok: true, argv: [join(dir, "run.sh"), "a"] });
  });
});

test("interpreterFor", () => {
  expect(interpreterFor("bash")).toBe("bash");
  expect(interpreterFor("python")).toBe("python3");
  expect(interpreterFor("node")).toBe("node");
  expect(interpreterFor({ custom: { command: "ruby", flag: "-e" } })).toBe("ruby");
});

describe("prepareArgv", () => {
  const resolver = createCommandResolver();
  const scriptDir = join(tmp, "scripts");

  test("command mode: resolved command and its args", async () => {
    expect(await prepareArgv({ command: { command: "bash", args: ["-c", "true"] } }, { taskId: taskId(), scriptDir, resolver })).toEqual({
      ok: true,
      argv: [Bun.which("bash")!, "-c", "true"],
    });
  });

  test("command not found: a clear error", async () => {
    expect(
      await prepareArgv({ command: { command: "definitely-not-a-command-xyz", args: [] } }, { taskId: taskId(), scriptDir, resolver }),
    ).toEqual({ ok: false, error: "command not found: definitely-not-a-command-xyz" });
  });

  test("a command name longer than a path may be is not found (the lookup throws for it), shown cut", async () => {
    const long = "a".repeat(5000);
    expect(await prepareArgv({ command: { command: long, args: [] } }, { taskId: taskId(), scriptDir, resolver })).toEqual({
      ok: false,
      error: `command not found: ${"a".repeat(80)}…`,
    });
  });

  test("missing interpreter: a clear error and no file written", async () => {
    const id = taskId();
    expect(
      await prepareArgv(script({ custom: { command: "no-such-interpreter-xyz", flag: "-e" } }, "x"), { taskId: id, scriptDir, resolver }),
    ).toEqual({ ok: false, error: "interpreter no-such-interpreter-xyz not found on PATH" });
    expect(existsSync(join(scriptDir, `${id}.script`))).toBe(false);
  });

  test("script file: private (0600 in a 0700 dir), rewritten when absent, removable", async () => {
    const id = taskId();
    const dir = join(tmp, "fresh-scripts");
    const body = "echo 'é €'\n";
    const prepared = await prepareArgv(script("bash", body, ["a b"]), { taskId: id, scriptDir: dir, resolver });
    const file = join(dir, `${id}.sh`);
    expect(prepared).toEqual({ ok: true, argv: [Bun.which("bash")!, file, "a b"], scriptPath: file });
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, "utf8")).toBe(body);

    // The file as an older agent named it goes too.
    const legacy = join(dir, `${id}.script`);
    writeFileSync(legacy, body);
    removeScript(dir, id, script("bash", body));
    expect(existsSync(file)).toBe(false);
    expect(existsSync(legacy)).toBe(false);
    removeScript(dir, id, script("bash", body)); // already gone: fine
    expect(await prepareArgv(script("bash", body), { taskId: id, scriptDir: dir, resolver })).toEqual({
      ok: true,
      argv: [Bun.which("bash")!, file],
      scriptPath: file,
    });
    expect(readFileSync(file, "utf8")).toBe(body);
  });

  test("custom runtime: file transport, the flag is not used", async () => {
    const id = taskId();
    const prepared = await prepareArgv(script({ custom: { command: "bash", flag: "-c" } }, "exit 0", ["x"]), {
      taskId: id,
      scriptDir,
      resolver,
    });
    expect(prepared).toEqual({ ok: true, argv: [Bun.which("bash")!, join(scriptDir, `${id}.script`), "x"], scriptPath: join(scriptDir, `${id}.script`) });
  });

  const runtimes: [ScriptRuntime, string, string][] = [
    ["bash", 'echo "bash $1"; echo "to stderr" >&2', "bash arg-1"],
    ["python", 'import sys\nprint("python", sys.argv[1])\nprint("to stderr", file=sys.stderr)', "python arg-1"],
    ["node", 'console.log("node", process.argv[2]); console.error("to stderr")', "node arg-1"],
    // CommonJS and ES module bodies alike: node tells them apart by syntax in a `.js` file.
    ["node", 'const os = require("node:os"); console.log("node cjs", process.argv[2], typeof os.platform()); console.error("to stderr")', "node cjs arg-1 string"],
    ...(nodeDetectsModules()
      ? ([["node", 'import os from "node:os";\nconsole.log("node esm", process.argv[2], typeof os.platform());\nconsole.error("to stderr")', "node esm arg-1 string"]] as [ScriptRuntime, string, string][])
      : []),
  ];
  for (const [runtime, body, expected] of runtimes) {
    test(`runs a ${runtime} script through prepareArgv + startRun (${expected})`, async () => {
      const prepared = await prepareArgv(script(runtime, body, ["arg-1"]), { taskId: taskId(), scriptDir, resolver });
      if (!prepared.ok) throw new Error(prepared.error);
      const out = createLineCollector();
      await using run = startRun({
        argv: prepared.argv,
        env: inheritedEnv(), // version-manager shims (pyenv) need their variables
        timeoutMs: 60_000,
        killGraceMs: 1_000,
        maxLineBytes: 16 * 1024,
        onLines: out.onLines,
      });
      const r = await run.result;
      expect(r).toEqual({ exitCode: 0, startedAt: r.startedAt, finishedAt: r.finishedAt });
      expect(out.lines).toEqual({ stdout: [expected], stderr: ["to stderr"] });
    });
  }
});
