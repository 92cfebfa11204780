/**
 * Start a compiled server (tasklane, or a baseline), wait for the line on
 * stdout that announces its ports, and stop it again. Stdout is drained for
 * the process's whole life; stderr goes to a file (the agent logs one line
 * per task transition, and a pipe nobody reads would stall it).
 */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";

export interface ServerProcess extends AsyncDisposable {
  readonly proc: Subprocess<"ignore", "pipe", number>;
  readonly pid: number;
  /** Capture groups of the announcement regex. */
  readonly match: RegExpExecArray;
  /** Milliseconds from spawn to the announcement line. */
  readonly announcedMs: number;
  /** The captured stderr so far (from its file). */
  stderr(): string;
  /** SIGTERM (or `signal`) and wait for the exit; resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number>;
}

export interface StartOptions {
  argv: string[];
  /** Matched against the accumulated stdout. */
  announce: RegExp;
  env?: Record<string, string>;
  /** Give up after this long (default 20 s). */
  timeoutMs?: number;
}

/** Spawn `argv` and resolve once stdout matches `announce`. */
export async function startServer(opts: StartOptions): Promise<ServerProcess> {
  const logDir = mkdtempSync(join(tmpdir(), "tasklane-bench-log-"));
  const logPath = join(logDir, "stderr.log");
  const fd = openSync(logPath, "a");
  const t0 = performance.now();
  const proc = Bun.spawn(opts.argv, {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", ...opts.env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: fd,
  });
  const stderr = () => {
    try {
      return readFileSync(logPath, "utf8");
    } catch {
      return "";
    }
  };
  const reader = proc.stdout.getReader();
  const decoder = new TextDecoder();
  let out = "";
  let match: RegExpExecArray | null = null;
  const deadline = setTimeout(() => proc.kill("SIGKILL"), opts.timeoutMs ?? 20_000);
  try {
    while (!match) {
      const { done, value } = await reader.read();
      if (done) throw new Error(`${opts.argv[0]} exited before announcing (code ${await proc.exited}): ${stderr().slice(-2000)}`);
      out += decoder.decode(value, { stream: true });
      match = opts.announce.exec(out);
    }
  } finally {
    clearTimeout(deadline);
  }
  const announcedMs = performance.now() - t0;
  // Keep draining stdout so the server never blocks on it.
  void (async () => {
    try {
      for (;;) if ((await reader.read()).done) break;
    } catch {
      // process gone
    }
  })();
  const stop = async (signal: NodeJS.Signals = "SIGTERM") => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    const kill = setTimeout(() => proc.kill("SIGKILL"), 10_000);
    const code = await proc.exited;
    clearTimeout(kill);
    closeSync(fd);
    rmSync(logDir, { recursive: true, force: true });
    return code;
  };
  return {
    proc,
    pid: proc.pid,
    match,
    announcedMs,
    stderr,
    stop,
    async [Symbol.asyncDispose]() {
      await stop();
    },
  };
}
