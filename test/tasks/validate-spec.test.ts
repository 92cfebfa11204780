import { describe, expect, spyOn, test } from "bun:test";
import { AgentError } from "../../src/errors.ts";
import { ADMISSIONS, JITTERS, WELL_KNOWN_RUNTIMES, type Backoff } from "../../src/tasks/model.ts";
import { MAX_SCRIPT_BYTES, MAX_SPEC_TEXT_BYTES, SPEC_DEFAULTS, parseTaskSpec, specTextBytes } from "../../src/tasks/validate-spec.ts";

type Json = Record<string, unknown>;

/** A minimal valid spec; each call returns a fresh object the test may mutate. */
function minimal(): Json {
  return { slot: "my-job", kind: { subprocess: { mode: { command: { command: "echo", args: ["hello"] } } } } };
}

/** Minimal spec with the subprocess part replaced/extended. */
function withSub(sub: Json): Json {
  const spec = minimal();
  const kind = spec.kind as { subprocess: Json };
  kind.subprocess = { ...kind.subprocess, ...sub };
  return spec;
}

function script(fields: Json): Json {
  return withSub({ mode: { script: { runtime: "bash", body: "ZWNobyBoaQo=", ...fields } } });
}

type Limits = Parameters<typeof parseTaskSpec>[1];

/** What `parseTaskSpec` threw, as a plain object, so whole-object toEqual can compare it. */
function rejection(input: unknown, limits?: Limits): { code: string; message: string } {
  try {
    parseTaskSpec(input, limits);
  } catch (err) {
    if (!(err instanceof AgentError)) throw err;
    return { code: err.code, message: err.message };
  }
  throw new Error(`accepted: ${JSON.stringify(input)?.slice(0, 200)}`);
}

function rejects(input: unknown, message: string, limits?: Limits): void {
  expect(rejection(input, limits)).toEqual({ code: "InvalidRequest", message });
}

const b64 = (text: string | Uint8Array): string => Buffer.from(text).toString("base64");

describe("normalization and defaults", () => {
  test("seed command example is normalized with defaults filled", () => {
    const input = {
      slot: "my-job",
      kind: {
        subprocess: { mode: { command: { command: "echo", args: ["hello world"] } }, env: [], failOnNonZero: true },
      },
      timeout: 30000,
      restart: { type: "never" },
      backoff: { jitter: "full", firstMs: 1000, maxMs: 10000, factor: 2.0 },
      admission: "dropIfRunning",
    };
    expect(parseTaskSpec(input)).toEqual({
      slot: "my-job",
      kind: {
        subprocess: { mode: { command: { command: "echo", args: ["hello world"] } }, env: [], failOnNonZero: true },
      },
      timeout: 30000,
      restart: { type: "never" },
      backoff: { jitter: "full", firstMs: 1000, maxMs: 10000, factor: 2 },
      admission: "dropIfRunning",
      labels: {},
    });
  });

  test("seed script example is normalized, body kept as base64", () => {
    const input = {
      slot: "my-script",
      kind: {
        subprocess: {
          mode: { script: { runtime: "bash", body: "ZWNobyAiaGVsbG8gZnJvbSBzY3JpcHQiCg==", args: [] } },
          env: [{ key: "ENV", value: "production" }],
          failOnNonZero: true,
        },
      },
      timeout: 60000,
      restart: { type: "onFailure" },
      backoff: { jitter: "equal", firstMs: 2000, maxMs: 30000, factor: 2.0 },
      admission: "replace",
    };
    expect(parseTaskSpec(input)).toEqual({
      slot: "my-script",
      kind: {
        subprocess: {
          mode: { script: { runtime: "bash", body: "ZWNobyAiaGVsbG8gZnJvbSBzY3JpcHQiCg==", args: [] } },
          env: [{ key: "ENV", value: "production" }],
          failOnNonZero: true,
        },
      },
      timeout: 60000,
      restart: { type: "onFailure" },
      backoff: { jitter: "equal", firstMs: 2000, maxMs: 30000, factor: 2 },
      admission: "replace",
      labels: {},
    });
  });

  test("seed custom runtime example is accepted", () => {
    const spec = withSub({
      mode: { script: { runtime: { custom: { command: "ruby", flag: "-e" } }, body: "cHV0cyAnaGVsbG8n", args: [] } },
    });
    expect(parseTaskSpec(spec).kind).toEqual({
      subprocess: {
        mode: { script: { runtime: { custom: { command: "ruby", flag: "-e" } }, body: "cHV0cyAnaGVsbG8n", args: [] } },
        env: [],
        failOnNonZero: true,
      },
    });
  });

  test("omitted fields get the documented defaults; extensions stay absent", () => {
    const spec = parseTaskSpec({ slot: "s", kind: { subprocess: { mode: { command: { command: "true" } } } } });
    expect(spec).toEqual({
      slot: "s",
      kind: { subprocess: { mode: { command: { command: "true", args: [] } }, env: [], failOnNonZero: true } },
      timeout: 3600000,
      restart: { type: "never" },
      backoff: { jitter: "full", firstMs: 1000, maxMs: 30000, factor: 2 },
      admission: "queue",
      labels: {},
    });
    // toEqual ignores undefined-valued keys; the key lists must not contain them either.
    expect(Object.keys(spec)).toEqual(["slot", "kind", "timeout", "restart", "backoff", "admission", "labels"]);
    expect(Object.keys(spec.kind.subprocess)).toEqual(["mode", "env", "failOnNonZero"]);
  });

  test("script args default to [] too", () => {
    const spec = parseTaskSpec(withSub({ mode: { script: { runtime: "python", body: "" } } }));
    expect(spec.kind.subprocess.mode).toEqual({ script: { runtime: "python", body: "", args: [] } });
  });

  test("SPEC_DEFAULTS has the documented values and is deeply frozen", () => {
    expect(SPEC_DEFAULTS).toEqual({
      failOnNonZero: true,
      env: [],
      args: [],
      timeout: 3600000,
      restart: { type: "never" },
      alwaysIntervalMs: 0,
      backoff: { jitter: "full", firstMs: 1000, maxMs: 30000, factor: 2 },
      admission: "queue",
      labels: {},
    });
    expect([SPEC_DEFAULTS, SPEC_DEFAULTS.env, SPEC_DEFAULTS.args, SPEC_DEFAULTS.restart, SPEC_DEFAULTS.backoff, SPEC_DEFAULTS.labels].map(Object.isFrozen)).toEqual([true, true, true, true, true, true]);
    expect(MAX_SCRIPT_BYTES).toBe(2097152);
  });

  test("the result shares no objects with the input or the defaults", () => {
    const input = {
      slot: "s",
      kind: { subprocess: { mode: { command: { command: "echo", args: ["a"] } }, env: [{ key: "K", value: "v" }] } },
      backoff: { jitter: "none", firstMs: 5, maxMs: 10, factor: 1 },
      labels: { team: "edge" },
      resources: { pids: 4 },
    };
    const a = parseTaskSpec(input);
    const b = parseTaskSpec(minimal());
    a.kind.subprocess.env.push({ key: "X", value: "y" });
    a.labels.extra = "1";
    a.backoff.maxMs = 99;
    if ("command" in a.kind.subprocess.mode) a.kind.subprocess.mode.command.args.push("b");
    if (a.resources) a.resources.pids = 9;
    b.labels.x = "1";
    b.kind.subprocess.env.push({ key: "X", value: "y" });
    b.backoff.firstMs = 1;
    expect(input).toEqual({
      slot: "s",
      kind: { subprocess: { mode: { command: { command: "echo", args: ["a"] } }, env: [{ key: "K", value: "v" }] } },
      backoff: { jitter: "none", firstMs: 5, maxMs: 10, factor: 1 },
      labels: { team: "edge" },
      resources: { pids: 4 },
    });
    expect(parseTaskSpec(minimal()).labels).toEqual({});
    expect(parseTaskSpec(minimal()).backoff).toEqual({ jitter: "full", firstMs: 1000, maxMs: 30000, factor: 2 });
  });

  test("extensions are copied when given", () => {
    const spec = parseTaskSpec({
      ...minimal(),
      maxAttempts: 5,
      killGraceMs: 5000,
      priority: 5,
      hold: false,
      resources: { memoryBytes: 268435456, cpuMillis: 500, pids: 64 },
      labels: { team: "edge" },
    });
    expect(spec).toEqual({
      slot: "my-job",
      kind: { subprocess: { mode: { command: { command: "echo", args: ["hello"] } }, env: [], failOnNonZero: true } },
      timeout: 3600000,
      restart: { type: "never" },
      backoff: { jitter: "full", firstMs: 1000, maxMs: 30000, factor: 2 },
      admission: "queue",
      labels: { team: "edge" },
      maxAttempts: 5,
      killGraceMs: 5000,
      priority: 5,
      hold: false,
      resources: { memoryBytes: 268435456, cpuMillis: 500, pids: 64 },
    });
  });

  test("restart always without intervalMs gets intervalMs 0; with it keeps it", () => {
    expect(parseTaskSpec({ ...minimal(), restart: { type: "always" } }).restart).toEqual({ type: "always", intervalMs: 0 });
    expect(parseTaskSpec({ ...minimal(), restart: { type: "always", intervalMs: 5000 } }).restart).toEqual({
      type: "always",
      intervalMs: 5000,
    });
  });

  test("failOnNonZero false and cwd are kept", () => {
    expect(parseTaskSpec(withSub({ failOnNonZero: false, cwd: "/srv/app" })).kind.subprocess).toEqual({
      mode: { command: { command: "echo", args: ["hello"] } },
      env: [],
      cwd: "/srv/app",
      failOnNonZero: false,
    });
  });
});

describe("slot", () => {
  const good = ["a", "my-job", "A.b_c-9", "...", ".a", "x".repeat(64)];
  for (const slot of good) {
    test(`accepts ${JSON.stringify(slot.length > 10 ? `${slot.length} chars` : slot)}`, () => {
      expect(parseTaskSpec({ ...minimal(), slot }).slot).toBe(slot);
    });
  }
  const charset = "must be 1..64 characters of [A-Za-z0-9._-]";
  const bad: [string, string][] = [
    ["", `spec.slot: ${charset}, got ""`],
    ["a b", `spec.slot: ${charset}, got "a b"`],
    ["a/b", `spec.slot: ${charset}, got "a/b"`],
    ["é", `spec.slot: ${charset}, got "é"`],
    ["ab\u00e9", `spec.slot: ${charset}, got "abé"`],
    ["x".repeat(65), `spec.slot: ${charset}, got "${"x".repeat(65)}"`],
    [".", `spec.slot: must not be "." or "..", got "."`],
    ["..", `spec.slot: must not be "." or "..", got ".."`],
  ];
  for (const [slot, message] of bad) {
    test(`rejects ${JSON.stringify(slot.slice(0, 10))} (length ${slot.length})`, () => rejects({ ...minimal(), slot }, message));
  }
  test("a 64-byte limit: 63 ASCII + one 2-byte char is rejected (only ASCII allowed)", () => {
    rejects({ ...minimal(), slot: `${"x".repeat(62)}é` }, `spec.slot: ${charset}, got "${"x".repeat(62)}é"`);
  });
  test("slot of the wrong type", () => rejects({ ...minimal(), slot: 12 }, "spec.slot: must be a string, got 12"));
});

describe("command mode", () => {
  test("rejects an empty or blank command", () => {
    rejects(
      withSub({ mode: { command: { command: "" } } }),
      'spec.kind.subprocess.mode.command.command: must not be empty or blank, got ""',
    );
    rejects(
      withSub({ mode: { command: { command: " \t" } } }),
      'spec.kind.subprocess.mode.command.command: must not be empty or blank, got " \\t"',
    );
  });
  test("accepts a command with surrounding spaces (checked after trim, kept as given)", () => {
    expect(parseTaskSpec(withSub({ mode: { command: { command: " ls " } } })).kind.subprocess.mode).toEqual({
      command: { command: " ls ", args: [] },
    });
  });
  test("args must be strings", () => {
    rejects(
      withSub({ mode: { command: { command: "echo", args: ["a", 3] } } }),
      "spec.kind.subprocess.mode.command.args[1]: must be a string, got 3",
    );
    rejects(
      withSub({ mode: { command: { command: "echo", args: "a b" } } }),
      'spec.kind.subprocess.mode.command.args: must be an array of strings, got "a b"',
    );
    rejects(
      script({ args: [null] }),
      "spec.kind.subprocess.mode.script.args[0]: must be a string, got null",
    );
  });
  test("NUL in command or args is rejected", () => {
    rejects(
      withSub({ mode: { command: { command: "echo", args: ["a\0b"] } } }),
      'spec.kind.subprocess.mode.command.args[0]: must not contain NUL characters, got "a\\u0000b"',
    );
  });
  test("mode needs exactly one of command or script", () => {
    rejects(
      withSub({ mode: { command: { command: "echo" }, script: { runtime: "bash", body: "" } } }),
      'spec.kind.subprocess.mode: must have exactly one of "command" or "script", got more than one: {"command":{"command":"echo"},"script":{"runtime":"bash","body":""}}',
    );
    rejects(
      withSub({ mode: {} }),
      'spec.kind.subprocess.mode: must have exactly one of "command" or "script", got none: {}',
    );
    rejects(
      withSub({ mode: "echo hi" }),
      'spec.kind.subprocess.mode: must be an object with exactly one of "command" or "script", got "echo hi"',
    );
  });
  test("inside the chosen mode branch, the precise problem is reported", () => {
    rejects(
      withSub({ mode: { command: { args: [] } } }),
      "spec.kind.subprocess.mode.command.command: required field missing (expected a string)",
    );
    rejects(
      withSub({ mode: { script: { runtime: "bash" } } }),
      "spec.kind.subprocess.mode.script.body: required field missing (expected a string)",
    );
  });
});

describe("script body", () => {
  const body = "spec.kind.subprocess.mode.script.body";
  const rule = 'must be standard base64 (A-Z a-z 0-9 + /, "=" padding, no whitespace)';
  const good: [string, string][] = [
    ["", ""],
    ["QQ==", "A"],
    ["QUI=", "AB"],
    ["QUJD", "ABC"],
    [b64("#!/bin/sh\necho héllo ✓\n"), "utf-8 text"],
    ["w6k+Pw==", "the + and / characters"],
    ["Pz8/", "a body without padding"],
  ];
  for (const [value, what] of good) {
    test(`accepts ${what}`, () => {
      expect(parseTaskSpec(script({ body: value })).kind.subprocess.mode).toEqual({
        script: { runtime: "bash", body: value, args: [] },
      });
    });
  }
  const bad: [string, string][] = [
    ["QQ", `${body}: ${rule}; length must be a multiple of 4 with at most 2 "=", got "QQ"`],
    ["QQ=", `${body}: ${rule}; length must be a multiple of 4 with at most 2 "=", got "QQ="`],
    ["Q===", `${body}: ${rule}; length must be a multiple of 4 with at most 2 "=", got "Q==="`],
    ["QQ==QQ==", `${body}: ${rule}; invalid character "=" at offset 2 ("=" is only allowed as trailing padding), got "QQ==QQ=="`],
    ["Pz8_", `${body}: ${rule}; invalid character "_" at offset 3 (URL-safe base64 is not accepted), got "Pz8_"`],
    ["-_-_", `${body}: ${rule}; invalid character "-" at offset 0 (URL-safe base64 is not accepted), got "-_-_"`],
    ["QUJD\nQUJD", `${body}: ${rule}; invalid character "\\n" at offset 4 (no whitespace or line breaks; encode with base64 -w0), got "QUJD\\nQUJD"`],
    [" QUJD", `${body}: ${rule}; invalid character " " at offset 0 (no whitespace or line breaks; encode with base64 -w0), got " QUJD"`],
    ["QUJD\r\n", `${body}: ${rule}; invalid character "\\r" at offset 4 (no whitespace or line breaks; encode with base64 -w0), got "QUJD\\r\\n"`],
    ["QU*D", `${body}: ${rule}; invalid character "*" at offset 2, got "QU*D"`],
    ["QUé=", `${body}: ${rule}; invalid character "é" at offset 2, got "QUé="`],
  ];
  for (const [value, message] of bad) {
    test(`rejects ${JSON.stringify(value)}`, () => rejects(script({ body: value }), message));
  }
  test("rejects bodies that decode to invalid UTF-8", () => {
    rejects(script({ body: "/w==" }), `${body}: decoded script must be valid UTF-8, got "/w=="`);
    const lone = b64(new Uint8Array([0x65, 0x63, 0x68, 0x6f, 0xc3, 0x28])); // truncated 2-byte sequence
    rejects(script({ body: lone }), `${body}: decoded script must be valid UTF-8, got "${lone}"`);
    const surrogate = b64(new Uint8Array([0xed, 0xa0, 0x80])); // UTF-8-encoded surrogate half
    rejects(script({ body: surrogate }), `${body}: decoded script must be valid UTF-8, got "${surrogate}"`);
  });
  test("exactly 2 MiB decoded is accepted, 2 MiB + 1 is rejected", () => {
    const exact = b64(new Uint8Array(MAX_SCRIPT_BYTES).fill(0x61));
    expect(parseTaskSpec(script({ body: exact })).kind.subprocess.mode).toEqual({
      script: { runtime: "bash", body: exact, args: [] },
    });
    const over = b64(new Uint8Array(MAX_SCRIPT_BYTES + 1).fill(0x61));
    rejects(script({ body: over }), `${body}: decoded script must be ≤ 2097152 bytes, got 2097153 bytes`);
  });
  test("the size limit can be overridden", () => {
    rejects(script({ body: "QUJD" }), `${body}: decoded script must be ≤ 2 bytes, got 3 bytes`, { maxScriptBytes: 2 });
    expect(parseTaskSpec(script({ body: "QUI=" }), { maxScriptBytes: 2 }).slot).toBe("my-job");
  });
  test("body of the wrong type", () => rejects(script({ body: 5 }), `${body}: must be a string, got 5`));
});

describe("script runtime", () => {
  const runtime = "spec.kind.subprocess.mode.script.runtime";
  for (const name of WELL_KNOWN_RUNTIMES) {
    test(`accepts ${name}`, () => {
      expect(parseTaskSpec(script({ runtime: name })).kind.subprocess.mode).toEqual({
        script: { runtime: name, body: "ZWNobyBoaQo=", args: [] },
      });
    });
  }
  test("unknown well-known name lists the allowed values", () => {
    rejects(script({ runtime: "ruby" }), `${runtime}: must be one of "bash", "python", "node" or {"custom": …}, got "ruby"`);
    rejects(script({ runtime: 1 }), `${runtime}: must be one of "bash", "python", "node" or {"custom": …}, got 1`);
    rejects(script({ runtime: { ruby: {} } }), `${runtime}: must be one of "bash", "python", "node" or {"custom": …}, got {"ruby":{}}`);
  });
  test("custom command and flag must be non-empty", () => {
    rejects(
      script({ runtime: { custom: { command: "", flag: "-e" } } }),
      `${runtime}.custom.command: must not be empty or blank, got ""`,
    );
    rejects(
      script({ runtime: { custom: { command: "ruby", flag: " " } } }),
      `${runtime}.custom.flag: must not be empty or blank, got " "`,
    );
  });
  test("custom runtime structure problems are precise", () => {
    rejects(script({ runtime: { custom: { command: "ruby" } } }), `${runtime}.custom.flag: required field missing (expected a string)`);
    rejects(script({ runtime: { custom: { command: "ruby", flag: "-e", x: 1 } } }), `${runtime}.custom.x: unknown field`);
    rejects(script({ runtime: { custom: { command: "ruby", flag: "-e" }, y: 1 } }), `${runtime}.y: unknown field`);
  });
});

describe("env", () => {
  const env = "spec.kind.subprocess.env";
  test("later duplicate wins, in first-seen order", () => {
    const spec = parseTaskSpec(
      withSub({
        env: [
          { key: "A", value: "1" },
          { key: "B", value: "2" },
          { key: "A", value: "3" },
          { key: "C", value: "" },
          { key: "B", value: "4" },
        ],
      }),
    );
    expect(spec.kind.subprocess.env).toEqual([
      { key: "A", value: "3" },
      { key: "B", value: "4" },
      { key: "C", value: "" },
    ]);
  });
  test("accepts unusual but legal keys and values", () => {
    expect(parseTaskSpec(withSub({ env: [{ key: "lower.case-1", value: "a=b c" }] })).kind.subprocess.env).toEqual([
      { key: "lower.case-1", value: "a=b c" },
    ]);
  });
  test("rejects bad keys and values", () => {
    rejects(withSub({ env: [{ key: "", value: "x" }] }), `${env}[0].key: must not be empty, got ""`);
    rejects(withSub({ env: [{ key: "OK", value: "" }, { key: "A=B", value: "x" }] }), `${env}[1].key: must not contain "=", got "A=B"`);
    rejects(withSub({ env: [{ key: "A\0", value: "x" }] }), `${env}[0].key: must not contain NUL characters, got "A\\u0000"`);
    rejects(withSub({ env: [{ key: "A", value: "x\0y" }] }), `${env}[0].value: must not contain NUL characters, got "x\\u0000y"`);
  });
  test("structure of env entries", () => {
    rejects(withSub({ env: [{ key: "A" }] }), `${env}[0].value: required field missing (expected a string)`);
    rejects(withSub({ env: [{ key: "A", value: 1 }] }), `${env}[0].value: must be a string, got 1`);
    rejects(withSub({ env: [{ key: "A", value: "1", secret: true }] }), `${env}[0].secret: unknown field`);
    rejects(withSub({ env: { A: "1" } }), `${env}: must be an array of objects, got {"A":"1"}`);
  });
});

describe("cwd", () => {
  test("accepts absolute paths, even ones that do not exist", () => {
    expect(parseTaskSpec(withSub({ cwd: "/definitely/not/here" })).kind.subprocess.cwd).toBe("/definitely/not/here");
  });
  test("rejects relative or empty paths", () => {
    rejects(withSub({ cwd: "srv/app" }), 'spec.kind.subprocess.cwd: must be an absolute path, got "srv/app"');
    rejects(withSub({ cwd: "" }), 'spec.kind.subprocess.cwd: must be an absolute path, got ""');
    rejects(withSub({ cwd: "./x" }), 'spec.kind.subprocess.cwd: must be an absolute path, got "./x"');
  });
});

describe("numeric fields", () => {
  const cases: [string, unknown[], [unknown, string][]][] = [
    [
      "timeout",
      [1, 30000, 604800000],
      [
        [0, "spec.timeout: must be an integer > 0 and ≤ 604800000 ms, got 0"],
        [-5, "spec.timeout: must be an integer > 0 and ≤ 604800000 ms, got -5"],
        [604800001, "spec.timeout: must be an integer > 0 and ≤ 604800000 ms, got 604800001"],
        [1.5, "spec.timeout: must be an integer > 0 and ≤ 604800000 ms, got 1.5"],
        ["30000", 'spec.timeout: must be an integer > 0 and ≤ 604800000 ms, got "30000"'],
      ],
    ],
    [
      "maxAttempts",
      [1, 1000],
      [
        [0, "spec.maxAttempts: must be an integer ≥ 1 and ≤ 4294967295, got 0"],
        [2.5, "spec.maxAttempts: must be an integer ≥ 1 and ≤ 4294967295, got 2.5"],
      ],
    ],
    [
      "priority",
      [0, 10],
      [
        [-1, "spec.priority: must be an integer ≥ 0 and ≤ 10, got -1"],
        [11, "spec.priority: must be an integer ≥ 0 and ≤ 10, got 11"],
      ],
    ],
    [
      "killGraceMs",
      [0, 600000],
      [
        [-1, "spec.killGraceMs: must be an integer ≥ 0 and ≤ 600000 ms, got -1"],
        [600001, "spec.killGraceMs: must be an integer ≥ 0 and ≤ 600000 ms, got 600001"],
      ],
    ],
  ];
  for (const [field, goods, bads] of cases) {
    test(`${field} accepts ${goods.join(", ")}`, () => {
      for (const v of goods) expect(parseTaskSpec({ ...minimal(), [field]: v })).toMatchObject({ [field]: v });
    });
    for (const [v, message] of bads) {
      test(`${field} rejects ${JSON.stringify(v)}`, () => rejects({ ...minimal(), [field]: v }, message));
    }
  }
  test("resources must be positive integers", () => {
    rejects({ ...minimal(), resources: { memoryBytes: 0 } }, "spec.resources.memoryBytes: must be an integer ≥ 1 and ≤ 9007199254740991, got 0");
    rejects({ ...minimal(), resources: { cpus: 1 } }, "spec.resources.cpus: unknown field");
  });
  test("hold must be a boolean", () => rejects({ ...minimal(), hold: "yes" }, 'spec.hold: must be a boolean, got "yes"'));
  test("failOnNonZero must be a boolean", () =>
    rejects(withSub({ failOnNonZero: 1 }), "spec.kind.subprocess.failOnNonZero: must be a boolean, got 1"));
});

describe("backoff", () => {
  const ok = { jitter: "full", firstMs: 1000, maxMs: 10000, factor: 2 };
  test("accepts maxMs == firstMs and factor 1", () => {
    const backoff: Backoff = { jitter: "none", firstMs: 500, maxMs: 500, factor: 1 };
    expect(parseTaskSpec({ ...minimal(), backoff }).backoff).toEqual(backoff);
  });
  test("firstMs must be > 0", () => {
    rejects({ ...minimal(), backoff: { ...ok, firstMs: 0 } }, "spec.backoff.firstMs: must be an integer > 0 and ≤ 604800000 ms, got 0");
  });
  test("maxMs must be ≥ firstMs", () => {
    rejects({ ...minimal(), backoff: { ...ok, firstMs: 5000, maxMs: 1000 } }, "spec.backoff.maxMs: must be ≥ backoff.firstMs (5000 ms), got 1000");
  });
  test("factor must be finite and ≥ 1", () => {
    rejects({ ...minimal(), backoff: { ...ok, factor: 0.5 } }, "spec.backoff.factor: must be a finite number ≥ 1, got 0.5");
    rejects({ ...minimal(), backoff: { ...ok, factor: Number.POSITIVE_INFINITY } }, "spec.backoff.factor: must be a finite number ≥ 1, got Infinity");
    rejects({ ...minimal(), backoff: { ...ok, factor: Number.NaN } }, "spec.backoff.factor: must be a finite number ≥ 1, got NaN");
  });
  test("all four fields are required when backoff is given", () => {
    rejects({ ...minimal(), backoff: { jitter: "full", firstMs: 1, maxMs: 2 } }, "spec.backoff.factor: required field missing (expected a finite number ≥ 1)");
  });
});

describe("enums list the allowed values", () => {
  test("admission", () => {
    for (const admission of ADMISSIONS) {
      expect(parseTaskSpec({ ...minimal(), admission }).admission).toBe(admission);
    }
    rejects(
      { ...minimal(), admission: "sometimes" },
      'spec.admission: must be one of "dropIfRunning", "replace", "queue", got "sometimes"',
    );
    rejects(
      { ...minimal(), admission: "DROP_IF_RUNNING" },
      'spec.admission: must be one of "dropIfRunning", "replace", "queue", got "DROP_IF_RUNNING"',
    );
  });
  test("backoff.jitter", () => {
    for (const jitter of JITTERS) {
      expect(parseTaskSpec({ ...minimal(), backoff: { jitter, firstMs: 1, maxMs: 1, factor: 1 } }).backoff.jitter).toBe(jitter);
    }
    rejects(
      { ...minimal(), backoff: { jitter: "random", firstMs: 1, maxMs: 1, factor: 1 } },
      'spec.backoff.jitter: must be one of "none", "full", "equal", "decorrelated", got "random"',
    );
  });
  test("restart.type", () => {
    rejects({ ...minimal(), restart: { type: "sometimes" } }, 'spec.restart.type: must be one of "never", "onFailure", "always", got "sometimes"');
    rejects({ ...minimal(), restart: {} }, 'spec.restart.type: required field missing (expected one of "never", "onFailure", "always")');
    rejects(
      { ...minimal(), restart: "never" },
      'spec.restart: must be an object with "type" one of "never", "onFailure", "always", got "never"',
    );
  });
  test("restart branches are checked precisely", () => {
    rejects({ ...minimal(), restart: { type: "never", intervalMs: 5 } }, "spec.restart.intervalMs: unknown field");
    rejects({ ...minimal(), restart: { type: "always", intervalMs: -1 } }, "spec.restart.intervalMs: must be an integer ≥ 0 and ≤ 604800000 ms, got -1");
    rejects({ ...minimal(), restart: { type: "onFailure", max: 3 } }, "spec.restart.max: unknown field");
  });
});

describe("labels", () => {
  test("accepts keys of [A-Za-z0-9._/-] up to 63 and values up to 256 characters", () => {
    const labels = { team: "edge", "app.kubernetes.io/name": "web", a_b: "1", [`${"k".repeat(63)}`]: "v".repeat(256), "-x": "" };
    expect(parseTaskSpec({ ...minimal(), labels }).labels).toEqual(labels);
  });
  test("value length counts characters, not UTF-16 units", () => {
    const value = "😀".repeat(256);
    expect(parseTaskSpec({ ...minimal(), labels: { e: value } }).labels).toEqual({ e: value });
  });
  test("rejects bad keys", () => {
    const rule = "key must be 1..63 characters of [A-Za-z0-9._/-]";
    rejects({ ...minimal(), labels: { "a b": "x" } }, `spec.labels["a b"]: ${rule}, got "a b"`);
    rejects({ ...minimal(), labels: { "": "x" } }, `spec.labels[""]: ${rule}, got ""`);
    rejects({ ...minimal(), labels: { "a:b": "x" } }, `spec.labels["a:b"]: ${rule}, got "a:b"`);
    rejects({ ...minimal(), labels: { "tëam": "x" } }, `spec.labels["tëam"]: ${rule}, got "tëam"`);
    const long = "k".repeat(64);
    rejects({ ...minimal(), labels: { [long]: "x" } }, `spec.labels.${long}: ${rule}, got "${long}"`);
  });
  test("rejects long or non-string values", () => {
    const value = "v".repeat(257);
    rejects({ ...minimal(), labels: { team: value } }, `spec.labels.team: value must be at most 256 characters, got 257: "${"v".repeat(80)}…"`);
    rejects({ ...minimal(), labels: { team: 1 } }, "spec.labels.team: must be a string, got 1");
    rejects({ ...minimal(), labels: ["a"] }, 'spec.labels: must be an object, got ["a"]');
  });
  test("at most 64 labels", () => {
    const many = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, "v"]));
    expect(Object.keys(parseTaskSpec({ ...minimal(), labels: many(64) }).labels)).toHaveLength(64);
    rejects({ ...minimal(), labels: many(65) }, "spec.labels: at most 64 labels, got 65");
  });
});

describe("structure", () => {
  test("unknown fields at several depths", () => {
    const cases: [Json, string][] = [
      [{ ...minimal(), timout: 5 }, "spec.timout: unknown field"],
      [{ ...minimal(), kind: { subprocess: { mode: { command: { command: "x" } } }, extra: 1 } }, "spec.kind.extra: unknown field"],
      [withSub({ foo: 1 }), "spec.kind.subprocess.foo: unknown field"],
      [withSub({ mode: { command: { command: "x", argv: [] } } }), "spec.kind.subprocess.mode.command.argv: unknown field"],
      [script({ interpreter: "sh" }), "spec.kind.subprocess.mode.script.interpreter: unknown field"],
      [{ ...minimal(), backoff: { jitter: "full", firstMs: 1, maxMs: 1, factor: 1, cap: 5 } }, "spec.backoff.cap: unknown field"],
      [{ ...minimal(), "weird key": 1 }, 'spec["weird key"]: unknown field'],
    ];
    for (const [input, message] of cases) rejects(input, message);
  });
  test("unknown field is reported before a bad known value (a typo must not become a default)", () => {
    rejects({ ...minimal(), timout: 5, timeout: 0 }, "spec.timout: unknown field");
  });
  test("missing required fields, with a hint about a likely misspelling", () => {
    rejects({ kind: minimal().kind }, "spec.slot: required field missing (expected a string)");
    rejects({ slto: "x", kind: minimal().kind }, 'spec.slot: required field missing (expected a string); unknown field "slto" present');
    rejects({ slot: "x" }, "spec.kind: required field missing (expected an object)");
    rejects({ slot: "x", kind: {} }, "spec.kind.subprocess: required field missing (expected an object)");
  });
  test("other kinds are unsupported", () => {
    rejects({ slot: "x", kind: { wasm: { module: "m" } } }, 'spec.kind.wasm: unsupported kind (only "subprocess" is supported)');
    rejects({ slot: "x", kind: { container: { image: "i" } } }, 'spec.kind.container: unsupported kind (only "subprocess" is supported)');
  });
  test("non-object spec", () => {
    rejects(undefined, "spec: must be an object, got undefined");
    rejects(null, "spec: must be an object, got null");
    rejects("x", 'spec: must be an object, got "x"');
    rejects([], "spec: must be an object, got []");
  });
  test("structural problems come before semantic ones", () => {
    rejects({ ...minimal(), slot: "a b", priority: 99 }, "spec.priority: must be an integer ≥ 0 and ≤ 10, got 99");
  });
  test("long bad values and keys are cut after 80 characters", () => {
    rejects({ ...minimal(), admission: "q".repeat(500) }, `spec.admission: must be one of "dropIfRunning", "replace", "queue", got "${"q".repeat(80)}…"`);
    rejects({ ...minimal(), ["y".repeat(100)]: 1 }, `spec.${"y".repeat(80)}…: unknown field`);
    const obj = { list: Array.from({ length: 50 }, (_, i) => i) };
    const shown = JSON.stringify(obj).slice(0, 80);
    rejects({ ...minimal(), slot: obj }, `spec.slot: must be a string, got ${shown}…`);
  });
});

describe("size: every task must fit one 4 MiB gRPC message", () => {
  const LIMIT = MAX_SPEC_TEXT_BYTES;
  const tooLarge = (size: number, max = LIMIT) => ({
    code: "PayloadTooLarge",
    message: `spec: ${size} bytes of text, more than the ${max} a task may hold (it must fit one 4 MiB gRPC message)`,
  });
  /** The minimal spec with `args` as its command's arguments. */
  const withArgs = (args: string[]) => withSub({ mode: { command: { command: "echo", args } } });
  /** The size of `input` once normalized, whatever the limit. */
  const sizeOf = (input: unknown) => specTextBytes(parseTaskSpec(input, { maxSpecBytes: Number.POSITIVE_INFINITY }));

  test("the limit is 4 MiB − 64 KiB", () => {
    expect(LIMIT).toBe(4_128_768);
  });

  test("text counts UTF-8 bytes, a tag and a length per string and entry, and 256 for the rest", () => {
    // slot "my-job" 1+1+6, command "echo" 1+1+4, arg "hello" 1+1+5.
    expect(specTextBytes(parseTaskSpec(minimal()))).toBe(256 + 8 + 6 + 7);
    const spec = parseTaskSpec({
      ...withSub({
        mode: { script: { runtime: { custom: { command: "ruby", flag: "-e" } }, body: "ZWNobyBoaQo=", args: ["żółw 🐢", "\uFFFD", ""] } },
        env: [{ key: "K", value: "v" }],
        cwd: "/srv",
      }),
      labels: { team: "edge" },
    });
    expect(specTextBytes(spec)).toBe(
      256 +
        8 + // slot
        6 + 4 + // custom runtime command, flag
        14 + // body (12 characters of base64)
        14 + 5 + 2 + // args: 12 UTF-8 bytes, U+FFFD (3 bytes), empty
        (2 + 3 + 3) + // env entry: its own tag and length, then key and value
        6 + // cwd
        (2 + 6 + 6), // label entry
    );
    // A string past 127 bytes takes a 2-byte length, past 16 383 a 3-byte one.
    expect(sizeOf(withArgs(["x".repeat(128)])) - sizeOf(withArgs([""]))).toBe(128 + 1);
    expect(sizeOf(withArgs(["x".repeat(16_384)])) - sizeOf(withArgs([""]))).toBe(16_384 + 2);
  });

  test("a spec of exactly the limit is accepted; one byte more is PayloadTooLarge, naming the size and the limit", () => {
    // One huge argument: its 4-byte length adds 3 bytes to the 2 an empty one takes.
    const fill = LIMIT - sizeOf(withArgs([""])) - 3;
    const exact = parseTaskSpec(withArgs(["a".repeat(fill)]));
    expect(specTextBytes(exact)).toBe(LIMIT);
    expect(rejection(withArgs(["a".repeat(fill + 1)]))).toEqual(tooLarge(LIMIT + 1));
    expect(rejection(withArgs(["a".repeat(4_194_304)]))).toEqual(tooLarge(sizeOf(withArgs(["a".repeat(4_194_304)]))));
  });

  test("multi-byte text is measured in UTF-8 bytes, not bounded by UTF-16 units", () => {
    // 1.5 M units of "é": 4.5 MB at 3 bytes a unit, 3 MB in UTF-8 — accepted.
    const e = "é".repeat(1_500_000);
    expect(parseTaskSpec(withArgs([e])).kind.subprocess.mode).toEqual({ command: { command: "echo", args: [e] } });
    // 700 k turtles: 1.4 M units, 2.8 MB; 1.1 M turtles: 4.4 MB — too large.
    expect(specTextBytes(parseTaskSpec(withArgs(["🐢".repeat(700_000)])))).toBe(sizeOf(withArgs([""])) + 2_800_000 + 3);
    const turtles = withArgs(["🐢".repeat(1_100_000)]);
    expect(rejection(turtles)).toEqual(tooLarge(sizeOf(withArgs([""])) + 4_400_000 + 3));
    // 1.4 M "€" (3 bytes each): 4.2 MB.
    expect(rejection(withArgs(["€".repeat(1_400_000)])).code).toBe("PayloadTooLarge");
  });

  test("every string and entry counts: many small env entries and labels add up", () => {
    const labels = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`l${i}`, "w".repeat(256)]));
    // Env entries up to just below the limit: the labels tip it over.
    const entry = (i: number) => ({ key: `K${i}`, value: "v".repeat(200) });
    const base = sizeOf(withSub({ env: [entry(10_000)] }));
    const each = sizeOf(withSub({ env: [entry(10_000), entry(10_001)] })) - base; // keys of 6 characters from 10 000 on
    const env = Array.from({ length: 1 + Math.floor((LIMIT - base) / each) }, (_, i) => entry(10_000 + i));
    const input = { ...withSub({ env }), labels };
    const size = sizeOf(input);
    expect(size).toBeGreaterThan(LIMIT);
    expect(rejection(input)).toEqual(tooLarge(size));
    // Without the labels it fits.
    expect(parseTaskSpec(withSub({ env })).kind.subprocess.env).toHaveLength(env.length);
    // Many empty args: 2 bytes each.
    expect(sizeOf(withArgs(Array.from({ length: 1_000 }, () => "")))).toBe(sizeOf(withArgs([])) + 2_000);
  });

  test("measured after normalization: a duplicate env key counts once", () => {
    // 5 MB as given, 2.5 MB once the later value has replaced the earlier one.
    const env = [
      { key: "A", value: "v".repeat(2_500_000) },
      { key: "A", value: "w".repeat(2_500_000) },
    ];
    expect(parseTaskSpec(withSub({ env })).kind.subprocess.env).toEqual([{ key: "A", value: "w".repeat(2_500_000) }]);
  });

  test("the script body limit is unchanged: 2 MiB decoded fits, 2 MiB + 1 is still InvalidRequest; other rules come first", () => {
    const body = b64(new Uint8Array(MAX_SCRIPT_BYTES).fill(0x61));
    expect(specTextBytes(parseTaskSpec(script({ body })))).toBeLessThan(LIMIT);
    rejects(
      script({ body: b64(new Uint8Array(MAX_SCRIPT_BYTES + 1).fill(0x61)) }),
      "spec.kind.subprocess.mode.script.body: decoded script must be ≤ 2097152 bytes, got 2097153 bytes",
    );
    // A larger script limit is still bounded by what a task may hold.
    const big = script({ body: b64(new Uint8Array(3 * 1024 * 1024).fill(0x61)) });
    expect(rejection(big, { maxScriptBytes: 4 * 1024 * 1024 })).toEqual(tooLarge(sizeOf(script({ body: "" })) + 4_194_304 + 3));
    // A too-large spec with another problem reports the other problem.
    rejects({ ...withArgs(["a".repeat(LIMIT)]), slot: ".." }, 'spec.slot: must not be "." or "..", got ".."');
  });

  test("the limit can be lowered (tests, embedders)", () => {
    expect(rejection(minimal(), { maxSpecBytes: 276 })).toEqual(tooLarge(277, 276));
    expect(parseTaskSpec(minimal(), { maxSpecBytes: 277 }).slot).toBe("my-job");
  });

  test("a spec that is clearly small — a 2 MiB script included — is not measured in UTF-8 (the common path stays cheap)", () => {
    const byteLength = spyOn(Buffer, "byteLength");
    try {
      parseTaskSpec(script({ body: b64(new Uint8Array(MAX_SCRIPT_BYTES).fill(0x61)), args: ["żółw"] }));
      parseTaskSpec({ ...withSub({ env: [{ key: "K", value: "v" }] }), labels: { team: "edge" } });
      expect(byteLength).not.toHaveBeenCalled();
      // One that might be too large is.
      parseTaskSpec(withArgs(["é".repeat(1_500_000)]));
      expect(byteLength).toHaveBeenCalled();
    } finally {
      byteLength.mockRestore();
    }
  });
});
