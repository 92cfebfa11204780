/**
 * The compiled executable under test: `$TASKLANE_BIN` when set (CI builds it
 * once), otherwise built here once per test process into a temp dir.
 */
import { afterAll } from "bun:test";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { readUntil } from "../helpers/process.ts";

let built: Promise<string> | undefined;
let builtDir: string | undefined;

/** Remove the executable built here (≈ 110 MiB), if any: test/setup.ts calls it after all tests. */
export function removeBuiltBinary(): void {
  if (builtDir !== undefined) rmSync(builtDir, { recursive: true, force: true });
  builtDir = undefined;
  built = undefined;
}

/** Path of the compiled binary, building it if needed. */
export function binaryPath(): Promise<string> {
  const fromEnv = process.env.TASKLANE_BIN;
  if (fromEnv) return Promise.resolve(resolve(fromEnv));
  built ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), "tasklane-bin-"));
    builtDir = dir;
    const out = join(dir, "tasklane");
    const root = resolve(import.meta.dir, "../..");
    const p = Bun.spawn(["bun", "build.ts", out], { cwd: root, stdout: "pipe", stderr: "pipe" });
    const [code, stderr] = await Promise.all([p.exited, new Response(p.stderr).text()]);
    if (code !== 0) throw new Error(`build failed: ${stderr}`);
    return out;
  })();
  return built;
}

export interface RunningBinary extends AsyncDisposable {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  url: string;
  grpcAddr: string;
  /** Everything written to stderr so far. */
  stderr(): string;
  /** SIGTERM and wait; resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number>;
}

/** Start `tasklane serve` on port 0 and wait for its "listening" line. */
export async function startBinary(opts: { args?: string[]; cwd?: string; env?: Record<string, string>; dataDir?: string } = {}): Promise<RunningBinary> {
  const bin = await binaryPath();
  const proc = Bun.spawn(
    [bin, "serve", "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--data-dir", opts.dataDir ?? ":memory:", "--kill-grace-ms", "2000", ...(opts.args ?? [])],
    {
      cwd: opts.cwd,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", ...opts.env },
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    },
  );
  let err = "";
  void (async () => {
    for await (const chunk of proc.stderr) err += new TextDecoder().decode(chunk);
  })();
  const listening = /tasklane listening http=([^ ]+) grpc=(\S+)/;
  const { text, ended } = await readUntil(proc.stdout, (out) => listening.test(out));
  if (ended) throw new Error(`agent exited before listening (code ${await proc.exited}): ${err}`);
  const match = listening.exec(text)!;
  const stop = async (signal: NodeJS.Signals = "SIGTERM") => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    return proc.exited;
  };
  return {
    proc,
    url: `http://${match[1]}`,
    grpcAddr: match[2]!,
    stderr: () => err,
    stop,
    async [Symbol.asyncDispose]() {
      await stop("SIGKILL");
      // A killed agent without a store leaves its script dir (a stopped one removes it).
      if (opts.dataDir === undefined) {
        for (const name of readdirSync(tmpdir())) {
          if (name.startsWith(`tasklane-scripts-${proc.pid}-`)) rmSync(join(tmpdir(), name), { recursive: true, force: true });
        }
      }
    },
  };
}

/** A temp dir maker for one test file: every dir it made is removed after the file's tests. */
export function tempDirs(prefix: string): () => string {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  return () => {
    const d = mkdtempSync(join(tmpdir(), prefix));
    dirs.push(d);
    return d;
  };
}

/** POST a task spec to a running binary; answers its id (the answer must be a 201). */
export async function submitTo(agent: RunningBinary, spec: Record<string, unknown>): Promise<string> {
  const res = await fetch(`${agent.url}/api/v1/tasks`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ spec }),
  });
  if (res.status !== 201) throw new Error(`submit answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { task_id: string }).task_id;
}
