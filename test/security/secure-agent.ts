/**
 * A real agent with auth on: a temp `tasklane.toml` with four principals
 * (alice and bob: user, vic: viewer, root: admin), fresh random tokens, and
 * helpers to call REST and gRPC as one of them.
 */
import * as grpc from "@grpc/grpc-js";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateToken, hashToken } from "../../src/auth/hash-token.ts";
import { protoClient } from "../grpc/proto-client.ts";
import { startAgent, type StartOptions, type TestAgent } from "../helpers/start-agent.ts";

export const NAMES = ["alice", "bob", "vic", "root"] as const;
export type Name = (typeof NAMES)[number];
const ROLE: Record<Name, string> = { alice: "user", bob: "user", vic: "viewer", root: "admin" };

export interface SecureAgent extends TestAgent {
  tokens: Record<Name, string>;
  configFile: string;
  /** `{authorization: "Bearer …"}` of a principal. */
  bearer(name: Name): Record<string, string>;
  /** gRPC metadata with the principal's token (or none). */
  md(name?: Name | { token: string }): grpc.Metadata;
  /** solti.v1.SoltiApi and tasklane.v1.AgentService clients from the .proto files (closed on dispose). */
  solti: grpc.Client;
  agentSvc: grpc.Client;
  client(file: string, service: string): grpc.Client;
}

export interface SecureOptions extends StartOptions {
  /** Per-principal `rate_per_sec`/`burst` (default 1000/1000 so tests do not trip limits by accident). */
  rates?: Partial<Record<Name, { rate: number; burst: number }>>;
  /** `[unauthenticated]` budget (default 1000/1000). */
  unauthenticated?: { rate: number; burst: number };
}

/** Write a config file for the four principals into `dir`; returns its path and the tokens. */
export function writeConfig(dir: string, opts: SecureOptions = {}): { file: string; tokens: Record<Name, string> } {
  const tokens = Object.fromEntries(NAMES.map((n) => [n, generateToken()])) as Record<Name, string>;
  const anon = opts.unauthenticated ?? { rate: 1000, burst: 1000 };
  const lines = [`[unauthenticated]`, `rate_per_sec = ${anon.rate}`, `burst = ${anon.burst}`, ""];
  for (const n of NAMES) {
    const r = opts.rates?.[n] ?? { rate: 1000, burst: 1000 };
    lines.push("[[principals]]", `name = "${n}"`, `role = "${ROLE[n]}"`, `token_sha256 = "${hashToken(tokens[n])}"`);
    lines.push(`rate_per_sec = ${r.rate}`, `burst = ${r.burst}`, "");
  }
  const file = join(dir, "tasklane.toml");
  writeFileSync(file, lines.join("\n"));
  return { file, tokens };
}

/** Start the agent with auth on. */
export async function startSecureAgent(opts: SecureOptions = {}): Promise<SecureAgent> {
  const dir = mkdtempSync(join(tmpdir(), "tasklane-sec-"));
  const { file, tokens } = writeConfig(dir, opts);
  let a: TestAgent;
  try {
    a = await startAgent({ ...opts, args: ["--config", file, ...(opts.args ?? [])] });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const bearer = (name: Name) => ({ authorization: `Bearer ${tokens[name]}` });
  const clients: grpc.Client[] = [];
  const client = (f: string, service: string) => {
    const c = protoClient(f, service, a.agent.grpcPort);
    clients.push(c);
    return c;
  };
  return {
    ...a,
    tokens,
    configFile: file,
    bearer,
    md(who) {
      const md = new grpc.Metadata();
      if (typeof who === "string") md.set("authorization", `Bearer ${tokens[who]}`);
      else if (who) md.set("authorization", `Bearer ${who.token}`);
      return md;
    },
    solti: client("solti/v1/api.proto", "solti.v1.SoltiApi"),
    agentSvc: client("tasklane/v1/agent.proto", "tasklane.v1.AgentService"),
    client,
    async [Symbol.asyncDispose]() {
      for (const c of clients) c.close();
      await a[Symbol.asyncDispose]();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A proto3-shaped CreateSpec (as proto-loader expects it) running `command args…`. */
export function protoSpec(command: string, args: string[] = [], slot = `g-${crypto.randomUUID().slice(0, 8)}`): Record<string, unknown> {
  return {
    slot,
    kind: { subprocess: { command: { command, args }, failOnNonZero: true } },
    timeoutMs: "60000",
    restart: "RESTART_STRATEGY_NEVER",
    backoff: { jitter: "JITTER_STRATEGY_FULL", firstMs: "1000", maxMs: "10000", factor: 2.0 },
    admission: "ADMISSION_STRATEGY_QUEUE",
  };
}
