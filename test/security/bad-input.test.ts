/**
 * A corpus of hostile input — generated malformed JSON, wrong types, huge
 * numbers, 10 000-level nesting, invalid UTF-8 and base64, bodies of 4 MiB + 1,
 * malformed protobuf — must only ever get 4xx / INVALID_ARGUMENT-class
 * answers: zero 5xx, zero INTERNAL/UNKNOWN, and the agent keeps serving.
 * Sent with the admin token, so every request reaches the parsers.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as grpc from "@grpc/grpc-js";
import { MAX_BODY_BYTES } from "../../src/http/read-body.ts";
import { unary } from "../grpc/proto-client.ts";
import { bashSpec, commandSpec } from "../helpers/start-agent.ts";
import { protoSpec, startSecureAgent, type SecureAgent } from "./secure-agent.ts";

let a: SecureAgent;
beforeAll(async () => {
  a = await startSecureAgent({ args: ["--max-concurrent", "2"] });
});
afterAll(() => a[Symbol.asyncDispose]());

/** Deterministic PRNG (mulberry32) so a failure can be replayed. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const VALID = JSON.stringify({
  spec: {
    ...commandSpec("true"),
    timeout: 1000,
    restart: { type: "always", intervalMs: 1000 },
    backoff: { jitter: "full", firstMs: 100, maxMs: 1000, factor: 2 },
    labels: { a: "b" },
    maxAttempts: 3,
    killGraceMs: 100,
    priority: 5,
    resources: { memoryBytes: 1 << 30 },
  },
});

function malformedJson(rand: () => number, n: number): string[] {
  const out: string[] = [];
  const junk = ['"', "{", "}", "[", "]", ",", ":", "\\", "\u0000", "tru", "nul", "-", "1e", "0x1", "NaN", "'", "\ud800"];
  for (let i = 0; i < n; i++) {
    const s = VALID.split("");
    const edits = 1 + Math.floor(rand() * 3);
    for (let e = 0; e < edits; e++) {
      const at = Math.floor(rand() * s.length);
      const op = rand();
      if (op < 0.33) s.splice(at, 1);
      else if (op < 0.66) s.splice(at, 0, junk[Math.floor(rand() * junk.length)]!);
      else s.length = at; // truncate
    }
    out.push(s.join(""));
  }
  return out;
}

const WRONG_VALUES: unknown[] = [null, true, 0, -1, 1.5, "x", "", [], {}, [1, "a"], { x: 1 }, 1e308, -1e308, 2 ** 64, Number.MAX_SAFE_INTEGER + 2];

/** The spec with the value at `path` replaced, for every path of the valid spec. */
function wrongTypes(): unknown[] {
  const base = JSON.parse(VALID).spec;
  const paths: string[][] = [];
  const walk = (v: unknown, p: string[]) => {
    paths.push(p);
    if (v && typeof v === "object") for (const [k, c] of Object.entries(v)) walk(c, [...p, k]);
  };
  walk(base, []);
  const out: unknown[] = [];
  for (const p of paths) {
    for (const w of WRONG_VALUES) {
      const copy = structuredClone(base);
      if (p.length === 0) {
        out.push({ spec: w });
        continue;
      }
      let node = copy as Record<string, unknown>;
      for (const k of p.slice(0, -1)) node = node[k] as Record<string, unknown>;
      node[p[p.length - 1]!] = w;
      out.push({ spec: copy });
    }
  }
  return out;
}

function nested(depth: number, open: string, close: string, inner = "1"): string {
  return open.repeat(depth) + inner + close.repeat(depth);
}

async function send(method: string, path: string, body?: RequestInit["body"], headers: Record<string, string> = {}): Promise<number> {
  const res = await fetch(a.url + path, { method, body, headers: { "content-type": "application/json", ...a.bearer("root"), ...headers } });
  const text = await res.text();
  if (res.status >= 400) {
    // Every error is the envelope.
    const env = JSON.parse(text);
    expect(typeof env.error).toBe("string");
    expect(typeof env.message).toBe("string");
  }
  return res.status;
}

function expectNo5xx(results: { input: string; status: number }[]): void {
  const bad = results.filter((r) => r.status >= 500);
  expect(bad.map((b) => `${b.status} ← ${b.input.slice(0, 200)}`)).toEqual([]);
}

async function expectServing(): Promise<void> {
  expect((await a.request("GET", "/healthz")).status).toBe(200);
  const r = await a.json("POST", "/api/v1/tasks?wait=true", { spec: commandSpec("echo", ["still here"]) }, a.bearer("root"));
  expect(r.status).toBe(200);
  expect(r.body.output.stdout).toEqual(["still here"]);
}

describe("REST bad input", () => {
  test("generated malformed JSON: 400 (or 413), never 5xx", async () => {
    const results = [];
    for (const body of malformedJson(prng(42), 300)) results.push({ input: body, status: await send("POST", "/api/v1/tasks", body) });
    expectNo5xx(results);
    expect(results.filter((r) => r.status === 400).length).toBeGreaterThan(200);
    await expectServing();
  });

  test("wrong types and huge numbers at every field of the spec: never 5xx", async () => {
    const results = [];
    for (const body of wrongTypes()) {
      // Accepted specs are held so nothing runs; their status is all we look at.
      const b = body as { spec: Record<string, unknown> };
      if (b.spec && typeof b.spec === "object" && !Array.isArray(b.spec)) b.spec.hold = true;
      const text = JSON.stringify(body);
      results.push({ input: text, status: await send("POST", "/api/v1/tasks", text) });
    }
    for (const raw of ["1e309", "-1e309", "1" + "0".repeat(400), "18446744073709551616", "-0", "0.0000001"]) {
      const text = VALID.replace('"timeout":1000', `"timeout":${raw}`);
      results.push({ input: text, status: await send("POST", "/api/v1/tasks", text) });
    }
    expectNo5xx(results);
    await expectServing();
  });

  test("whatever REST accepted can still be read over gRPC (no task poisons ListTasks/GetTaskStatus)", async () => {
    // Runs after the wrong-types corpus: some of its specs were accepted and stored.
    const list = await a.json("GET", "/api/v1/tasks?limit=1000", undefined, a.bearer("root"));
    const unreadable: string[] = [];
    for (const t of list.body.tasks as { metadata: { id: string }; spec: unknown }[]) {
      try {
        await unary(a.solti, "GetTaskStatus", { taskId: t.metadata.id }, a.md("root"));
      } catch (err) {
        unreadable.push(`${(err as grpc.ServiceError).details}: ${JSON.stringify(t.spec)}`);
      }
    }
    expect(unreadable).toEqual([]);
  });

  test("10 000 levels of nesting, as the body and inside the spec: 400, never 5xx", async () => {
    const bodies = [
      nested(10_000, "[", "]"),
      nested(10_000, '{"a":', "}"),
      `{"spec":${nested(10_000, "[", "]")}}`,
      `{"spec":{"slot":"x","labels":${nested(10_000, '{"a":', "}", "{}")}}}`,
      `{"spec":{"slot":"x","kind":{"subprocess":{"mode":{"command":{"command":"true","args":${nested(10_000, "[", "]", '"x"')}}}}}}}`,
    ];
    const results = [];
    for (const body of bodies) results.push({ input: body, status: await send("POST", "/api/v1/tasks", body) });
    expectNo5xx(results);
    expect(results.every((r) => r.status === 400)).toBe(true);
    await expectServing();
  });

  test("invalid UTF-8, invalid base64, bad content types", async () => {
    const utf8 = new Uint8Array([...Buffer.from('{"spec":{"slot":"'), 0xff, 0xfe, 0xc3, 0x28, ...Buffer.from('"}}')]);
    expect(await send("POST", "/api/v1/tasks", utf8)).toBe(400);
    const script = (body: string) => {
      const s = bashSpec("true") as { kind: { subprocess: { mode: { script: { body: string } } } } };
      s.kind.subprocess.mode.script.body = body;
      return JSON.stringify({ spec: s });
    };
    const scriptNotUtf8 = Buffer.from([0xff, 0xfe, 0x00, 0x80]).toString("base64");
    for (const b of ["not base64!!", "ZZZ", "====", "YQ", "Y=Q=", "\u00e9t\u00e9", scriptNotUtf8]) {
      expect({ b, status: await send("POST", "/api/v1/tasks", script(b)) }).toEqual({ b, status: 400 });
    }
    expect(await send("POST", "/api/v1/tasks", VALID, { "content-type": "text/plain" })).toBe(400);
    expect(await send("POST", "/api/v1/tasks", VALID, { "content-type": "application/x-www-form-urlencoded" })).toBe(400);
    await expectServing();
  });

  test("bodies of 4 MiB + 1 are refused with 413, declared or streamed", async () => {
    const big = "x".repeat(MAX_BODY_BYTES + 1);
    expect(await send("POST", "/api/v1/tasks", big)).toBe(413);
    const bigJson = JSON.stringify({ spec: { ...commandSpec("true"), labels: { pad: "y".repeat(MAX_BODY_BYTES) } } });
    expect(await send("POST", "/api/v1/tasks", bigJson)).toBe(413);
    const chunk = new Uint8Array(64 * 1024).fill(0x20);
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent > MAX_BODY_BYTES) return c.close();
        sent += chunk.byteLength;
        c.enqueue(chunk);
      },
    });
    expect(await send("POST", "/api/v1/tasks", stream)).toBe(413);
    // Exactly 4 MiB is not "too large": it is read, then rejected as invalid (not JSON).
    expect(await send("POST", "/api/v1/tasks", "x".repeat(MAX_BODY_BYTES))).toBe(400);
    await expectServing();
  });

  test("hostile query strings, paths and headers", async () => {
    const results = [];
    const paths = [
      "/api/v1/tasks?limit=-1",
      "/api/v1/tasks?limit=1e999",
      "/api/v1/tasks?offset=99999999999999999999999",
      "/api/v1/tasks?status=%00",
      "/api/v1/tasks?label=%ff%fe",
      "/api/v1/tasks?createdAfter=abc",
      "/api/v1/tasks?order=sideways",
      "/api/v1/tasks?unknown=1",
      `/api/v1/tasks/${"a".repeat(10_000)}`,
      "/api/v1/tasks/%00",
      "/api/v1/tasks/%ff%fe",
      "/api/v1/tasks/..%2f..%2fetc%2fpasswd",
      "/api/v1/tasks/x/wait?timeoutMs=99999999999999999999",
      "/api/v1/tasks/x/wait?timeoutMs=-5",
      "/api/v1/tasks/x/logs?after=abc",
      "/api/v1/events?after=-1",
      "/api/v1/events?after=1e400",
    ];
    for (const p of paths) {
      const res = await fetch(a.url + p, { headers: a.bearer("root") });
      await res.body?.cancel();
      results.push({ input: p, status: res.status });
    }
    for (const id of ["abc", "-1", "1".repeat(400), "\u00e9"]) {
      const res = await fetch(`${a.url}/api/v1/tasks/x/logs`, { headers: { ...a.bearer("root"), "last-event-id": id } });
      await res.body?.cancel();
      results.push({ input: `Last-Event-ID ${id}`, status: res.status });
    }
    expectNo5xx(results);
    expect(results.every((r) => r.status >= 400 && r.status < 500)).toBe(true);
    await expectServing();
  });
});

/**
 * Send raw bytes as the request message of `method` (bypassing any serializer).
 * A stream that decodes and opens (a watch with nothing to report) is ended by
 * a 1 s deadline: DEADLINE_EXCEEDED is an acceptable answer, not a fault.
 */
function rawCall(path: string, bytes: Buffer, streaming = false): Promise<{ code: number; details: string }> {
  const client = new grpc.Client(a.grpcAddr, grpc.credentials.createInsecure(), { "grpc.max_send_message_length": 8 << 20 });
  const id = (b: Buffer) => b;
  return new Promise((resolve) => {
    const done = (r: { code: number; details: string }) => {
      client.close();
      resolve(r);
    };
    if (streaming) {
      const call = client.makeServerStreamRequest(path, id, id, bytes, a.md("root"), { deadline: Date.now() + 1000 });
      call.on("data", () => {});
      call.on("error", (e: grpc.ServiceError) => done({ code: e.code, details: e.details }));
      call.on("status", (s: grpc.StatusObject) => s.code === grpc.status.OK && done({ code: s.code, details: s.details }));
    } else {
      client.makeUnaryRequest(path, id, id, bytes, a.md("root"), (err) => done(err ? { code: err.code!, details: err.details ?? "" } : { code: 0, details: "" }));
    }
  });
}

describe("gRPC bad input", () => {
  // A fresh agent: the REST corpus above must not leave tasks behind that these calls would read.
  let rest: SecureAgent;
  beforeAll(async () => {
    rest = a;
    a = await startSecureAgent();
  });
  afterAll(async () => {
    await a[Symbol.asyncDispose]();
    a = rest;
  });
  const SERVER_FAULTS = new Set([grpc.status.INTERNAL, grpc.status.UNKNOWN, grpc.status.UNAVAILABLE, grpc.status.DATA_LOSS]);

  test("malformed protobuf on every kind of RPC: INVALID_ARGUMENT-class, never INTERNAL/UNKNOWN", async () => {
    const rand = prng(7);
    const corpus: Buffer[] = [
      Buffer.from([0x0a]), // field 1, length-delimited, no length
      Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]), // length 4 GiB
      Buffer.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), // overlong varint
      Buffer.from([0x0f]), // wire type 7
      Buffer.from([0x00, 0x01]), // field number 0
      Buffer.from([0x0b, 0x0a, 0x00]), // start group, never ended
      Buffer.from([0x0a, 0x02, 0xc3, 0x28]), // string field with invalid UTF-8
      Buffer.from([0x0a, 0x05, 0x0a, 0x03, 0x12, 0xff, 0x01]), // nested truncation
    ];
    for (let i = 0; i < 40; i++) corpus.push(Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 64) }, () => Math.floor(rand() * 256))));
    const methods: [string, boolean][] = [
      ["/solti.v1.SoltiApi/SubmitTask", false],
      ["/solti.v1.SoltiApi/GetTaskStatus", false],
      ["/solti.v1.SoltiApi/ListTasks", false],
      ["/solti.v1.SoltiApi/ListTaskRuns", false],
      ["/solti.v1.SoltiApi/DeleteTask", false],
      ["/solti.v1.SoltiApi/StreamTaskLogs", true],
      ["/tasklane.v1.AgentService/RunTask", false],
      ["/tasklane.v1.AgentService/WaitTask", false],
      ["/tasklane.v1.AgentService/WatchTasks", true],
    ];
    const faults: string[] = [];
    for (const [path, streaming] of methods) {
      for (const bytes of corpus) {
        const r = await rawCall(path, bytes, streaming);
        if (SERVER_FAULTS.has(r.code)) faults.push(`${path} ${bytes.toString("hex")}: ${r.code} ${r.details}`);
      }
    }
    expect(faults).toEqual([]);
    expect((await rawCall("/solti.v1.SoltiApi/SubmitTask", Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]))).code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  test("a message over 4 MiB is RESOURCE_EXHAUSTED", async () => {
    const big = Buffer.concat([Buffer.from([0x0a, 0x81, 0x80, 0x80, 0x02]), Buffer.alloc(4 * 1024 * 1024 + 1, 0x61)]);
    expect((await rawCall("/solti.v1.SoltiApi/GetTaskStatus", big)).code).toBe(grpc.status.RESOURCE_EXHAUSTED);
  });

  test("well-formed but invalid values: INVALID_ARGUMENT", async () => {
    const bad = [
      { ...protoSpec("true"), restart: 99 },
      { ...protoSpec("true"), timeoutMs: "18446744073709551615" },
      { ...protoSpec("true"), timeoutMs: "0" },
      { ...protoSpec("true"), slot: "../../etc" },
      { ...protoSpec("true"), kind: { subprocess: { script: { wellKnown: "SCRIPT_RUNTIME_BASH", body: "%%%" } } } },
      { ...protoSpec("true"), backoff: { jitter: "JITTER_STRATEGY_FULL", firstMs: "1", maxMs: "1", factor: Number.NaN } },
      { ...protoSpec("true"), kind: {} },
    ];
    for (const spec of bad) {
      try {
        await unary(a.solti, "SubmitTask", { spec }, a.md("root"));
        throw new Error(`accepted: ${JSON.stringify(spec)}`);
      } catch (err) {
        expect({ spec, code: (err as grpc.ServiceError).code }).toEqual({ spec, code: grpc.status.INVALID_ARGUMENT });
      }
    }
  });

  test("still serving afterwards", async () => {
    await expectServing();
    const res = await unary<{ total: number }>(a.solti, "ListTasks", {}, a.md("root"));
    expect(res.total).toBeGreaterThan(0);
  });
});
