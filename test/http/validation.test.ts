/**
 * Input validation over REST (CONTRACT §1 "Validation", §2 errors): every
 * rule good and bad through POST /api/v1/tasks, body and size limits, error
 * envelopes of unknown routes and tasks, list query errors, and the two curl
 * examples of the API notes, verbatim.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rawExchange } from "../helpers/raw-http.ts";
import { startAgent, type TestAgent } from "../helpers/start-agent.ts";
import { collectSse } from "../helpers/sse.ts";
import { submit, waitTerminal } from "../helpers/task-control.ts";

let a: TestAgent;
beforeAll(async () => {
  a = await startAgent();
});
afterAll(async () => {
  await a?.[Symbol.asyncDispose]();
});

const MiB = 1024 * 1024;

/** A held (never started) command task; `patch` edits the spec before sending. */
function spec(patch: (s: any) => void = () => {}): any {
  const s: any = { slot: "v", kind: { subprocess: { mode: { command: { command: "true" } } } }, hold: true };
  patch(s);
  return s;
}
function scriptSpec(script: Record<string, unknown>): any {
  return spec((s) => (s.kind.subprocess.mode = { script: { runtime: "bash", body: "", ...script } }));
}
const sub = (patch: (p: any) => void) => spec((s) => patch(s.kind.subprocess));
const bad = (message: string) => ({ status: 400, body: { error: "InvalidRequest", message } });

describe("spec rules: rejected with 400 InvalidRequest naming the field and the value", () => {
  const cases: [string, any, string][] = [
    ["empty slot", spec((s) => (s.slot = "")), 'spec.slot: must be 1..64 characters of [A-Za-z0-9._-], got ""'],
    ["slot with a space", spec((s) => (s.slot = "a b")), 'spec.slot: must be 1..64 characters of [A-Za-z0-9._-], got "a b"'],
    ["slot with a slash", spec((s) => (s.slot = "a/b")), 'spec.slot: must be 1..64 characters of [A-Za-z0-9._-], got "a/b"'],
    ["slot of 65 bytes", spec((s) => (s.slot = "a".repeat(65))), `spec.slot: must be 1..64 characters of [A-Za-z0-9._-], got "${"a".repeat(65)}"`],
    ["slot of non-ASCII", spec((s) => (s.slot = "é")), 'spec.slot: must be 1..64 characters of [A-Za-z0-9._-], got "é"'],
    ["slot .", spec((s) => (s.slot = ".")), 'spec.slot: must not be "." or "..", got "."'],
    ["slot ..", spec((s) => (s.slot = "..")), 'spec.slot: must not be "." or "..", got ".."'],
    ["slot missing", spec((s) => delete s.slot), "spec.slot: required field missing (expected a string)"],
    ["slot not a string", spec((s) => (s.slot = 5)), "spec.slot: must be a string, got 5"],
    ["empty command", sub((p) => (p.mode.command.command = "")), 'spec.kind.subprocess.mode.command.command: must not be empty or blank, got ""'],
    ["blank command", sub((p) => (p.mode.command.command = " \t")), 'spec.kind.subprocess.mode.command.command: must not be empty or blank, got " \\t"'],
    ["script body not base64", scriptSpec({ body: "!!!!" }), 'spec.kind.subprocess.mode.script.body: must be standard base64 (A-Z a-z 0-9 + /, "=" padding, no whitespace); invalid character "!" at offset 0, got "!!!!"'],
    ["script body URL-safe base64", scriptSpec({ body: "a-_a" }), 'spec.kind.subprocess.mode.script.body: must be standard base64 (A-Z a-z 0-9 + /, "=" padding, no whitespace); invalid character "-" at offset 1 (URL-safe base64 is not accepted), got "a-_a"'],
    ["script body with a line break", scriptSpec({ body: "ZWNo\nbyAx" }), 'spec.kind.subprocess.mode.script.body: must be standard base64 (A-Z a-z 0-9 + /, "=" padding, no whitespace); invalid character "\\n" at offset 4 (no whitespace or line breaks; encode with base64 -w0), got "ZWNo\\nbyAx"'],
    ["script body without padding", scriptSpec({ body: "ZWNobw" }), 'spec.kind.subprocess.mode.script.body: must be standard base64 (A-Z a-z 0-9 + /, "=" padding, no whitespace); length must be a multiple of 4 with at most 2 "=", got "ZWNobw"'],
    ["script body not UTF-8", scriptSpec({ body: Buffer.from([0xff, 0xfe]).toString("base64") }), 'spec.kind.subprocess.mode.script.body: decoded script must be valid UTF-8, got "//4="'],
    ["unknown runtime", scriptSpec({ runtime: "perl" }), 'spec.kind.subprocess.mode.script.runtime: must be one of "bash", "python", "node" or {"custom": …}, got "perl"'],
    ["custom runtime without command", scriptSpec({ runtime: { custom: { command: "", flag: "-e" } } }), 'spec.kind.subprocess.mode.script.runtime.custom.command: must not be empty or blank, got ""'],
    ["custom runtime without flag", scriptSpec({ runtime: { custom: { command: "ruby", flag: " " } } }), 'spec.kind.subprocess.mode.script.runtime.custom.flag: must not be empty or blank, got " "'],
    ["custom runtime missing flag", scriptSpec({ runtime: { custom: { command: "ruby" } } }), "spec.kind.subprocess.mode.script.runtime.custom.flag: required field missing (expected a string)"],
    ["env key empty", sub((p) => (p.env = [{ key: "", value: "x" }])), 'spec.kind.subprocess.env[0].key: must not be empty, got ""'],
    ["env key with =", sub((p) => (p.env = [{ key: "A", value: "1" }, { key: "A=B", value: "x" }])), 'spec.kind.subprocess.env[1].key: must not contain "=", got "A=B"'],
    ["env key with NUL", sub((p) => (p.env = [{ key: "A\0", value: "x" }])), 'spec.kind.subprocess.env[0].key: must not contain NUL characters, got "A\\u0000"'],
    ["env value with NUL", sub((p) => (p.env = [{ key: "A", value: "x\0y" }])), 'spec.kind.subprocess.env[0].value: must not contain NUL characters, got "x\\u0000y"'],
    ["cwd relative", sub((p) => (p.cwd = "srv/app")), 'spec.kind.subprocess.cwd: must be an absolute path, got "srv/app"'],
    ["timeout 0", spec((s) => (s.timeout = 0)), "spec.timeout: must be an integer > 0 and ≤ 604800000 ms, got 0"],
    ["timeout negative", spec((s) => (s.timeout = -5)), "spec.timeout: must be an integer > 0 and ≤ 604800000 ms, got -5"],
    ["timeout not an integer", spec((s) => (s.timeout = 1.5)), "spec.timeout: must be an integer > 0 and ≤ 604800000 ms, got 1.5"],
    ["timeout over 7 days", spec((s) => (s.timeout = 604_800_001)), "spec.timeout: must be an integer > 0 and ≤ 604800000 ms, got 604800001"],
    ["timeout as a string", spec((s) => (s.timeout = "30000")), 'spec.timeout: must be an integer > 0 and ≤ 604800000 ms, got "30000"'],
    ["backoff firstMs 0", spec((s) => (s.backoff = { jitter: "none", firstMs: 0, maxMs: 10, factor: 2 })), "spec.backoff.firstMs: must be an integer > 0 and ≤ 604800000 ms, got 0"],
    ["backoff maxMs < firstMs", spec((s) => (s.backoff = { jitter: "none", firstMs: 10, maxMs: 5, factor: 2 })), "spec.backoff.maxMs: must be ≥ backoff.firstMs (10 ms), got 5"],
    ["backoff fractional firstMs", spec((s) => (s.backoff = { jitter: "none", firstMs: 0.5, maxMs: 50, factor: 2 })), "spec.backoff.firstMs: must be an integer > 0 and ≤ 604800000 ms, got 0.5"],
    ["backoff maxMs beyond 7 days", spec((s) => (s.backoff = { jitter: "none", firstMs: 1, maxMs: 604_800_001, factor: 2 })), "spec.backoff.maxMs: must be an integer > 0 and ≤ 604800000 ms, got 604800001"],
    ["maxAttempts beyond uint32", spec((s) => (s.maxAttempts = 4_294_967_296)), "spec.maxAttempts: must be an integer ≥ 1 and ≤ 4294967295, got 4294967296"],
    ["backoff factor < 1", spec((s) => (s.backoff = { jitter: "none", firstMs: 10, maxMs: 50, factor: 0.5 })), "spec.backoff.factor: must be a finite number ≥ 1, got 0.5"],
    ["backoff field missing", spec((s) => (s.backoff = { jitter: "none", firstMs: 10, maxMs: 50 })), "spec.backoff.factor: required field missing (expected a finite number ≥ 1)"],
    ["jitter unknown", spec((s) => (s.backoff = { jitter: "some", firstMs: 10, maxMs: 50, factor: 2 })), 'spec.backoff.jitter: must be one of "none", "full", "equal", "decorrelated", got "some"'],
    ["admission unknown", spec((s) => (s.admission = "drop")), 'spec.admission: must be one of "dropIfRunning", "replace", "queue", got "drop"'],
    ["restart type unknown", spec((s) => (s.restart = { type: "sometimes" })), 'spec.restart.type: must be one of "never", "onFailure", "always", got "sometimes"'],
    ["restart as a bare string", spec((s) => (s.restart = "never")), 'spec.restart: must be an object with "type" one of "never", "onFailure", "always", got "never"'],
    ["restart interval on never", spec((s) => (s.restart = { type: "never", intervalMs: 5 })), "spec.restart.intervalMs: unknown field"],
    ["unknown spec field (typo)", spec((s) => (s.timout = 5)), "spec.timout: unknown field"],
    ["unknown nested field", sub((p) => (p.failOnNonzero = false)), "spec.kind.subprocess.failOnNonzero: unknown field"],
    ["unknown command field", sub((p) => (p.mode.command.argv = [])), "spec.kind.subprocess.mode.command.argv: unknown field"],
    ["unsupported kind", spec((s) => (s.kind = { wasm: { module: "m" } })), "spec.kind: unsupported kind wasm (only subprocess is supported)"],
    ["maxAttempts 0", spec((s) => (s.maxAttempts = 0)), "spec.maxAttempts: must be an integer ≥ 1 and ≤ 4294967295, got 0"],
    ["maxAttempts 1.5", spec((s) => (s.maxAttempts = 1.5)), "spec.maxAttempts: must be an integer ≥ 1 and ≤ 4294967295, got 1.5"],
    ["priority -1", spec((s) => (s.priority = -1)), "spec.priority: must be an integer ≥ 0 and ≤ 10, got -1"],
    ["priority 11", spec((s) => (s.priority = 11)), "spec.priority: must be an integer ≥ 0 and ≤ 10, got 11"],
    ["killGraceMs -1", spec((s) => (s.killGraceMs = -1)), "spec.killGraceMs: must be an integer ≥ 0 and ≤ 600000 ms, got -1"],
    ["killGraceMs 600001", spec((s) => (s.killGraceMs = 600_001)), "spec.killGraceMs: must be an integer ≥ 0 and ≤ 600000 ms, got 600001"],
    ["hold not a boolean", spec((s) => (s.hold = "yes")), 'spec.hold: must be a boolean, got "yes"'],
    ["failOnNonZero not a boolean", sub((p) => (p.failOnNonZero = 1)), "spec.kind.subprocess.failOnNonZero: must be a boolean, got 1"],
  ];
  for (const [name, s, message] of cases) {
    test(name, async () => {
      expect(await submit(a, s)).toEqual(bad(message));
    });
  }
});

describe("spec rules: accepted at the boundaries, defaults filled in", () => {
  const cases: [string, any][] = [
    ["slot of 64 bytes", spec((s) => (s.slot = "a".repeat(64)))],
    ["slot of every allowed character", spec((s) => (s.slot = "Az09._-"))],
    ["slot ...", spec((s) => (s.slot = "..."))],
    ["command with surrounding blanks", sub((p) => (p.mode.command.command = " true "))],
    ["timeout 1", spec((s) => (s.timeout = 1))],
    ["timeout 7 days", spec((s) => (s.timeout = 604_800_000))],
    ["backoff maxMs = firstMs, factor 1", spec((s) => (s.backoff = { jitter: "decorrelated", firstMs: 1, maxMs: 1, factor: 1 }))],
    ["backoff fractional factor", spec((s) => (s.backoff = { jitter: "full", firstMs: 1, maxMs: 3, factor: 1.5 }))],
    ["maxAttempts 1, priority 0, killGraceMs 0", spec((s) => Object.assign(s, { maxAttempts: 1, priority: 0, killGraceMs: 0 }))],
    ["priority 10, killGraceMs 600000", spec((s) => Object.assign(s, { priority: 10, killGraceMs: 600_000 }))],
    ["custom runtime", scriptSpec({ runtime: { custom: { command: "ruby", flag: "-e" } }, body: "cHV0cyAnaGVsbG8n" })],
    ["python and node runtimes", scriptSpec({ runtime: "python", body: "cHJpbnQoMSk=" })],
    ["empty script body", scriptSpec({ body: "" })],
    ["cwd absolute (existence is checked at run time)", sub((p) => (p.cwd = "/no/such/dir"))],
    ["env value with = and empty value", sub((p) => (p.env = [{ key: "A", value: "b=c" }, { key: "E", value: "" }]))],
    ["every restart type", spec((s) => (s.restart = { type: "always", intervalMs: 0 }))],
    ["every admission", spec((s) => (s.admission = "dropIfRunning"))],
  ];
  for (const [name, s] of cases) {
    test(name, async () => {
      const r = await submit(a, s);
      expect(r).toEqual({ status: 201, body: { task_id: expect.stringMatching(/^tsk_[0-9A-HJKMNP-TV-Z]{26}$/), admission: "queued" } });
    });
  }

  test("defaults are filled in and a later duplicate env key wins", async () => {
    const s = sub((p) => (p.env = [{ key: "A", value: "1" }, { key: "B", value: "x" }, { key: "A", value: "2" }]));
    const r = await submit(a, s);
    expect(r.status).toBe(201);
    const got = await a.json("GET", `/api/v1/tasks/${r.body.task_id}`);
    expect(got).toEqual({
      status: 200,
      body: {
        task: {
          metadata: { id: r.body.task_id, resourceVersion: 1, createdAt: expect.any(Number), updatedAt: expect.any(Number) },
          spec: {
            slot: "v",
            kind: {
              subprocess: {
                mode: { command: { command: "true", args: [] } },
                env: [{ key: "A", value: "2" }, { key: "B", value: "x" }],
                failOnNonZero: true,
              },
            },
            timeout: 3_600_000,
            restart: { type: "never" },
            backoff: { jitter: "full", firstMs: 1000, maxMs: 30_000, factor: 2 },
            admission: "queue",
            labels: {},
            hold: true,
          },
          status: { phase: "pending", attempt: 0 },
        },
      },
    });
  });

  test("a cwd that does not exist fails the run with a clear error, not the agent", async () => {
    const s = sub((p) => (p.cwd = "/no/such/dir"));
    s.hold = false;
    const r = await submit(a, s);
    expect(r.status).toBe(201);
    const task = await waitTerminal(a, r.body.task_id);
    expect(task.status).toEqual({ phase: "failed", attempt: 1, error: "cwd /no/such/dir does not exist or is not a directory" });
    expect((await a.json("GET", "/healthz")).status).toBe(200);
  });
});

describe("script body size (decoded ≤ 2 MiB)", () => {
  // Valid UTF-8 bash: a comment line padded to the size.
  const body = (bytes: number) => Buffer.from(`#${"x".repeat(bytes - 2)}\n`).toString("base64");
  test("exactly 2 MiB decoded is accepted", async () => {
    const r = await submit(a, scriptSpec({ body: body(2 * MiB) }));
    expect(r).toEqual({ status: 201, body: { task_id: expect.any(String), admission: "queued" } });
  });
  test("2 MiB + 1 decoded is rejected", async () => {
    expect(await submit(a, scriptSpec({ body: body(2 * MiB + 1) }))).toEqual(
      bad("spec.kind.subprocess.mode.script.body: decoded script must be ≤ 2097152 bytes, got 2097153 bytes"),
    );
  });
});

describe("request body", () => {
  const post = (body: string | Uint8Array | Blob | null, headers: Record<string, string> = { "content-type": "application/json" }) =>
    fetch(`${a.url}/api/v1/tasks`, { method: "POST", headers, body });
  const answer = async (res: Response) => ({ status: res.status, body: await res.json() });

  test("malformed JSON", async () => {
    expect(await answer(await post('{"spec": {'))).toEqual({
      status: 400,
      body: { error: "InvalidRequest", message: expect.stringMatching(/^malformed JSON: /) },
    });
  });
  test("wrong content type", async () => {
    expect(await answer(await post(JSON.stringify({ spec: spec() }), { "content-type": "text/plain" }))).toEqual(
      bad('content-type must be application/json, got "text/plain"'),
    );
  });
  test("no content type", async () => {
    const res = await fetch(`${a.url}/api/v1/tasks`, { method: "POST", body: new Blob([JSON.stringify({ spec: spec() })]) });
    expect(await answer(res)).toEqual(bad('content-type must be application/json, got "(none)"'));
  });
  test("application/json with a charset is fine", async () => {
    const res = await post(JSON.stringify({ spec: spec() }), { "content-type": "application/json; charset=utf-8" });
    expect(res.status).toBe(201);
  });
  for (const [name, text] of [
    ["an array", "[1, 2]"],
    ["a string", '"spec"'],
    ["a number", "42"],
    ["null", "null"],
    ["empty", ""],
  ] as const) {
    test(`body that is ${name}`, async () => {
      expect(await answer(await post(text))).toEqual(bad('request body must be a JSON object like {"spec": {...}}'));
    });
  }
  test("missing spec", async () => {
    expect(await answer(await post("{}"))).toEqual(bad("spec: required"));
  });
  test("unknown top-level field", async () => {
    expect(await answer(await post(JSON.stringify({ spec: spec(), wait: true })))).toEqual(
      bad('wait: unknown field (the body is {"spec": {...}})'),
    );
  });
  test("a proto3-JSON value with control characters: the message shows it on one line without them", async () => {
    const body = { spec: { slot: "p3", kind: { subprocess: { command: { command: "/bin/true" } } }, timeoutMs: "1\u0000\u001b[2J\ny" } };
    const { status, body: got } = (await answer(await post(JSON.stringify(body)))) as { status: number; body: { message: string } };
    expect(status).toBe(400);
    expect(got.message).toStartWith("invalid proto3 JSON SubmitTaskRequest: ");
    expect(got.message).toContain(": 1 [2J y");
    expect(got.message).not.toMatch(/[\u0000-\u001f\u007f]/);
  });
  test("invalid UTF-8", async () => {
    const bytes = new Uint8Array([...Buffer.from('{"spec": "'), 0xff, ...Buffer.from('"}')]);
    expect(await answer(await post(bytes))).toEqual(bad("request body is not valid UTF-8"));
  });

  const tooLarge = { status: 413, body: { error: "PayloadTooLarge", message: "request body exceeds 4194304 bytes" } };
  test("4 MiB + 1 with a content-length is 413", async () => {
    expect(await answer(await post("x".repeat(4 * MiB + 1)))).toEqual(tooLarge);
  });
  test("exactly 4 MiB is read and parsed", async () => {
    const json = JSON.stringify({ spec: spec() });
    const res = await post(json + " ".repeat(4 * MiB - json.length));
    expect(res.status).toBe(201);
  });
  test("4 MiB + 1 sent chunked, without a content-length, is 413", async () => {
    const chunk = (b: Uint8Array) => Buffer.concat([Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from("\r\n")]);
    const payload = Buffer.alloc(4 * MiB + 1, 0x20);
    const parts: Buffer[] = [];
    for (let i = 0; i < payload.length; i += 64 * 1024) parts.push(chunk(payload.subarray(i, i + 64 * 1024)));
    parts.push(Buffer.from("0\r\n\r\n"));
    const head =
      "POST /api/v1/tasks HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    const raw = await rawExchange(a.agent.httpPort, [Buffer.from(head), ...parts]);
    expect(raw.head).toStartWith("HTTP/1.1 413");
    expect(raw.head.toLowerCase()).not.toContain("content-length: 4194305");
    expect(JSON.parse(raw.body)).toEqual(tooLarge.body);
  });
  test("a small chunked body is accepted", async () => {
    const json = Buffer.from(JSON.stringify({ spec: spec() }));
    const head =
      "POST /api/v1/tasks HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    const raw = await rawExchange(a.agent.httpPort, [Buffer.from(head), Buffer.from(`${json.length.toString(16)}\r\n`), json, Buffer.from("\r\n0\r\n\r\n")]);
    expect(raw.head).toStartWith("HTTP/1.1 201");
  });
  test("far beyond 4 MiB (9 MiB) still gets the PayloadTooLarge envelope", async () => {
    expect(await answer(await post("x".repeat(9 * MiB)))).toEqual(tooLarge);
  });
  test("a declared 2 GiB body gets the envelope too (the server's own limit does not answer first)", async () => {
    const head =
      "POST /api/v1/tasks HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 2147483648\r\nConnection: close\r\n\r\n";
    const raw = await rawExchange(a.agent.httpPort, [Buffer.from(head), Buffer.from("{")]);
    expect(raw.head).toStartWith("HTTP/1.1 413");
    expect(JSON.parse(raw.body)).toEqual(tooLarge.body);
  });
  test("the limit holds on every route: a 5 MiB body to cancel is 413 and cancels nothing", async () => {
    const id = ((await (await post(JSON.stringify({ spec: spec((s) => (s.hold = true)) }))).json()) as { task_id: string }).task_id;
    const res = await fetch(`${a.url}/api/v1/tasks/${id}/cancel`, { method: "POST", body: "x".repeat(5 * MiB) });
    expect(await answer(res)).toEqual(tooLarge);
    const task = (await (await fetch(`${a.url}/api/v1/tasks/${id}`)).json()) as { task: { status: { phase: string } } };
    expect(task.task.status.phase).toBe("pending");
  });
});

describe("routes and unknown tasks", () => {
  test("unknown route → 404 NotFound", async () => {
    expect(await a.json("GET", "/api/v1/nope")).toEqual({ status: 404, body: { error: "NotFound", message: "no such route" } });
    expect(await a.json("POST", "/api/v2/tasks", {})).toEqual({ status: 404, body: { error: "NotFound", message: "no such route" } });
  });
  for (const suffix of ["", "/runs", "/logs"]) {
    test(`unknown task → 404 TaskNotFound on GET …${suffix}`, async () => {
      const res = await a.request("GET", `/api/v1/tasks/tsk_01NOSUCHTASK00000000000000${suffix}`);
      expect(res.headers.get("content-type")).toStartWith("application/json");
      expect({ status: res.status, body: await res.json() }).toEqual({
        status: 404,
        body: { error: "TaskNotFound", message: "task tsk_01NOSUCHTASK00000000000000 not found" },
      });
    });
  }
  for (const [method, suffix] of [["GET", ""], ["GET", "/logs"], ["POST", "/cancel"], ["DELETE", ""]] as const) {
    test(`an id that is not valid percent-encoding → 400 naming the path, not a "null" task (${method} …${suffix})`, async () => {
      expect(await a.json(method, `/api/v1/tasks/%ZZ${suffix}`)).toEqual(bad("task id: not valid percent-encoding in the path"));
    });
  }
  test("DELETE of an unknown task → 204", async () => {
    const res = await a.request("DELETE", "/api/v1/tasks/tsk_01NOSUCHTASK00000000000000");
    expect(res.status).toBe(204);
    expect(await res.text()).toBe("");
  });
});

describe("list query errors", () => {
  const cases: [string, string][] = [
    ["status=bad", 'status: must be one of "pending", "running", "succeeded", "failed", "timeout", "canceled", "exhausted", got "bad"'],
    ["limit=0", 'limit: must be an integer 1..1000, got "0"'],
    ["limit=1001", 'limit: must be an integer 1..1000, got "1001"'],
    ["limit=ten", 'limit: must be an integer 1..1000, got "ten"'],
    ["offset=-1", 'offset: must be an integer 0..9007199254740991, got "-1"'],
    ["order=up", 'order: must be "asc" or "desc", got "up"'],
    ["label=team", 'label: must be key=value, got "team"'],
    ["createdAfter=yesterday", 'createdAfter: must be an integer 0..9007199254740991, got "yesterday"'],
    ["slots=a", 'unknown query parameter "slots"; allowed: slot, status, label, owner, createdAfter, createdBefore, order, limit, offset'],
    // A repeat would be read as its first value (or, for labels, the last): the answer would depend on the order.
    ["slot=a&slot=b", "slot: given more than once; it takes one value"],
    ["limit=1&limit=2", "limit: given more than once; it takes one value"],
    ["label=team=core&label=team=edge", 'label: key "team" given with two values ("core" and "edge"); a task has one value per key'],
  ];
  for (const [query, message] of cases) {
    test(query, async () => {
      expect(await a.json("GET", `/api/v1/tasks?${query}`)).toEqual(bad(message));
    });
  }
  test("a label repeated with the same value is one filter", async () => {
    const r = await a.json("GET", "/api/v1/tasks?label=team=edge&label=team=edge&label=env=prod");
    expect(r.status).toBe(200);
  });
  test("limit 1 and 1000 are fine", async () => {
    expect((await a.json("GET", "/api/v1/tasks?limit=1")).status).toBe(200);
    expect((await a.json("GET", "/api/v1/tasks?limit=1000")).status).toBe(200);
  });
});

describe("every route with a query rejects a parameter it does not take (a typo is never ignored)", () => {
  let id: string;
  beforeAll(async () => {
    id = (await a.json("POST", "/api/v1/tasks", { spec: spec() })).body.task_id;
  });
  const unknown = (key: string, allowed: string) => bad(`unknown query parameter "${key}"; allowed: ${allowed}`);
  test("GET /api/v1/events", async () => {
    expect(await a.json("GET", "/api/v1/events?slott=v")).toEqual(unknown("slott", "after, slot, label"));
    expect(await a.json("GET", "/api/v1/events?slot=a&slot=b")).toEqual(bad("slot: given more than once; it takes one value"));
    expect(await a.json("GET", "/api/v1/events?label=k=1&label=k=2")).toEqual(bad('label: key "k" given with two values ("1" and "2"); a task has one value per key'));
  });
  test("GET /api/v1/tasks/{id}/logs (a misspelt follow=false would follow for good)", async () => {
    expect(await a.json("GET", `/api/v1/tasks/${id}/logs?folow=false`)).toEqual(unknown("folow", "after, follow"));
  });
  test("GET /api/v1/tasks/{id}/wait", async () => {
    expect(await a.json("GET", `/api/v1/tasks/${id}/wait?timeout=5`)).toEqual(unknown("timeout", "timeoutMs"));
  });
  test("POST /api/v1/tasks: nothing is created", async () => {
    const before = (await a.json("GET", "/api/v1/tasks?limit=1")).body.total;
    expect(await a.json("POST", "/api/v1/tasks?wiat=true", { spec: spec() })).toEqual(unknown("wiat", "wait, timeoutMs"));
    expect((await a.json("GET", "/api/v1/tasks?limit=1")).body.total).toBe(before);
  });
  test("a long key is cut in the message", async () => {
    const r = await a.json("GET", `/api/v1/events?${"k".repeat(500)}=1`);
    expect(r.status).toBe(400);
    expect(r.body.message).toBe(`unknown query parameter "${"k".repeat(80)}…"; allowed: after, slot, label`);
  });
  test("an empty value is refused (often an unset shell variable), except a resume cursor's", async () => {
    const empty = (name: string) => bad(`${name}: must not be empty (leave the parameter out instead)`);
    expect(await a.json("GET", "/api/v1/tasks?slot=")).toEqual(empty("slot"));
    expect(await a.json("GET", "/api/v1/tasks?owner")).toEqual(empty("owner"));
    expect(await a.json("GET", "/api/v1/events?slot=")).toEqual(empty("slot"));
    expect(await a.json("GET", "/api/v1/tasks?limit=")).toEqual(bad('limit: must be an integer 1..1000, got ""'));
    // Before: the default 30 s wait, and the default of each flag.
    expect(await a.json("GET", `/api/v1/tasks/${id}/wait?timeoutMs=`)).toEqual(bad('timeoutMs: must be a non-negative integer, got ""'));
    expect(await a.json("POST", "/api/v1/tasks?wait=true&timeoutMs=", { spec: spec() })).toEqual(bad('timeoutMs: must be a non-negative integer, got ""'));
    expect(await a.json("POST", "/api/v1/tasks?wait", { spec: spec() })).toEqual(bad('wait: must be true or false, got ""'));
    expect(await a.json("GET", `/api/v1/tasks/${id}/logs?follow=`)).toEqual(bad('follow: must be true or false, got ""'));
    // An empty cursor is no cursor (as SSE reads an empty Last-Event-ID): from the start.
    expect((await a.request("GET", `/api/v1/tasks/${id}/logs?follow=false&after=`)).status).toBe(200);
  });
  test("the parameters each route does take are still accepted", async () => {
    expect((await a.request("GET", `/api/v1/tasks/${id}/logs?follow=false&after=0`)).status).toBe(200);
    expect((await a.json("GET", `/api/v1/tasks/${id}/wait?timeoutMs=0`)).status).toBe(200);
    const events = await a.request("GET", "/api/v1/events?slot=v&label=a=b&after=0");
    expect(events.status).toBe(200);
    await events.body?.cancel();
  });
});

describe("proto3-JSON submit body", () => {
  test("the §5 shape is accepted on POST /api/v1/tasks and stored in the domain shape", async () => {
    const r = await a.json("POST", "/api/v1/tasks", {
      spec: {
        slot: "proto-json",
        kind: { subprocess: { command: { command: "echo", args: ["hi"] }, failOnNonZero: true } },
        timeoutMs: "30000",
        restart: "RESTART_STRATEGY_NEVER",
        backoff: { jitter: "JITTER_STRATEGY_FULL", firstMs: "1000", maxMs: "10000", factor: 2 },
        admission: "ADMISSION_STRATEGY_DROP_IF_RUNNING",
      },
    });
    expect(r).toEqual({ status: 201, body: { task_id: expect.any(String), admission: "started" } });
    const task = await waitTerminal(a, r.body.task_id);
    expect(task.spec).toMatchObject({
      slot: "proto-json",
      kind: { subprocess: { mode: { command: { command: "echo", args: ["hi"] } }, failOnNonZero: true } },
      timeout: 30000,
      restart: { type: "never" },
      backoff: { jitter: "full", firstMs: 1000, maxMs: 10000, factor: 2 },
      admission: "dropIfRunning",
    });
    expect(task.status).toEqual({ phase: "succeeded", attempt: 1, exitCode: 0 });
  });
  test("a bad field is named as the body names it, and nothing is created", async () => {
    const base = { slot: "proto-bad", kind: { subprocess: { command: { command: "echo" } } }, timeoutMs: "30000", restart: "RESTART_STRATEGY_NEVER", admission: "ADMISSION_STRATEGY_QUEUE" };
    const before = (await a.json("GET", "/api/v1/tasks?slot=proto-bad")).body.total;
    expect(await a.json("POST", "/api/v1/tasks", { spec: { ...base, timeoutMs: "0" } })).toEqual(bad("spec.timeoutMs: must be an integer > 0 and ≤ 604800000 ms, got 0"));
    const blank = await a.json("POST", "/api/v1/tasks", { spec: { ...base, kind: { subprocess: { command: { command: "" } } } } });
    expect(blank.body.message).toStartWith("spec.kind.subprocess.command.command: ");
    const interval = await a.json("POST", "/api/v1/tasks", { spec: { ...base, restart: "RESTART_STRATEGY_ALWAYS", restartIntervalMs: "604800001" } });
    expect(interval.body.message).toStartWith("spec.restartIntervalMs: ");
    expect((await a.json("GET", "/api/v1/tasks?slot=proto-bad")).body.total).toBe(before);
    // The REST shape keeps its own names.
    expect(await a.json("POST", "/api/v1/tasks", { spec: spec((s) => (s.timeout = 0)) })).toEqual(bad("spec.timeout: must be an integer > 0 and ≤ 604800000 ms, got 0"));
  });
});

describe("the curl examples of the API notes, verbatim", () => {
  const post = (body: string) =>
    fetch(`${a.url}/api/v1/tasks`, { method: "POST", headers: { "Content-Type": "application/json" }, body });

  test("command task", async () => {
    const res = await post(`{
"spec": {
"slot": "my-job",
"kind": {
"subprocess": {
"mode": {
"command": {
"command": "echo",
"args": ["hello world"]
}
},
"env": [],
"failOnNonZero": true
}
},
"timeout": 30000,
"restart": { "type": "never" },
"backoff": {
"jitter": "full",
"firstMs": 1000,
"maxMs": 10000,
"factor": 2.0
},
"admission": "dropIfRunning"
}
}`);
    const body: any = await res.json();
    expect({ status: res.status, body }).toEqual({ status: 201, body: { task_id: expect.stringMatching(/^tsk_[0-9A-HJKMNP-TV-Z]{26}$/), admission: "started" } });
    const task = await waitTerminal(a, body.task_id);
    expect(task.status).toEqual({ phase: "succeeded", attempt: 1, exitCode: 0 });
    const logs = await collectSse(await a.request("GET", `/api/v1/tasks/${body.task_id}/logs?follow=false`));
    expect(logs.filter((e) => e.event === "chunk").map((e) => e.data.line)).toEqual(["hello world"]);
  });

  test("bash script task", async () => {
    const res = await post(`{
"spec": {
"slot": "my-script",
"kind": {
"subprocess": {
"mode": {
"script": {
"runtime": "bash",
"body": "ZWNobyAiaGVsbG8gZnJvbSBzY3JpcHQiCg==",
"args": []
}
},
"env": [
{ "key": "ENV", "value": "production" }
],
"failOnNonZero": true
}
},
"timeout": 60000,
"restart": { "type": "onFailure" },
"backoff": {
"jitter": "equal",
"firstMs": 2000,
"maxMs": 30000,
"factor": 2.0
},
"admission": "replace"
}
}`);
    const body: any = await res.json();
    expect({ status: res.status, body }).toEqual({ status: 201, body: { task_id: expect.stringMatching(/^tsk_[0-9A-HJKMNP-TV-Z]{26}$/), admission: "started" } });
    const task = await waitTerminal(a, body.task_id);
    expect(task.status).toEqual({ phase: "succeeded", attempt: 1, exitCode: 0 });
    expect(task.spec.kind.subprocess.env).toEqual([{ key: "ENV", value: "production" }]);
    const logs = await collectSse(await a.request("GET", `/api/v1/tasks/${body.task_id}/logs?follow=false`));
    expect(logs.filter((e) => e.event === "chunk").map((e) => e.data.line)).toEqual(["hello from script"]);
  });
});
