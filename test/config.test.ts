/**
 * parseConfig: bounds of numeric flags, booleans, the fleet settings (URLs
 * checked at start-up, fleet flags refused without a control plane, the
 * control-plane token) and what reaches a task's environment. Pure calls,
 * plus one real `tasklane serve` for the exit status and the untouched data dir.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { failedStart } from "./helpers/process.ts";
import { ConfigError, MAX_AGENT_LABEL, MAX_HEARTBEAT_MS, MIN_HEARTBEAT_MS, MAX_KILL_GRACE_MS, parseConfig } from "../src/config.ts";

const ROOT = join(import.meta.dir, "..");
const CP = "http://127.0.0.1:1";

/** The ConfigError message of `parseConfig(argv, env)`; fails when it does not throw one. */
function refusal(argv: string[], env: Record<string, string> = {}): string {
  try {
    parseConfig(argv, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error(`parseConfig(${JSON.stringify(argv)}, ${JSON.stringify(env)}) did not throw`);
}

describe("numeric bounds", () => {
  test("--max-line is 16 bytes to 1MiB: a cut line, its invalid bytes replaced (3 bytes each), must fit one 4 MiB gRPC message", () => {
    expect(parseConfig(["--max-line", "1MiB"], {}).maxLineBytes).toBe(1 << 20);
    expect(refusal(["--max-line", "1048577"])).toBe('--max-line: must be at most 1MiB, got "1048577"');
    expect(refusal([], { TASKLANE_MAX_LINE: "6MiB" })).toBe('TASKLANE_MAX_LINE: must be at most 1MiB, got "6MiB"');
    expect(refusal(["--max-line", "15"])).toBe('--max-line: must be at least 16 bytes, got "15"');
  });

  test("--kill-grace-ms is at most 600000 (a task's own killGraceMs bound); past 2^31 its timer would fire at once", () => {
    expect(MAX_KILL_GRACE_MS).toBe(600_000);
    expect(parseConfig(["--kill-grace-ms", "600000"], {}).killGraceMs).toBe(600_000);
    expect(refusal(["--kill-grace-ms", "600001"])).toBe('--kill-grace-ms: must be at most 600000, got "600001"');
    expect(refusal(["--kill-grace-ms", "3000000000"])).toBe('--kill-grace-ms: must be at most 600000, got "3000000000"');
    expect(refusal([], { TASKLANE_KILL_GRACE_MS: "3000000000" })).toBe('TASKLANE_KILL_GRACE_MS: must be at most 600000, got "3000000000"');
  });

  test("--heartbeat is at most 1h, so its timer and heartbeatIntervalS (int32) stay in range", () => {
    expect(MAX_HEARTBEAT_MS).toBe(3_600_000);
    expect(parseConfig(["--control-plane", CP, "--heartbeat", "1h"], {}).heartbeatMs).toBe(3_600_000);
    expect(refusal(["--control-plane", CP, "--heartbeat", "25d"])).toBe('--heartbeat: must be at most 1h, got "25d"');
    expect(refusal(["--control-plane", CP, "--heartbeat", "3600001"])).toBe('--heartbeat: must be at most 1h, got "3600001"');
    expect(refusal(["--control-plane", CP], { TASKLANE_HEARTBEAT: "61m" })).toBe('TASKLANE_HEARTBEAT: must be at most 1h, got "61m"');
  });

  test("--agent-id and --agent-name are one printable line of at most 256 characters: they go into every heartbeat and log line", () => {
    expect(MAX_AGENT_LABEL).toBe(256);
    const c = parseConfig(["--control-plane", CP, "--agent-id", "edge-7", "--agent-name", "Edge 7 (rack b)"], {});
    expect([c.agentId, c.agentName]).toEqual(["edge-7", "Edge 7 (rack b)"]);
    expect(parseConfig(["--control-plane", CP, "--agent-name", "é".repeat(256)], {}).agentName).toHaveLength(256);
    expect(refusal(["--control-plane", CP, "--agent-name", "x".repeat(257)])).toBe("--agent-name: must be at most 256 characters, got 257");
    expect(refusal(["--control-plane", CP], { TASKLANE_AGENT_ID: "a\nb" })).toBe("TASKLANE_AGENT_ID: must not contain control characters (a newline, a tab…)");
    expect(refusal(["--control-plane", CP, "--agent-id", "a\u0000"])).toBe("--agent-id: must not contain control characters (a newline, a tab…)");
    expect(refusal(["--control-plane", CP, "--agent-name", " edge"])).toBe("--agent-name: must not start or end with white space");
  });

  test("--heartbeat is at least 100ms: a plain number (milliseconds) meant as seconds is refused, not sent 33 times a second", () => {
    expect(MIN_HEARTBEAT_MS).toBe(100);
    expect(parseConfig(["--control-plane", CP, "--heartbeat", "100ms"], {}).heartbeatMs).toBe(100);
    expect(refusal(["--control-plane", CP], { TASKLANE_HEARTBEAT: "30" })).toBe('TASKLANE_HEARTBEAT: must be at least 100ms (a plain number is milliseconds), got "30"');
    expect(refusal(["--control-plane", CP, "--heartbeat", "1ms"])).toBe('--heartbeat: must be at least 100ms (a plain number is milliseconds), got "1ms"');
  });

  test("--max-concurrent is at most 1000000 (gRPC Info.max_concurrent is a uint32)", () => {
    expect(parseConfig(["--max-concurrent", "1000000"], {}).maxConcurrent).toBe(1_000_000);
    expect(refusal(["--max-concurrent", "4294967296"])).toBe('--max-concurrent: must be at most 1000000, got "4294967296"');
  });

  test("every other number stays an exact integer: past 2^53 - 1 it is refused, not rounded", () => {
    const huge = "9".repeat(30);
    expect(refusal(["--max-tasks", huge])).toBe(`--max-tasks: must be at most 9007199254740991, got "${huge}"`);
    expect(refusal(["--log-retain-bytes", `${huge}GiB`])).toBe(`--log-retain-bytes: must be at most 9007199254740991 bytes, got "${huge}GiB"`);
    expect(refusal(["--task-ttl", `${"9".repeat(400)}d`])).toBe(`--task-ttl: must be at most 9007199254740991ms, got "${"9".repeat(400)}d"`);
    expect(parseConfig(["--task-ttl", "3650d"], {}).taskTtlMs).toBe(3650 * 86_400_000);
  });
});

describe("flags win over variables", () => {
  test("a variable a flag overrides is not read: a bad one does not stop the start", () => {
    const c = parseConfig(["--max-tasks", "5", "--http-addr", "127.0.0.1:0"], { TASKLANE_MAX_TASKS: "abc", TASKLANE_HTTP_ADDR: "nonsense", TASKLANE_MAX_RUNS: "7" });
    expect([c.maxTasks, c.httpAddr, c.maxRuns]).toEqual([5, { host: "127.0.0.1", port: 0 }, 7]);
    // Not overridden, it is read, and refused.
    expect(refusal(["--max-runs", "7"], { TASKLANE_MAX_TASKS: "abc" })).toBe('TASKLANE_MAX_TASKS: must be a whole number, got "abc"');
  });

  test("a word that is no flag names the real problem", () => {
    expect(refusal(["--insecure-no-auth", "false"])).toBe("--insecure-no-auth takes no separate value: write --insecure-no-auth=false");
    expect(refusal(["--max-tasks", "5", "extra"])).toBe('unexpected argument "extra": serve takes flags only (see --help)');
    expect(refusal(["--data-dir"])).toBe("--data-dir: missing value");
  });
});

test("a log byte budget that cannot hold one line of --max-line is refused (such lines vanished from logs and wait output)", () => {
  expect(refusal(["--log-retain-bytes", "1KiB"])).toBe(
    "--log-retain-bytes (1024 bytes) cannot hold one line of --max-line (16384 bytes, with its cut mark and bookkeeping): give at least 16512 bytes, or a smaller --max-line",
  );
  expect(refusal(["--max-line", "1MiB"], { TASKLANE_LOG_RETAIN_BYTES: "1MiB" })).toStartWith("TASKLANE_LOG_RETAIN_BYTES (1048576 bytes) cannot hold one line of --max-line (1048576 bytes");
  expect(parseConfig(["--log-retain-bytes", "1KiB", "--max-line", "896"], {}).logRetainBytes).toBe(1024);
});

describe("booleans", () => {
  test("an empty value is an error, not true; a bare flag is true; an empty env variable is unset", () => {
    expect(refusal(["--insecure-no-auth="])).toBe('--insecure-no-auth: must be true or false (or yes/no, 1/0), got ""');
    expect(parseConfig(["--insecure-no-auth"], {}).insecureNoAuth).toBe(true);
    expect(parseConfig(["--insecure-no-auth=false"], {}).insecureNoAuth).toBe(false);
    expect(parseConfig([], { TASKLANE_INSECURE_NO_AUTH: "" }).insecureNoAuth).toBe(false);
  });
});

describe("control-plane and advertise URLs are checked by parseConfig, naming their source", () => {
  test("from flags", () => {
    expect(refusal(["--control-plane", "ftp://x"])).toBe('--control-plane: scheme must be http://, https://, grpc:// or grpcs://, got "ftp://x"');
    expect(refusal(["--control-plane", "grpc://127.0.0.1"])).toBe('--control-plane: grpc:// needs a port (grpc://host:port), got "grpc://127.0.0.1"');
    expect(refusal(["--control-plane", CP, "--advertise", "ftp://x"])).toBe('--advertise: scheme must be grpc://, grpcs://, http:// or https://, got "ftp://x"');
    expect(refusal(["--control-plane", "http://cp/t?api_key=QSECRET"])).toBe(
      '--control-plane: must not have a query (?…) or fragment (#…), which would not be sent; put a prefix in the path instead, got "http://cp/t?…"',
    );
    expect(refusal(["--control-plane", "http:///api"])).toBe('--control-plane: must be scheme://host[:port][/path], got "http:///api"');
  });

  test("from environment variables", () => {
    expect(refusal([], { TASKLANE_CONTROL_PLANE: "ftp://x" })).toBe('TASKLANE_CONTROL_PLANE: scheme must be http://, https://, grpc:// or grpcs://, got "ftp://x"');
    expect(refusal([], { TASKLANE_CONTROL_PLANE: CP, TASKLANE_ADVERTISE: "tcp://x:1" })).toBe(
      'TASKLANE_ADVERTISE: scheme must be grpc://, grpcs://, http:// or https://, got "tcp://x:1"',
    );
    expect(refusal([], { TASKLANE_CONTROL_PLANE: "grpc://u:SECRETPW@cp:1" })).toBe(
      'TASKLANE_CONTROL_PLANE: grpc:// cannot carry user info (user:pass@); set TASKLANE_CONTROL_PLANE_TOKEN for a bearer token, got "grpc://***@cp:1"',
    );
  });

  test("good URLs are kept as given", () => {
    const c = parseConfig(["--control-plane", "https://u:p@cp.example:8443/solti", "--advertise", "grpcs://edge-7.example"], {});
    expect([c.controlPlane, c.advertise]).toEqual(["https://u:p@cp.example:8443/solti", "grpcs://edge-7.example"]);
  });
});

describe("fleet settings without a control plane", () => {
  test("are refused (they would be silently ignored), naming the flag or variable", () => {
    const why = "has no effect without --control-plane (or TASKLANE_CONTROL_PLANE); set one, or remove it";
    expect(refusal(["--advertise", "grpc://edge-7.example:50051"])).toBe(`--advertise ${why}`);
    expect(refusal(["--agent-id", "edge-7"])).toBe(`--agent-id ${why}`);
    expect(refusal(["--agent-name", "edge 7"])).toBe(`--agent-name ${why}`);
    expect(refusal(["--heartbeat", "10s"])).toBe(`--heartbeat ${why}`);
    expect(refusal([], { TASKLANE_HEARTBEAT: "10s" })).toBe(`TASKLANE_HEARTBEAT ${why}`);
    expect(refusal([], { TASKLANE_AGENT_NAME: "edge" })).toBe(`TASKLANE_AGENT_NAME ${why}`);
    // The token too (a variable only: it is never a flag); its value is not shown.
    expect(refusal([], { TASKLANE_CONTROL_PLANE_TOKEN: "cp-secret" })).toBe(`TASKLANE_CONTROL_PLANE_TOKEN ${why}`);
  });

  test("are still checked first: a bad --advertise says what is wrong with it", () => {
    expect(refusal(["--advertise", "ftp://not valid"])).toStartWith("--advertise: ");
  });

  test("the default heartbeat and empty variables are not settings", () => {
    expect(parseConfig([], { TASKLANE_HEARTBEAT: "", TASKLANE_ADVERTISE: "" }).heartbeatMs).toBe(30_000);
    expect(parseConfig([], { TASKLANE_CONTROL_PLANE: CP, TASKLANE_AGENT_ID: "edge-7" }).agentId).toBe("edge-7");
  });
});

describe("TASKLANE_CONTROL_PLANE_TOKEN", () => {
  test("a token no HTTP header can carry is refused at start, without showing it", () => {
    for (const token of ["abc\ndef", "tok\r", "token-€", "two words", " lead", "tab\there"]) {
      const message = refusal(["--control-plane", CP], { TASKLANE_CONTROL_PLANE_TOKEN: token });
      expect(message).toBe(
        "TASKLANE_CONTROL_PLANE_TOKEN: contains characters not allowed in an HTTP header (only visible ASCII: no spaces, line breaks, control or non-ASCII characters); fix it (the value is not shown)",
      );
    }
    expect(parseConfig(["--control-plane", CP], { TASKLANE_CONTROL_PLANE_TOKEN: "A-z0.9_~+/=!#$%&'*^`|" }).controlPlaneToken).toBe("A-z0.9_~+/=!#$%&'*^`|");
  });
});

test("task environments get neither the tokens nor the control-plane URL (it may carry a password)", () => {
  const c = parseConfig([], {
    PATH: "/bin",
    TASKLANE_CONTROL_PLANE: "http://bob:URLSECRET@127.0.0.1:1",
    TASKLANE_CONTROL_PLANE_TOKEN: "cp-secret",
    TASKLANE_ADMIN_TOKEN: "adm",
    TASKLANE_ADVERTISE: "grpc://edge:1",
  });
  expect(c.taskEnv).toEqual({ PATH: "/bin", TASKLANE_ADVERTISE: "grpc://edge:1" });
});

test("tasklane serve with a bad control-plane URL: exit status 2, one line naming the variable, no data dir created", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tasklane-config-"));
  try {
    const dataDir = join(dir, "data");
    await using proc = Bun.spawn({
      cmd: [process.execPath, join(ROOT, "src/main.ts"), "serve", "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--data-dir", dataDir],
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", TASKLANE_CONTROL_PLANE: "ftp://x" },
      cwd: dir,
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    const [code, stdout, stderr] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
    expect({ code, stdout, stderr }).toEqual({
      code: 2,
      stdout: "",
      stderr: 'tasklane: TASKLANE_CONTROL_PLANE: scheme must be http://, https://, grpc:// or grpcs://, got "ftp://x"\n',
    });
    expect(existsSync(dataDir)).toBe(false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a listen host that does not resolve: exit status 1, 'cannot resolve host' (the runtime's own code misled: EEXIST, EINVAL or ENOENT)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tasklane-config-"));
  try {
    const lastLine = async (addrs: string[]) => {
      const { code, lastLine } = await failedStart([process.execPath, join(ROOT, "src/main.ts"), "serve", "--insecure-no-auth", ...addrs, "--data-dir", join(dir, "data")], {
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root" },
        cwd: dir,
      });
      return `${code} ${lastLine}`;
    };
    // The resolver's code depends on the host's DNS (ENOTFOUND; EAI_AGAIN without a network).
    expect(await lastLine(["--http-addr", "nosuchhost.invalid:0", "--grpc-addr", "127.0.0.1:0"])).toMatch(
      /^1 tasklane: cannot start: --http-addr cannot listen on nosuchhost\.invalid:0: cannot resolve host "nosuchhost\.invalid" \([A-Z_]+\); give an IP address of this host$/,
    );
    expect(await lastLine(["--http-addr", "127.0.0.1:0", "--grpc-addr", "999.1.1.1:0"])).toMatch(
      /^1 tasklane: cannot start: --grpc-addr cannot listen on 999\.1\.1\.1:0: cannot resolve host "999\.1\.1\.1" \([A-Z_]+\); give an IP address of this host$/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
