/**
 * Start a real agent in-process on port 0 (REST + gRPC) for tests.
 * `await using a = await startAgent()` stops it at the end of the scope.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createAgent, type Agent, type AgentOptions } from "../../src/agent.ts";
import { parseConfig, type Config } from "../../src/config.ts";
import { silentLogger, type Logger } from "../../src/observability/logger.ts";

export interface TestAgent extends AsyncDisposable {
  agent: Agent;
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** `127.0.0.1:<port>` of the gRPC server. */
  grpcAddr: string;
  /** Data dir (a fresh temp dir unless `:memory:` was asked for). */
  dataDir: string;
  /** fetch relative to the agent; JSON-encodes `body` when it is not a string. */
  request(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Response>;
  /** Like `request` but parses the JSON answer. */
  json<T = any>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: T }>;
}

export interface StartOptions {
  /** Extra serve flags, e.g. ["--max-concurrent", "1"]. */
  args?: string[];
  /** Extra environment (the agent only sees PATH, HOME and these). */
  env?: Record<string, string>;
  /** Use a persistent SQLite store in a temp dir (default: `:memory:`). */
  persistent?: boolean;
  /** Reuse this data dir (implies persistent). */
  dataDir?: string;
  overrides?: Partial<Config>;
  logger?: Logger;
  random?: () => number;
  /** Clock for task timestamps (createdAt, updatedAt, run times); default Date.now. */
  clock?: () => number;
  /** Options of the SQLite store (test seams such as `syncWal`). */
  storeOptions?: AgentOptions["storeOptions"];
}

export async function startAgent(opts: StartOptions = {}): Promise<TestAgent> {
  const ownDir = opts.dataDir === undefined && opts.persistent ? mkdtempSync(join(tmpdir(), "tasklane-test-")) : undefined;
  const dataDir = opts.dataDir ?? ownDir ?? ":memory:";
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", ...opts.env };
  const config = parseConfig(
    ["--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--data-dir", dataDir, "--kill-grace-ms", "2000", ...(opts.args ?? [])],
    env,
  );
  const agent = createAgent(
    { ...config, ...opts.overrides },
    { logger: opts.logger ?? silentLogger, random: opts.random, clock: opts.clock, ...(opts.storeOptions ? { storeOptions: opts.storeOptions } : {}) },
  );
  await agent.start();
  const url = `http://127.0.0.1:${agent.httpPort}`;
  const request = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    fetch(url + path, {
      method,
      headers: body !== undefined ? { "content-type": "application/json", ...headers } : headers,
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
  return {
    agent,
    url,
    grpcAddr: `127.0.0.1:${agent.grpcPort}`,
    dataDir,
    request,
    async json(method, path, body, headers) {
      const res = await request(method, path, body, headers);
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    },
    async [Symbol.asyncDispose]() {
      try {
        await agent.stop();
      } finally {
        if (ownDir) rmSync(ownDir, { recursive: true, force: true });
      }
    },
  };
}

/** A minimal valid REST spec running `command args…` in `slot`. */
export function commandSpec(command: string, args: string[] = [], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    slot: (extra.slot as string | undefined) ?? `s-${crypto.randomUUID().slice(0, 8)}`,
    kind: { subprocess: { mode: { command: { command, args } } } },
    ...extra,
  };
}

/** A minimal valid REST spec running a bash script body. */
export function bashSpec(script: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    slot: (extra.slot as string | undefined) ?? `s-${crypto.randomUUID().slice(0, 8)}`,
    kind: { subprocess: { mode: { script: { runtime: "bash", body: Buffer.from(script).toString("base64") } } } },
    ...extra,
  };
}
