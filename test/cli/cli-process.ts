/**
 * Run the real CLI (`bun src/main.ts <args>`) as a subprocess, the way a
 * user does: `tasklane()` collects stdout + stderr + exit code together;
 * `spawnTasklane()` keeps the process live for streaming and signal tests.
 */
import { join } from "node:path";

const MAIN = join(import.meta.dir, "../../src/main.ts");

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** TASKLANE_SERVER (omit to leave it unset). */
  server?: string;
  env?: Record<string, string>;
  stdin?: string | Uint8Array;
}

function cliEnv(opts: CliOptions): Record<string, string> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root" };
  if (opts.server !== undefined) env.TASKLANE_SERVER = opts.server;
  return { ...env, ...opts.env };
}

/** Run `tasklane …args` to completion. */
export async function tasklane(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  const proc = Bun.spawn([process.execPath, MAIN, ...args], {
    env: cliEnv(opts),
    stdin: opts.stdin === undefined ? "ignore" : typeof opts.stdin === "string" ? new TextEncoder().encode(opts.stdin) : opts.stdin,
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { exitCode, stdout, stderr };
}

/** Text of a stream as it grows, with a way to wait for what you expect. */
export interface GrowingText {
  text(): string;
  /** Resolve once `pred(text)` holds; reject if the stream ends first. */
  until(pred: (text: string) => boolean): Promise<string>;
  /** Resolves with the whole text once the stream ends. */
  done: Promise<string>;
}

function collect(stream: ReadableStream<Uint8Array>): GrowingText {
  let buf = "";
  let ended = false;
  const waiters = new Set<() => void>();
  const decoder = new TextDecoder();
  const done = (async () => {
    for await (const chunk of stream) {
      buf += decoder.decode(chunk, { stream: true });
      for (const w of waiters) w();
    }
    ended = true;
    for (const w of waiters) w();
    return buf;
  })();
  return {
    text: () => buf,
    done,
    until(pred) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (pred(buf)) {
            waiters.delete(check);
            resolve(buf);
          } else if (ended) {
            waiters.delete(check);
            reject(new Error(`stream ended before the expected text; got:\n${buf}`));
          }
        };
        waiters.add(check);
        check();
      });
    },
  };
}

/** A CLI process still running. */
export interface LiveCli extends AsyncDisposable {
  proc: Bun.Subprocess<"ignore", "pipe", "pipe">;
  stdout: GrowingText;
  stderr: GrowingText;
  /** Everything, once the process exited. */
  result(): Promise<CliResult>;
}

/** Start `tasklane …args` and return at once. Disposing kills it if still running. */
export function spawnTasklane(args: string[], opts: CliOptions = {}): LiveCli {
  const proc = Bun.spawn([process.execPath, MAIN, ...args], { env: cliEnv(opts), stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const stdout = collect(proc.stdout);
  const stderr = collect(proc.stderr);
  const result = async () => {
    const [out, err, exitCode] = await Promise.all([stdout.done, stderr.done, proc.exited]);
    return { exitCode, stdout: out, stderr: err };
  };
  return {
    proc,
    stdout,
    stderr,
    result,
    async [Symbol.asyncDispose]() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
      await proc.exited;
    },
  };
}

/** A TCP port on 127.0.0.1 with nothing listening on it. */
export function closedPort(): number {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = server.port;
  server.stop(true);
  return port;
}
