/**
 * exec-check.ts: the errno `execve` would fail with, found without running
 * the file — compared here with what the kernel actually answers (a plain
 * `Bun.spawn` of the same file), and used by `startRun` for a wrapped run so
 * that the wrapper's own `exec` cannot run or misreport what the agent's
 * spawn would refuse.
 */
import { describe, expect, test } from "bun:test";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { execErrno, shebangInterpreter, type ExecErrno } from "../../src/runner/exec-check.ts";
import { startRun } from "../../src/runner/run-process.ts";
import { createLineCollector } from "./line-collector.ts";
import { runSpec, runnerTempDir } from "./run-spec.ts";

const { path: dir, file } = runnerTempDir("exec-check-");
const ENV_BIN = Bun.which("env")!;
const SH = Bun.which("sh")!;
/** `binfmt_misc` with formats registered lets the kernel run files of other formats. */
const binfmtMisc = (() => {
  try {
    return readdirSync("/proc/sys/fs/binfmt_misc").some((n) => n !== "status" && n !== "register");
  } catch {
    return false;
  }
})();

function make(name: string, content: string | Uint8Array, mode = 0o755): string {
  const path = file(name);
  writeFileSync(path, content, { mode });
  return path;
}

/** The errno a real spawn of `path` fails with, or undefined when it ran. */
function kernelErrno(path: string): string | undefined {
  try {
    Bun.spawnSync({ cmd: [path], cwd: dir, stdout: "ignore", stderr: "ignore" });
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
}

describe("execErrno", () => {
  const notExecutable = make("plain", "echo hi\n", 0o644);
  const sub = join(dir, "a-directory");
  mkdirSync(sub);
  const cases: [string, string, ExecErrno | undefined][] = [
    ["a missing file", `${dir}/missing`, "ENOENT"],
    ["a directory", sub, "EACCES"],
    ["a file without execute permission", notExecutable, "EACCES"],
    ["a script without a #! line", make("no-shebang", "echo no shebang\n"), "ENOEXEC"],
    ["random bytes", make("garbage", new Uint8Array([1, 2, 3, 4, 5, 0, 9, 10, 11])), binfmtMisc ? undefined : "ENOEXEC"],
    ["an empty file", make("empty", ""), binfmtMisc ? undefined : "ENOEXEC"],
    ["a #! line naming a missing interpreter", make("bad-shebang", "#!/nonexistent/interp\necho hi\n"), "ENOENT"],
    ["a #! line with nothing after it", make("bare-shebang", "#!\necho hi\n"), "ENOEXEC"],
    ["a #! line naming a file without execute permission", make("noexec-interp", `#!${notExecutable}\n`), "EACCES"],
    ["a #! line ending in CR (the kernel keeps the CR)", make("crlf", `#!${SH}\r\necho hi\r\n`), "ENOENT"],
    ["a #! line with blanks and an argument", make("blanks", `#!  \t${SH} -e\necho hi\n`), undefined],
    ["a good script", make("good", `#!${SH}\necho hi\n`), undefined],
    ["an ELF program", Bun.which("true")!, undefined],
  ];
  // A script whose interpreter is a script whose interpreter is missing.
  const inner = make("inner", "#!/nonexistent/interp\n");
  cases.push(["a chain of #! lines ending at a missing interpreter", make("outer", `#!${inner}\n`), "ENOENT"]);

  for (const [what, path, errno] of cases) {
    test(`${what}: ${errno ?? "runs"}, as the kernel says`, () => {
      expect(execErrno(path)).toBe(errno);
      expect(kernelErrno(path)).toBe(errno);
    });
  }

  test("a relative path, and a relative #! interpreter, are taken from the cwd", () => {
    const good = make("rel-good", `#!${SH}\n`);
    expect(execErrno(`./${basename(good)}`, dir)).toBeUndefined();
    expect(execErrno(`./${basename(good)}`, "/")).toBe("ENOENT");
    const viaRelative = make("rel-interp", `#!./${basename(good)}\n`);
    expect(execErrno(viaRelative, dir)).toBeUndefined();
    expect(execErrno(viaRelative, "/")).toBe("ENOENT");
  });

  test("shebangInterpreter reads the #! line as Linux does", () => {
    const enc = (s: string) => new TextEncoder().encode(s);
    expect(shebangInterpreter(enc("#!/bin/sh\n"))).toBe("/bin/sh");
    expect(shebangInterpreter(enc("#! /usr/bin/env python3 -u\nprint()"))).toBe("/usr/bin/env");
    expect(shebangInterpreter(enc("#!/bin/bash"))).toBe("/bin/bash");
    expect(shebangInterpreter(enc("#!   \n"))).toBeUndefined();
  });
});

describe("startRun with checkExec (a command started through a wrapper)", () => {
  test("a script without #! fails as it would without the wrapper instead of running under /bin/sh", async () => {
    const script = make("wrapped-no-shebang", "echo ran by sh\n");
    // `env` stands for prlimit: its execvp runs such a file with /bin/sh.
    const plain = createLineCollector();
    const unchecked = await startRun(runSpec([ENV_BIN, script], plain)).result;
    expect(unchecked.exitCode).toBe(0);
    expect(plain.lines.stdout).toEqual(["ran by sh"]);

    const out = createLineCollector();
    const run = startRun(runSpec([ENV_BIN, script], out, { checkExec: script }));
    expect(run.process).toBeUndefined();
    expect((await run.result).spawnError).toBe(`cannot start ${script}: not an executable format`);
    expect(out.lines.stdout).toEqual([]);
    expect((await startRun(runSpec([script], createLineCollector())).result).spawnError).toBe(`cannot start ${script}: not an executable format`);
  });

  test("each exec failure reads as the agent's own spawn reports it", async () => {
    const noexec = make("wrapped-noexec", "echo hi\n", 0o644);
    const badShebang = make("wrapped-bad-shebang", "#!/nonexistent/interp\n");
    for (const path of [`${dir}/missing-tool`, noexec, badShebang, dir]) {
      const direct = (await startRun(runSpec([path], createLineCollector())).result).spawnError;
      const wrapped = (await startRun(runSpec([ENV_BIN, path], createLineCollector(), { checkExec: path })).result).spawnError;
      expect(direct).toBeString();
      expect(wrapped).toBe(direct);
    }
  });

  test("a command that can run is started through the wrapper", async () => {
    const good = make("wrapped-good", `#!${SH}\necho "args: $*"\n`);
    const out = createLineCollector();
    const r = await startRun(runSpec([ENV_BIN, good, "a", "b"], out, { checkExec: good })).result;
    expect(r.exitCode).toBe(0);
    expect(out.lines.stdout).toEqual(["args: a b"]);
  });
});
