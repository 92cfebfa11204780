/**
 * Contract suite, validation: every class of invalid spec is `InvalidRequest`
 * over both transports, stores nothing, and — where the input means the same
 * thing over both — carries the very same message (the one REST gives).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { startAgent, type TestAgent } from "../helpers/start-agent.ts";
import { failure, type ContractClient } from "./client.ts";
import { base64, bashSpec, commandMode, specOf, TRANSPORTS } from "./specs.ts";

// Real processes and servers: allow more than the 5 s default when run on its own.
setDefaultTimeout(30_000);

type Json = Record<string, any>;

let agent: TestAgent;
beforeAll(async () => {
  agent = await startAgent();
});
afterAll(async () => {
  await agent?.[Symbol.asyncDispose]();
});

/** Apply `change` to a fresh valid spec. */
const bad = (change: (spec: Json) => void): Json => {
  const spec = bashSpec("true");
  change(spec);
  return spec;
};
const sub = (spec: Json) => spec.kind.subprocess;

/**
 * Inputs that mean the same over REST and gRPC: same message, spelled out —
 * the field named as the proto names it over gRPC and proto3 JSON where the
 * two shapes differ (the fourth element).
 */
const SAME: [string, Json, string, string?][] = [
  ["bad slot (space)", bad((s) => (s.slot = "bad slot")), 'spec.slot: must be 1..64 characters of [A-Za-z0-9._-], got "bad slot"'],
  ["bad slot (..)", bad((s) => (s.slot = "..")), 'spec.slot: must not be "." or "..", got ".."'],
  ["bad slot (65 bytes)", bad((s) => (s.slot = "x".repeat(65))), `spec.slot: must be 1..64 characters of [A-Za-z0-9._-], got "${"x".repeat(65)}"`],
  ["empty slot", bad((s) => (s.slot = "")), 'spec.slot: must be 1..64 characters of [A-Za-z0-9._-], got ""'],
  ["empty command", specOf(commandMode("   ")), 'spec.kind.subprocess.mode.command.command: must not be empty or blank, got "   "', 'spec.kind.subprocess.command.command: must not be empty or blank, got "   "'],
  [
    "bad base64",
    bad((s) => (sub(s).mode.script.body = "***")),
    'spec.kind.subprocess.mode.script.body: must be standard base64 (A-Z a-z 0-9 + /, "=" padding, no whitespace); invalid character "*" at offset 0, got "***"',
    'spec.kind.subprocess.script.body: must be standard base64 (A-Z a-z 0-9 + /, "=" padding, no whitespace); invalid character "*" at offset 0, got "***"',
  ],
  ["body not UTF-8", bad((s) => (sub(s).mode.script.body = Buffer.from([0xff, 0xfe]).toString("base64"))), 'spec.kind.subprocess.mode.script.body: decoded script must be valid UTF-8, got "//4="', 'spec.kind.subprocess.script.body: decoded script must be valid UTF-8, got "//4="'],
  ["custom runtime without command", bad((s) => (sub(s).mode.script.runtime = { custom: { command: "", flag: "-e" } })), 'spec.kind.subprocess.mode.script.runtime.custom.command: must not be empty or blank, got ""', 'spec.kind.subprocess.script.custom.command: must not be empty or blank, got ""'],
  ["env key with =", bad((s) => (sub(s).env = [{ key: "A=B", value: "x" }])), 'spec.kind.subprocess.env[0].key: must not contain "=", got "A=B"'],
  ["relative cwd", bad((s) => (sub(s).cwd = "relative/dir")), 'spec.kind.subprocess.cwd: must be an absolute path, got "relative/dir"'],
  ["backoff maxMs < firstMs", bad((s) => (s.backoff = { jitter: "full", firstMs: 100, maxMs: 10, factor: 2 })), "spec.backoff.maxMs: must be ≥ backoff.firstMs (100 ms), got 10"],
  ["backoff factor < 1", bad((s) => (s.backoff = { jitter: "full", firstMs: 100, maxMs: 1000, factor: 0.5 })), "spec.backoff.factor: must be a finite number ≥ 1, got 0.5"],
  ["backoff firstMs 0", bad((s) => (s.backoff = { jitter: "full", firstMs: 0, maxMs: 1000, factor: 2 })), "spec.backoff.firstMs: must be an integer > 0 and ≤ 604800000 ms, got 0"],
  ["timeout 0", bad((s) => (s.timeout = 0)), "spec.timeout: must be an integer > 0 and ≤ 604800000 ms, got 0", "spec.timeoutMs: must be an integer > 0 and ≤ 604800000 ms, got 0"],
  ["timeout over 7 days", bad((s) => (s.timeout = 604_800_001)), "spec.timeout: must be an integer > 0 and ≤ 604800000 ms, got 604800001", "spec.timeoutMs: must be an integer > 0 and ≤ 604800000 ms, got 604800001"],
  ["maxAttempts 0", bad((s) => (s.maxAttempts = 0)), "spec.maxAttempts: must be an integer ≥ 1 and ≤ 4294967295, got 0"],
  ["priority 11", bad((s) => (s.priority = 11)), "spec.priority: must be an integer ≥ 0 and ≤ 10, got 11"],
  ["killGraceMs over 10 min", bad((s) => (s.killGraceMs = 600_001)), "spec.killGraceMs: must be an integer ≥ 0 and ≤ 600000 ms, got 600001"],
  ["bad label key", bad((s) => (s.labels = { "bad key": "v" })), 'spec.labels["bad key"]: key must be 1..63 characters of [A-Za-z0-9._/-], got "bad key"'],
];

/**
 * Inputs REST and gRPC spell differently (an unknown REST enum string is
 * `*_UNSPECIFIED` over gRPC; a missing oneof): both InvalidRequest, each
 * message naming the field.
 */
const SAME_FIELD: [string, Json, string][] = [
  ["unknown admission", bad((s) => (s.admission = "bogus")), "spec.admission"],
  ["unknown restart", bad((s) => (s.restart = { type: "bogus" })), "spec.restart"],
  ["unknown jitter", bad((s) => (s.backoff = { jitter: "bogus", firstMs: 1, maxMs: 1, factor: 1 })), "spec.backoff.jitter"],
  ["unknown script runtime", bad((s) => (sub(s).mode.script.runtime = "ruby")), "spec.kind.subprocess."],
  ["missing mode", bad((s) => (sub(s).mode = {})), "spec.kind.subprocess.mode"],
  ["restart interval without always", bad((s) => (s.restart = { type: "never", intervalMs: 5 })), "spec.restart"],
];

async function restMessage(spec: Json): Promise<string> {
  const r = await agent.json("POST", "/api/v1/tasks", { spec });
  expect(r.status).toBe(400);
  expect(r.body.error).toBe("InvalidRequest");
  return r.body.message;
}

describe.each(TRANSPORTS)("validation over %s", (transport, factory) => {
  let c: ContractClient;
  beforeAll(() => {
    c = factory(agent);
  });
  afterAll(() => c?.[Symbol.dispose]());

  test.each(SAME)("%s → InvalidRequest with the REST message (proto field names over gRPC)", async (...[, spec, message, protoMessage]: [string, Json, string, string?]) => {
    // (A rest parameter: a callback with more parameters than a row has elements is taken for one with `done`.)
    expect(await restMessage(spec)).toBe(message);
    const expected = transport === "rest" ? message : (protoMessage ?? message);
    expect(await failure(c.submit(spec))).toEqual({ code: "InvalidRequest", message: expected });
    // Submit-and-wait validates the same way.
    expect(await failure(c.run(spec, 1000))).toEqual({ code: "InvalidRequest", message: expected });
  });

  test.each(SAME_FIELD)("%s → InvalidRequest naming the field", async (_what, spec, field) => {
    expect(await restMessage(spec)).toStartWith(field);
    const got = await failure(c.submit(spec));
    expect(got).toEqual({ code: "InvalidRequest", message: expect.stringMatching(/^spec\./) });
    expect(got.message).toStartWith(field);
  });

  test("nothing is stored for a rejected spec", async () => {
    const spec = bad((s) => (s.timeout = 0));
    await failure(c.submit(spec));
    expect(await c.list({ slot: spec.slot })).toEqual({ tasks: [], total: 0 });
  });

  test("the REST-only spelling of a valid spec is accepted over both (body round-trips as base64)", async () => {
    const spec = specOf({ script: { runtime: "bash", body: base64("echo ok"), args: [] } });
    const { taskId } = await c.submit(spec);
    expect((await c.wait(taskId, 20_000)).status).toEqual({ phase: "succeeded", attempt: 1, exitCode: 0 });
  });
});

describe("list query validation", () => {
  test.each(TRANSPORTS)("%s: limit over 1000 is InvalidRequest", async (_t, factory) => {
    using c = factory(agent);
    expect(await failure(c.list({ limit: 1001 }))).toEqual({ code: "InvalidRequest", message: expect.stringMatching(/^limit: /) });
  });

  test.each(TRANSPORTS)("%s: more label filters than a task can hold (64) is InvalidRequest", async (_t, factory) => {
    using c = factory(agent);
    const labels = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, "v"]));
    expect(await c.list({ labels: labels(64) })).toEqual({ tasks: [], total: 0 });
    for (const n of [65, 500]) {
      expect(await failure(c.list({ labels: labels(n) }))).toEqual({
        code: "InvalidRequest",
        message: `label filters: at most 64 (a task holds at most 64 labels), got ${n}`,
      });
    }
  });
});
