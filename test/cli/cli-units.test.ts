/** In-process tests of the CLI's pure parts: flag parsing, SSE reading, formatting, exit codes, spec building. */
import { describe, expect, test } from "bun:test";
import { parseArgs } from "../../src/cli/args.ts";
import { createLogPrinter } from "../../src/cli/log-printer.ts";
import { createBufferOutput } from "../../src/cli/output.ts";
import { CliError } from "../../src/cli/cli-error.ts";
import { formatAge, formatDuration, formatTable, createStyle, colourWanted } from "../../src/cli/format.ts";
import { buildSpec } from "../../src/cli/spec-flags.ts";
import { readSse } from "../../src/cli/sse-reader.ts";
import { taskExitCode } from "../../src/cli/task-exit-code.ts";
import { SPEC_FLAGS } from "../../src/cli/spec-flags.ts";
import type { Task, TaskRun, TaskStatus } from "../../src/tasks/model.ts";
import { createApiClient, MAX_WAIT_CHUNK_MS, reasonOf } from "../../src/cli/api-client.ts";
import { execute } from "../../src/cli/cli.ts";
import { intFlag } from "../../src/cli/units.ts";
import { waitForTask } from "../../src/cli/wait-task.ts";
import { isTerminal, JITTERS, PHASES, WELL_KNOWN_RUNTIMES } from "../../src/cli/wire-values.ts";

function usageMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof CliError && err.kind === "usage") return err.message;
    throw err;
  }
  throw new Error("expected a usage error");
}

describe("parseArgs", () => {
  const specs = [
    { name: "follow", short: "f", kind: "boolean", help: "" },
    { name: "slot", kind: "string", help: "" },
    { name: "label", short: "l", kind: "list", help: "" },
  ] as const;

  test("long, short, inline values, repeatable lists, positionals and --", () => {
    const p = parseArgs(["a", "-f", "--slot=x", "--label", "k=v", "-l", "k2=v2", "b", "--", "--slot", "y"], specs);
    expect(p.positionals).toEqual(["a", "b"]);
    expect(p.rest).toEqual(["--slot", "y"]);
    expect(p.flags.bool("follow")).toBe(true);
    expect(p.flags.string("slot")).toBe("x");
    expect(p.flags.list("label")).toEqual(["k=v", "k2=v2"]);
  });

  test("stopAtPositional hands the rest to the command", () => {
    const p = parseArgs(["--slot", "s", "echo", "-n", "--slot", "hi"], specs, { stopAtPositional: true });
    expect(p.flags.string("slot")).toBe("s");
    expect(p.rest).toEqual(["echo", "-n", "--slot", "hi"]);
  });

  test("errors name the flag", () => {
    expect(usageMessage(() => parseArgs(["--nope"], specs, { command: "ls" }))).toBe('unknown flag --nope for "tasklane ls" (see tasklane ls --help)');
    expect(usageMessage(() => parseArgs(["--slot"], specs))).toBe("--slot: missing value");
    expect(usageMessage(() => parseArgs(["--follow=maybe"], specs))).toBe('--follow: must be true or false (or yes/no, 1/0), got "maybe"');
  });
});

describe("readSse", () => {
  function body(chunks: string[]): ReadableStream<Uint8Array> {
    const enc = new TextEncoder();
    return new ReadableStream({
      start(c) {
        for (const ch of chunks) c.enqueue(enc.encode(ch));
        c.close();
      },
    });
  }
  async function all(chunks: string[]) {
    const out = [];
    for await (const f of readSse(body(chunks))) out.push(f);
    return out;
  }

  test("frames split across chunks, CRLF, comments, multi-line data", async () => {
    expect(await all([": open\n\nid: 1\nev", "ent: chunk\r\ndata: {\"a\":1}\r", "\n\r\nid: 2\ndata: x\ndata: y\n\n: keep-alive\n\n"])).toEqual([
      { id: "1", event: "chunk", data: '{"a":1}' },
      { id: "2", event: "message", data: "x\ny" },
    ]);
  });

  test("a partial frame at the end is dropped", async () => {
    expect(await all(["data: a\n\ndata: b"])).toEqual([{ id: undefined, event: "message", data: "a" }]);
  });
});

describe("format", () => {
  test("durations and ages", () => {
    expect([250, 1500, 42_000, 150_000, 3_900_000, 183_600_000].map(formatDuration)).toEqual(["250ms", "1.5s", "42s", "2m30s", "1h5m", "2d3h"]);
    expect([5_000, 300_000, 7_200_000, 172_800_000].map(formatAge)).toEqual(["5s", "5m", "2h", "2d"]);
  });

  test("tables align on plain text even when cells are coloured", () => {
    const style = createStyle(true);
    const t = formatTable(["A", "B"], [["xx", "1"], ["y", "22"]], (col, text) => (col === 0 ? style.red(text) : text));
    expect(t.replace(/\x1b\[\d+m/g, "")).toBe("A    B\nxx   1\ny    22");
    expect(t).toContain("\x1b[31m");
  });

  test("colour only on a terminal without NO_COLOR", () => {
    expect(colourWanted(true, {})).toBe(true);
    expect(colourWanted(false, {})).toBe(false);
    expect(colourWanted(true, { NO_COLOR: "1" })).toBe(false);
    expect(createStyle(false).phase("failed")).toBe("failed");
  });
});

describe("taskExitCode", () => {
  const task = (status: TaskStatus) => ({ status }) as Task;
  test("mirrors how the last attempt ended", () => {
    expect(taskExitCode(task({ phase: "succeeded", attempt: 1, exitCode: 0 }))).toBe(0);
    expect(taskExitCode(task({ phase: "succeeded", attempt: 1, exitCode: 3 }))).toBe(3);
    expect(taskExitCode(task({ phase: "failed", attempt: 1, exitCode: 3 }))).toBe(3);
    expect(taskExitCode(task({ phase: "exhausted", attempt: 2, exitCode: 4 }))).toBe(4);
    expect(taskExitCode(task({ phase: "failed", attempt: 1, error: "killed by signal SIGKILL" }))).toBe(137);
    expect(taskExitCode(task({ phase: "failed", attempt: 1, error: "killed by signal SIGTERM" }))).toBe(143);
    expect(taskExitCode(task({ phase: "timeout", attempt: 1, error: "timed out after 5 ms" }))).toBe(124);
    expect(taskExitCode(task({ phase: "canceled", attempt: 1, error: "canceled" }))).toBe(1);
    // Canceled between attempts: the exit code of the attempt before is not how the task ended.
    expect(taskExitCode(task({ phase: "canceled", attempt: 1, exitCode: 7, error: "canceled" }))).toBe(1);
  });

  test("exhausted: the last attempt's exit code (also 0), 124 when it timed out, else its signal", () => {
    const run = (phase: TaskRun["phase"]): TaskRun => ({ attempt: 2, phase, startedAt: 1 });
    expect(taskExitCode(task({ phase: "exhausted", attempt: 2, exitCode: 0, error: "exhausted: 2 of 2 attempts used (last: succeeded)" }), run("succeeded"))).toBe(0);
    expect(taskExitCode(task({ phase: "exhausted", attempt: 2, error: "exhausted: 2 of 2 attempts used (last: timed out after 300 ms)" }), run("timeout"))).toBe(124);
    expect(taskExitCode(task({ phase: "exhausted", attempt: 2, error: "exhausted: 2 of 2 attempts used (last: killed by signal SIGKILL)" }), run("failed"))).toBe(137);
    expect(taskExitCode(task({ phase: "exhausted", attempt: 2, error: "exhausted: 2 of 2 attempts used (last: interrupted)" }))).toBe(1);
  });
});

describe("buildSpec", () => {
  const build = (argv: string[], env: Record<string, string> = {}) => {
    const p = parseArgs(argv, SPEC_FLAGS, { stopAtPositional: true });
    return buildSpec({ flags: p.flags, rest: p.rest, env, cwd: "/work", readStdin: async () => "echo hi", random: () => 0.5 });
  };

  test("the smallest spec: a derived slot and the command", async () => {
    expect(await build(["--", "/usr/bin/echo", "hi"])).toEqual({ slot: "echo-7fffff", kind: { subprocess: { mode: { command: { command: "/usr/bin/echo", args: ["hi"] } } } } });
  });

  test("backoff fills in defaults; relative cwd resolves; --env K copies from the environment", async () => {
    const spec = await build(["--backoff-first", "45s", "--cwd", "sub", "--env", "HOME", "--", "true"], { HOME: "/home/me" });
    expect(spec.backoff).toEqual({ jitter: "full", firstMs: 45_000, maxMs: 45_000, factor: 2 });
    expect(spec.kind.subprocess.cwd).toBe("/work/sub");
    expect(spec.kind.subprocess.env).toEqual([{ key: "HOME", value: "/home/me" }]);
  });

  test("scripts: runtime from the extension or --runtime, custom interpreters", async () => {
    const spec = await build(["--script", "-", "--runtime", "ruby", "--", "a"]);
    expect(spec.kind.subprocess.mode).toEqual({ script: { runtime: { custom: { command: "ruby", flag: "-e" } }, body: btoa("echo hi"), args: ["a"] } });
  });

  test("inconsistent flags are usage errors", async () => {
    await expect(build(["--restart-interval", "5s", "--", "true"])).rejects.toThrow("--restart-interval: only with --restart always");
    await expect(build(["--runtime", "bash", "--", "true"])).rejects.toThrow("--runtime: only with --script FILE");
    await expect(build(["--backoff-first", "10s", "--backoff-max", "1s", "--", "true"])).rejects.toThrow("--backoff-max: must be at least --backoff-first");
  });
});

describe("wire values", () => {
  test("the client's copies match the domain model", async () => {
    const model = await import("../../src/tasks/model.ts");
    expect([...PHASES]).toEqual([...model.PHASES]);
    expect(PHASES.filter(isTerminal)).toEqual(model.PHASES.filter(model.isTerminal));
    expect([...WELL_KNOWN_RUNTIMES]).toEqual([...model.WELL_KNOWN_RUNTIMES]);
    expect([...JITTERS]).toEqual([...model.JITTERS]);
  });
});

describe("log printer", () => {
  test("chunks to their stream, attempt markers and lagged notices to stderr; JSON lines carry the id", async () => {
    const out = createBufferOutput();
    const err = createBufferOutput();
    const p = createLogPrinter({ out, err, json: false, markers: "all" });
    await p.print({ id: 1, event: { type: "runStarted", attempt: 1, startedAt: 1000 } });
    await p.print({ id: 2, event: { type: "chunk", attempt: 1, stream: "stdout", seq: 0, ts: 1001, line: "a" } });
    await p.print({ id: 3, event: { type: "chunk", attempt: 1, stream: "stderr", seq: 0, ts: 1002, line: "b" } });
    await p.print({ id: 9, event: { type: "lagged", skipped: 5 } });
    await p.print({ id: 10, event: { type: "runFinished", attempt: 1, finishedAt: 2500 } });
    expect(out.text()).toBe("a\n");
    expect(err.text()).toBe(
      "tasklane: --- attempt 1 started ---\nb\ntasklane: 5 lines of output were not retained by the agent\ntasklane: --- attempt 1 ended without an exit code after 1.5s ---\n",
    );

    const jout = createBufferOutput();
    const jerr = createBufferOutput();
    const jp = createLogPrinter({ out: jout, err: jerr, json: true, markers: "none" });
    await jp.print({ id: 2, event: { type: "chunk", attempt: 1, stream: "stderr", seq: 0, ts: 1, line: "x" } });
    expect(JSON.parse(jout.text())).toEqual({ id: 2, type: "chunk", attempt: 1, stream: "stderr", seq: 0, ts: 1, line: "x" });
    // Lost output is never silent, not even in JSON mode.
    await jp.print({ id: 3, event: { type: "lagged", skipped: 1 } });
    expect(jerr.text()).toBe("tasklane: 1 line of output was not retained by the agent\n");
  });
});

describe("api client", () => {
  const task = (phase: TaskStatus["phase"]) => ({
    metadata: { id: "tsk_1", resourceVersion: 1, createdAt: 1, updatedAt: 1 },
    spec: { slot: "s", kind: { subprocess: { mode: { command: { command: "true", args: [] } }, env: [], failOnNonZero: true } }, timeout: 1, restart: { type: "never" }, backoff: {}, admission: "queue", labels: {} },
    status: { phase, attempt: 1 },
  });

  test("a wait asks for at most 60 s and lifts Bun's socket idle timeout past it", async () => {
    const calls: { url: string; timeout: unknown }[] = [];
    const api = createApiClient({
      server: "http://agent.test",
      fetch: async (url, init) => {
        calls.push({ url, timeout: init.timeout });
        return Response.json({ task: task(calls.length < 3 ? "running" : "succeeded") });
      },
    });
    const done = await waitForTask(api, "tsk_1", 10 * 60_000, new AbortController().signal);
    expect(done.status.phase).toBe("succeeded");
    expect(MAX_WAIT_CHUNK_MS).toBeLessThanOrEqual(60_000);
    // Bun's fetch drops a socket idle for 300 s; each request asks for less, and sets its own idle limit above the ask.
    expect(calls).toEqual([1, 2, 3].map(() => ({ url: "http://agent.test/api/v1/tasks/tsk_1/wait?timeoutMs=60000", timeout: 90_000 })));
  });

  test("ordinary requests carry a deadline; a fetch that never answers ends as 'did not answer'", async () => {
    const api = createApiClient({
      server: "http://agent.test",
      requestTimeoutMs: 20,
      fetch: (_url, init) => new Promise((_, reject) => init.signal?.addEventListener("abort", () => reject(init.signal?.reason))),
    });
    // Not `expect(…).rejects`: on a promise that never settles it hangs the test runner instead of timing out.
    const err = await api.list({}).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CliError);
    expect(err).toMatchObject({ kind: "unreachable", message: "the agent at http://agent.test did not answer within 20ms" });
  });

  test("reasons of fetch failures are short and never advise verbose: true", () => {
    const err = (code: string, message: string) => Object.assign(new TypeError(message), { code });
    expect(reasonOf(err("ECONNRESET", "ECONNRESET: The socket connection was closed unexpectedly. For more information, pass `verbose: true` in the second argument to fetch()"))).toBe("connection reset");
    expect(reasonOf(err("ECONNREFUSED", "ECONNREFUSED: Unable to connect. Is the computer able to access the url?"))).toBe("connection refused");
    expect(reasonOf(err("ENOTFOUND", "getaddrinfo ENOTFOUND x.invalid"))).toBe("host not found");
    expect(reasonOf(err("ESOMETHING", "ESOMETHING: A thing went wrong. For more information, pass `verbose: true` in the second argument to fetch()"))).toBe("A thing went wrong");
  });
});

describe("internal errors", () => {
  test("one line, no stack trace unless TASKLANE_DEBUG is set", async () => {
    const run = async (env: Record<string, string>) => {
      const err = createBufferOutput();
      const out = { ...createBufferOutput(), line: async () => Promise.reject(new TypeError("boom")) };
      const io = { out, err, env, cwd: "/", readStdin: async () => "", signal: new AbortController().signal, interruptedBy: () => undefined };
      return { code: await execute("hash-token", ["x"], io), stderr: err.text() };
    };
    expect(await run({})).toEqual({ code: 1, stderr: "tasklane: internal error: TypeError: boom (TASKLANE_DEBUG=1 shows where)\n" });
    const debug = await run({ TASKLANE_DEBUG: "1" });
    expect(debug.stderr).toStartWith("tasklane: internal error: TypeError: boom\nTypeError: boom\n    at ");
  });
});

describe("intFlag", () => {
  test("a whole number too large says so", () => {
    expect(usageMessage(() => intFlag("after", "99999999999999999999", 0))).toBe('--after: too large (at most 9007199254740991), got "99999999999999999999"');
    expect(usageMessage(() => intFlag("after", "1.5", 0))).toBe('--after: must be a whole number ≥ 0, got "1.5"');
    expect(usageMessage(() => intFlag("priority", "11", 0, 10))).toBe('--priority: must be a whole number 0..10, got "11"');
  });
});
