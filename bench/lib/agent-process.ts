/**
 * The compiled tasklane agent as the benchmarks run it: ports picked by the
 * agent (port 0), persistence ON in a temp data dir (removed on stop unless
 * the caller passed its own).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, type ServerProcess } from "./server-process.ts";

export interface AgentProcess extends AsyncDisposable {
  readonly server: ServerProcess;
  readonly pid: number;
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  /** `127.0.0.1:PORT` */
  readonly grpcAddr: string;
  readonly dataDir: string;
  stop(): Promise<number>;
}

export interface AgentOptions {
  bin: string;
  /** Existing data dir to use (kept on stop); default: a fresh temp dir (removed on stop). */
  dataDir?: string;
  /** Extra `serve` flags. */
  args?: string[];
}

/** Start `tasklane serve` and wait for its "listening" line. */
export async function startAgent(opts: AgentOptions): Promise<AgentProcess> {
  const owned = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), "tasklane-bench-data-"));
  // BENCH_PROFILE_DIR=dir: run the agent from source under `bun --cpu-prof` instead (profiles land in dir).
  const profileDir = process.env.BENCH_PROFILE_DIR;
  const exe = profileDir ? [process.execPath, "--cpu-prof", `--cpu-prof-dir=${profileDir}`, join(import.meta.dir, "../../src/main.ts")] : [opts.bin];
  const server = await startServer({
    argv: [...exe, "serve", "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--data-dir", dataDir, ...(opts.args ?? [])],
    announce: /tasklane listening http=(\S+) grpc=(\S+)/,
  });
  const stop = async () => {
    const code = await server.stop();
    if (owned) rmSync(dataDir, { recursive: true, force: true });
    return code;
  };
  return {
    server,
    pid: server.pid,
    url: `http://${server.match[1]}`,
    grpcAddr: server.match[2] as string,
    dataDir,
    stop,
    async [Symbol.asyncDispose]() {
      await stop();
    },
  };
}
