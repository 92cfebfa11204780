/** Failure exit codes and messages, help, hash-token and completion — through the real binary. */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash } from "node:crypto";
import { startAgent, type TestAgent } from "../helpers/start-agent.ts";
import { execute } from "../../src/cli/cli.ts";
import { COMMANDS } from "../../src/cli/commands.ts";
import { createBufferOutput } from "../../src/cli/output.ts";
import { closedPort, tasklane } from "./cli-process.ts";

// Each case spawns a few CLI processes; on a loaded machine that takes a while (never sleeps).
setDefaultTimeout(20_000);

let agent: TestAgent;
let server: string;
beforeAll(async () => {
  agent = await startAgent({ args: ["--max-concurrent", "64"] });
  server = agent.url;
});
afterAll(async () => {
  await agent?.[Symbol.asyncDispose]();
});

describe("errors", () => {
  test.concurrent("unknown id: exit 1 with the API's message", async () => {
    const cmds = ["get", "runs", "logs", "cancel", "wait"];
    const results = await Promise.all(cmds.map((cmd) => tasklane([cmd, "tsk_nope"], { server })));
    expect(results.map((r, i) => ({ cmd: cmds[i], ...r }))).toEqual(
      cmds.map((cmd) => ({ cmd, exitCode: 1, stdout: "", stderr: "tasklane: task tsk_nope not found\n" })),
    );
  });

  test.concurrent("ids that look like URL syntax reach the task route, encoded", async () => {
    const ids = ["%2e", "%2E%2e", "a/b", "a?b#c", "..x"];
    const results = await Promise.all(ids.map((id) => tasklane(["get", id], { server })));
    expect(results).toEqual(ids.map((id) => ({ exitCode: 1, stdout: "", stderr: `tasklane: task ${id} not found\n` })));
  });

  test.concurrent("cancel of several unknown ids: each named once", async () => {
    const r = await tasklane(["cancel", "tsk_nope1", "tsk_nope2"], { server });
    expect(r).toEqual({ exitCode: 1, stdout: "", stderr: "tasklane: task tsk_nope1 not found\ntasklane: task tsk_nope2 not found\n" });
  });

  test.concurrent("validation failure from the agent: exit 1 with its message", async () => {
    const r = await tasklane(["submit", "--slot", "bad slot!", "--", "true"], { server });
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^tasklane: .*slot.*\n$/);
  });

  test.concurrent("agent unreachable: exit 3, message names the URL (flag and env)", async () => {
    const url = `http://127.0.0.1:${closedPort()}`;
    const viaEnv = await tasklane(["ls"], { server: url });
    expect(viaEnv).toEqual({ exitCode: 3, stdout: "", stderr: `tasklane: cannot reach the agent at ${url}: connection refused (set --server or TASKLANE_SERVER)\n` });
    const viaFlag = await tasklane(["run", "--server", url, "--", "true"]);
    expect(viaFlag.exitCode).toBe(3);
    expect(viaFlag.stderr).toContain(url);
  });

  test.concurrent("usage errors: exit 2, message names the flag or argument", async () => {
    const cases: [string[], string][] = [
      [["ls", "--bogus"], 'tasklane: unknown flag --bogus for "tasklane ls" (see tasklane ls --help)\n'],
      [["submit", "--timeout", "soon", "--", "true"], 'tasklane: --timeout: must be a duration like 30s, 500ms, 5m or 1h30m, got "soon"\n'],
      [["submit", "--timeout", "30", "--", "true"], 'tasklane: --timeout: needs a unit, e.g. 30s, 500ms, 5m or 1h30m, got "30"\n'],
      [["submit", "--restart", "sometimes", "--", "true"], 'tasklane: --restart: must be one of never, on-failure, always, got "sometimes"\n'],
      [["submit", "--priority", "11", "--", "true"], 'tasklane: --priority: must be a whole number 0..10, got "11"\n'],
      [["submit", "--env", "=x", "--", "true"], 'tasklane: --env: must be KEY=VALUE, got "=x"\n'],
      [["submit", "--memory", "lots", "--", "true"], 'tasklane: --memory: must be a size like 256MiB, 1G or 1048576, got "lots"\n'],
      [["submit", "--script", "/nonexistent/x.sh"], 'tasklane: --script: cannot read "/nonexistent/x.sh": no such file\n'],
      [["submit"], "tasklane: missing command: give -- CMD [ARGS…] or --script FILE\n"],
      [["submit", "--slot"], "tasklane: --slot: missing value (NAME)\n"],
      [["get"], "tasklane: missing task ID\n"],
      [["wait", "--timeout", "x", "tsk_x"], 'tasklane: --timeout: must be a duration like 30s, 500ms, 5m or 1h30m, got "x"\n'],
      [["ls", "--status", "done"], 'tasklane: --status: must be one of pending, running, succeeded, failed, timeout, canceled, exhausted, got "done"\n'],
      [["ls", "--server", "ftp://x"], 'tasklane: --server: must be an http:// or https:// URL, got "ftp://x"\n'],
      [["completion", "fish"], 'tasklane: unsupported shell "fish": give one of bash, zsh\n'],
      [["lss"], 'tasklane: unknown command "lss"; did you mean "ls"? (see tasklane help)\n'],
      [["events", "--after", "99999999999999999999"], 'tasklane: --after: too large (at most 9007199254740991), got "99999999999999999999"\n'],
      [["logs", "--after", "99999999999999999999", "tsk_x"], 'tasklane: --after: too large (at most 9007199254740991), got "99999999999999999999"\n'],
      [["logs", "--after", "-1", "tsk_x"], 'tasklane: --after: must be a whole number ≥ 0, got "-1"\n'],
    ];
    const results = await Promise.all(cases.map(([args]) => tasklane(args, { server })));
    expect(results.map((r, i) => ({ args: cases[i]![0], ...r }))).toEqual(cases.map(([args, stderr]) => ({ args, exitCode: 2, stdout: "", stderr })));
  });

  test.concurrent("--token / TASKLANE_TOKEN are sent as a bearer token", async () => {
    await using secured = await startAgent({ env: { TASKLANE_ADMIN_TOKEN: "s3cret" } });
    const server = secured.url;
    const [none, flag, env, wrong] = await Promise.all([
      tasklane(["ls", "--json"], { server }),
      tasklane(["ls", "--json", "--token", "s3cret"], { server }),
      tasklane(["ls", "--json"], { server, env: { TASKLANE_TOKEN: "s3cret" } }),
      tasklane(["ls", "--json", "--token", "nope"], { server }),
    ]);
    expect(none).toEqual({ exitCode: 1, stdout: "", stderr: "tasklane: missing bearer token: send Authorization: Bearer <token> (set --token or TASKLANE_TOKEN)\n" });
    expect(flag).toEqual({ exitCode: 0, stdout: `${JSON.stringify({ tasks: [], total: 0 })}\n`, stderr: "" });
    expect(env).toEqual(flag);
    expect(wrong.exitCode).toBe(1);
    expect(wrong.stderr).toStartWith("tasklane: ");
  });

});

describe("help", () => {
  test.concurrent("every command has --help with usage and an example (in-process dispatch)", async () => {
    for (const c of COMMANDS) {
      const out = createBufferOutput();
      const err = createBufferOutput();
      const io = { out, err, env: {}, cwd: "/", readStdin: async () => "", signal: new AbortController().signal, interruptedBy: () => undefined };
      expect({ cmd: c.name, code: await execute(c.name, ["--help"], io), stderr: err.text() }).toEqual({ cmd: c.name, code: 0, stderr: "" });
      expect(out.text()).toContain(`Usage: tasklane ${c.name}`);
      expect(out.text()).toMatch(/\nExamples?:\n {2}.*tasklane /);
    }
  });

  test.concurrent("global flags without a command, or with a flag that may not come first (in-process dispatch)", async () => {
    const run = async (args: string[]) => {
      const err = createBufferOutput();
      const io = { out: createBufferOutput(), err, env: {}, cwd: "/", readStdin: async () => "", signal: new AbortController().signal, interruptedBy: () => undefined };
      return { code: await execute("", args, io), stderr: err.text() };
    };
    expect(await run(["--json", "--bogus", "ls"])).toEqual({
      code: 2,
      stderr: 'tasklane: unknown flag "--bogus" before the command: only --server, --token and --json may come first (see tasklane help)\n',
    });
    expect(await run(["--server", "http://h:8080"])).toEqual({ code: 2, stderr: "tasklane: missing command after the global flags (see tasklane help)\n" });
    expect(await run(["--json", "--token"])).toEqual({ code: 2, stderr: "tasklane: --token: missing value (TOKEN)\n" });
  });

  test.concurrent("help lists the commands; help CMD equals CMD --help", async () => {
    const all = await tasklane(["help"]);
    expect(all.exitCode).toBe(0);
    for (const c of COMMANDS) expect(all.stdout).toContain(`  ${c.name}`);
    const [a, b] = await Promise.all([tasklane(["help", "run"]), tasklane(["run", "--help"])]);
    expect(a).toEqual(b);
    expect(a.stdout).toContain("128+signal");
  });
});

describe("hash-token", () => {
  const hex = (s: string) => createHash("sha256").update(s).digest("hex");

  test.concurrent("from the argument", async () => {
    expect(await tasklane(["hash-token", "s3cret-token"])).toEqual({ exitCode: 0, stdout: `${hex("s3cret-token")}\n`, stderr: "" });
  });

  test.concurrent("from stdin, ignoring whitespace around it as the CLI's --token and the agent do; --json", async () => {
    expect(await tasklane(["hash-token"], { stdin: "s3cret-token\n" })).toEqual({ exitCode: 0, stdout: `${hex("s3cret-token")}\n`, stderr: "" });
    expect(await tasklane(["hash-token"], { stdin: " s3cret-token \r\n\n" })).toEqual({ exitCode: 0, stdout: `${hex("s3cret-token")}\n`, stderr: "" });
    const j = await tasklane(["hash-token", "--json"], { stdin: "abc" });
    expect(JSON.parse(j.stdout)).toEqual({ sha256: hex("abc") });
  });

  test.concurrent("an empty token is a usage error", async () => {
    expect(await tasklane(["hash-token"], { stdin: "" })).toEqual({ exitCode: 2, stdout: "", stderr: "tasklane: empty token: give TOKEN or pipe it on stdin\n" });
    expect((await tasklane(["hash-token"], { stdin: " \n" })).exitCode).toBe(2);
  });

  test.concurrent("a token no client sends as given is refused: control characters, non-ASCII, bytes that are not UTF-8", async () => {
    const cases: [string | Uint8Array, string][] = [
      ["x\u0001y\n", "must not contain line breaks or other control characters"],
      ["tök\n", "must contain only printable ASCII characters"],
      [Uint8Array.of(0x61, 0xc3, 0x28, 0x62, 0x0a), "must contain only printable ASCII characters"],
    ];
    for (const [stdin, problem] of cases) {
      expect(await tasklane(["hash-token"], { stdin })).toEqual({
        exitCode: 2,
        stdout: "",
        stderr: `tasklane: the token ${problem}: no Authorization: Bearer <token> header sends it as given\n`,
      });
    }
  });

  test.concurrent("a token with whitespace inside is refused: no bearer header could carry it", async () => {
    const r = await tasklane(["hash-token"], { stdin: "two words\n" });
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("contains whitespace");
  });
});

describe("completion", () => {
  for (const shell of ["bash", "zsh"]) {
    test.concurrent(`${shell}: non-empty and names every subcommand and some flags`, async () => {
      const r = await tasklane(["completion", shell]);
      expect(r.exitCode).toBe(0);
      expect(r.stderr).toBe("");
      for (const c of COMMANDS) expect(r.stdout).toContain(c.name);
      for (const word of ["--restart", "on-failure", "--follow", "--status"]) expect(r.stdout).toContain(word);
    });
  }

  test.concurrent("the bash script parses and completes subcommands", async () => {
    const script = (await tasklane(["completion", "bash"])).stdout;
    const probe = `${script}\nCOMP_WORDS=(tasklane l); COMP_CWORD=1; _tasklane; echo "\${COMPREPLY[@]}"\nCOMP_WORDS=(tasklane submit --restart o); COMP_CWORD=3; _tasklane; echo "\${COMPREPLY[@]}"\n`;
    const proc = Bun.spawn(["bash", "--norc", "-c", probe], { stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    expect({ out, err, code }).toEqual({ out: "ls logs\non-failure\n", err: "", code: 0 });
  });
});
