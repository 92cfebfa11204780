/**
 * REST-shaped specs for the contract scenarios. Every spec spells out what
 * the proto cannot leave absent (timeout, restart, admission, failOnNonZero),
 * so the same spec means the same thing over REST and over gRPC.
 */
import type { TaskSpec } from "../../src/tasks/model.ts";
import { createGrpcClient } from "./grpc-client.ts";
import { createRestClient } from "./rest-client.ts";
import type { ClientFactory } from "./client.ts";

/**
 * The transports every scenario runs over, for `describe.each`: REST, gRPC,
 * and REST again with submits posted as proto3 JSON (the same route accepts
 * the proto shape, CONTRACT §2), which must behave exactly like gRPC.
 */
export const TRANSPORTS: [string, ClientFactory][] = [
  ["rest", createRestClient],
  ["grpc", createGrpcClient],
  ["rest+proto3-json", (agent) => createRestClient(agent, { protoJson: true })],
];

type Json = Record<string, any>;

/** A fresh slot name (tests share one agent, so slots scope their queries). */
export const uniqueSlot = (prefix = "c"): string => `${prefix}-${crypto.randomUUID().slice(0, 8)}`;

export const base64 = (text: string): string => Buffer.from(text).toString("base64");

export const commandMode = (command: string, args: string[] = []) => ({ command: { command, args } });
export const scriptMode = (runtime: "bash" | "python" | "node", body: string, args: string[] = []) => ({
  script: { runtime, body: base64(body), args },
});

/** A complete spec around `mode`; `extra` overrides top-level fields. */
export function specOf(mode: Json, extra: Json = {}): Json {
  return {
    slot: uniqueSlot(),
    kind: { subprocess: { mode, env: [], failOnNonZero: true } },
    timeout: 30_000,
    restart: { type: "never" },
    admission: "queue",
    ...extra,
  };
}

export const bashSpec = (body: string, extra: Json = {}): Json => specOf(scriptMode("bash", body), extra);

/** Backoff that retries at once (no jitter, 1 ms), for retry scenarios. */
export const FAST_BACKOFF = { jitter: "none", firstMs: 1, maxMs: 1, factor: 1 } as const;

/** The spec as the agent stores it: defaults filled in for what `specOf` leaves out. */
export function normalized(spec: Json): TaskSpec {
  const sp = spec.kind.subprocess;
  const mode = sp.mode.command
    ? { command: { command: sp.mode.command.command, args: sp.mode.command.args ?? [] } }
    : { script: { ...sp.mode.script, args: sp.mode.script.args ?? [] } };
  return {
    ...spec,
    kind: { subprocess: { ...sp, mode, env: sp.env ?? [], failOnNonZero: sp.failOnNonZero ?? true } },
    backoff: spec.backoff ?? { jitter: "full", firstMs: 1000, maxMs: 30_000, factor: 2 },
    labels: spec.labels ?? {},
  } as TaskSpec;
}

/**
 * Fill in what a spec built by the REST-only helpers (e.g. `blockSpec`) leaves
 * out and the proto cannot leave absent: timeout, restart, admission and
 * failOnNonZero (REST defaults, spelled out).
 */
export function completeSpec(spec: Json): Json {
  const sp = spec.kind.subprocess;
  return {
    timeout: 30_000,
    restart: { type: "never" },
    admission: "queue",
    ...spec,
    kind: { ...spec.kind, subprocess: { env: [], failOnNonZero: true, ...sp } },
  };
}
