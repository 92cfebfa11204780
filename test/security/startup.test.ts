/**
 * Safe defaults at start-up (loopback only without principals, the auth-mode
 * line, a set but empty TASKLANE_ADMIN_TOKEN), config-file mistakes as
 * one-line errors with exit status 2, tokens never in logs, the `tasklane
 * listening` line, and optional TLS for both servers with self-signed
 * certificates made by openssl in the test (including expired ones).
 */
import { describe, expect, test } from "bun:test";
import * as grpc from "@grpc/grpc-js";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { loadTls } from "../../src/auth/load-tls.ts";
import { ConfigError } from "../../src/config.ts";
import { createLogger, type Logger } from "../../src/observability/logger.ts";
import { protoClient, unary } from "../grpc/proto-client.ts";
import { commandSpec, startAgent } from "../helpers/start-agent.ts";
import { startSecureAgent, writeConfig } from "./secure-agent.ts";

const ROOT = join(import.meta.dir, "../..");
const OPENSSL = Bun.which("openssl");

function capture(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  return { logger: createLogger({ level: "debug", format: "json", write: (l) => lines.push(l) }), lines };
}

/** The messages of the `warn` lines among captured JSON log lines. */
function warnings(lines: string[]): string[] {
  return lines.map((l) => JSON.parse(l) as { level: string; msg: string }).filter((l) => l.level === "warn").map((l) => l.msg);
}

/** `tasklane serve` from source with only PATH, HOME and `env`; killed on dispose. */
function serve(args: string[], env: Record<string, string> = {}): Subprocess<"ignore", "pipe", "pipe"> {
  return Bun.spawn({
    cmd: [process.execPath, join(ROOT, "src/main.ts"), "serve", "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--data-dir", ":memory:", ...args],
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
}

/**
 * Exit status, stdout and the lines of stderr that are not JSON log lines (the
 * agent's own "tasklane stopping/stopped" may follow a start-up error) of a
 * `serve` that is expected to stop by itself.
 */
async function serveResult(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; errors: string[] }> {
  await using proc = serve(args, env);
  const [code, stdout, stderr] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  return { code, stdout, errors: stderr.split("\n").filter((l) => l !== "" && !l.startsWith("{")) };
}

/** Read stdout until `re` matches it (or the process ends: then the match is null). */
async function waitForStdout(proc: Subprocess<"ignore", "pipe", "pipe">, re: RegExp): Promise<RegExpExecArray | null> {
  const decoder = new TextDecoder();
  let out = "";
  for await (const chunk of proc.stdout) {
    out += decoder.decode(chunk, { stream: true });
    const m = re.exec(out);
    if (m) return m;
  }
  return null;
}

/** Whether this host can listen on the IPv6 loopback. */
function ipv6Loopback(): boolean {
  try {
    Bun.serve({ hostname: "::1", port: 0, fetch: () => new Response() }).stop(true);
    return true;
  } catch {
    return false;
  }
}

async function startError(opts: Parameters<typeof startAgent>[0]): Promise<unknown> {
  try {
    const a = await startAgent(opts);
    await a[Symbol.asyncDispose]();
  } catch (err) {
    return err;
  }
  return undefined;
}

function tempDir(): string & Disposable {
  const dir = mkdtempSync(join(tmpdir(), "tasklane-start-"));
  return Object.assign(dir, { [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) }) as string & Disposable;
}

describe("a refused start is one line", () => {
  test("a config mistake found before the store opens: exactly one line on stderr, no log lines after it", async () => {
    await using proc = serve(["--http-addr", "0.0.0.0:0"]);
    const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
    expect(code).toBe(2);
    const lines = stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toStartWith("tasklane: --http-addr 0.0.0.0:0: not a loopback address");
  });
});

describe("safe defaults", () => {
  test("no principals: loopback only, and the agent says so (a warning: --log-level warn shows it)", async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: "warn", format: "json", write: (l) => lines.push(l) });
    await using a = await startAgent({ logger });
    expect(warnings(lines)).toContain("auth: off (loopback only)");
    expect((await a.json("GET", "/api/v1/tasks")).status).toBe(200);
  });

  test("no principals and a non-loopback address: refused before anything listens", async () => {
    const err = await startError({ args: ["--http-addr", "0.0.0.0:0"] });
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toStartWith("--http-addr 0.0.0.0:0: not a loopback address and auth is off (no principals);");
    const grpcErr = await startError({ args: ["--grpc-addr", "[::]:0"] });
    expect((grpcErr as Error).message).toStartWith("--grpc-addr [::]:0: not a loopback address");
  });

  test("principals: 'auth: on (N principals)'; no token ever reaches the log, not even at debug level", async () => {
    const { logger, lines } = capture();
    await using a = await startSecureAgent({ logger, env: { TASKLANE_ADMIN_TOKEN: "env-admin-token-value" } });
    expect(lines.some((l) => JSON.parse(l).msg === "auth: on (5 principals)")).toBe(true);
    await a.json("POST", "/api/v1/tasks?wait=true", { spec: commandSpec("true") }, a.bearer("alice"));
    await a.json("GET", "/api/v1/tasks", undefined, { authorization: "Bearer wrong-but-secret-guess" });
    await a.json("GET", `/api/v1/nope?token=${a.tokens.bob}`, undefined, a.bearer("bob"));
    const ws = new WebSocket(`${a.url.replace("http", "ws")}/ws/tasks?token=${a.tokens.vic}`);
    await new Promise((r) => (ws.onopen = r));
    ws.close();
    await unary(a.solti, "ListTasks", {}, a.md("root")).catch(() => {});
    await unary(a.solti, "ListTasks", {}, a.md({ token: "grpc-secret-guess" })).catch(() => {});
    const log = lines.join("");
    expect(log).toContain("http request");
    for (const secret of [...Object.values(a.tokens), "env-admin-token-value", "wrong-but-secret-guess", "grpc-secret-guess"]) {
      expect(log).not.toContain(secret);
    }
  });

  test("a blank TASKLANE_ADMIN_TOKEN, or one with whitespace: exit status 2, one line, the value not shown", async () => {
    const empty = "tasklane: TASKLANE_ADMIN_TOKEN is set but empty; unset it to run without auth, or give it a token";
    expect(await serveResult([], { TASKLANE_ADMIN_TOKEN: "   " })).toEqual({ code: 2, stdout: "", errors: [empty] });
    expect(await serveResult([], { TASKLANE_ADMIN_TOKEN: "\n" })).toEqual({ code: 2, stdout: "", errors: [empty] });
    const spaced = await serveResult([], { TASKLANE_ADMIN_TOKEN: "adm-secret tok " });
    expect(spaced).toEqual({
      code: 2,
      stdout: "",
      errors: [
        "tasklane: TASKLANE_ADMIN_TOKEN: contains whitespace (a space, tab or newline), so no `Authorization: Bearer <token>` could ever match it; remove it (the value is not shown)",
      ],
    });
  });

  // Needs src/config.ts to keep a set but empty TASKLANE_ADMIN_TOKEN (today `if (adminToken)` drops "", so the agent starts with auth off).
  test("an empty TASKLANE_ADMIN_TOKEN: exit status 2, not auth off", async () => {
    expect(await serveResult([], { TASKLANE_ADMIN_TOKEN: "" })).toEqual({
      code: 2,
      stdout: "",
      errors: ["tasklane: TASKLANE_ADMIN_TOKEN is set but empty; unset it to run without auth, or give it a token"],
    });
  });

  test("a config file without principals: auth off, and a warning that says why", async () => {
    using dir = tempDir();
    const file = join(dir, "empty.toml");
    writeFileSync(file, "[unauthenticated]\nrate_per_sec = 5\n");
    const { logger, lines } = capture();
    {
      await using a = await startAgent({ logger, args: ["--config", file] });
      expect(warnings(lines)).toEqual([
        "auth: off (loopback only)",
        `--config ${file}: defines no principals, so auth is off (set TASKLANE_ADMIN_TOKEN or add [[principals]] to turn it on)`,
      ]);
      expect((await a.json("GET", "/api/v1/tasks")).status).toBe(200);
    }
    // With TASKLANE_ADMIN_TOKEN there is a principal: auth is on and nothing to warn about.
    const withAdmin = capture();
    await using b = await startAgent({ logger: withAdmin.logger, args: ["--config", file], env: { TASKLANE_ADMIN_TOKEN: "env-admin-token" } });
    expect(withAdmin.lines.some((l) => JSON.parse(l).msg === "auth: on (1 principal)")).toBe(true);
    expect(warnings(withAdmin.lines)).toEqual([]);
  });

  test("TASKLANE_ADMIN_TOKEN beside user principals: a warning that their tasks can read it", async () => {
    using dir = tempDir();
    const file = join(dir, "users.toml");
    writeFileSync(file, `[[principals]]\nname = "alice"\nrole = "user"\ntoken_sha256 = "${"a".repeat(64)}"\n`);
    const { logger, lines } = capture();
    await using a = await startAgent({ logger, args: ["--config", file], env: { TASKLANE_ADMIN_TOKEN: "env-admin-token" } });
    expect(warnings(lines)).toEqual([
      'TASKLANE_ADMIN_TOKEN stays readable by tasks (they run as the agent\'s user and can read /proc/<agent pid>/environ): a user principal\'s task can take admin rights; give the admin a token_sha256 in the config file instead (docs/security.md, "What isolation does not cover")',
    ]);
    expect((await a.json("GET", "/api/v1/tasks", undefined, { authorization: "Bearer env-admin-token" })).status).toBe(200);
  });
});

describe("the listening line", () => {
  test("IPv4: `tasklane listening http=HOST:PORT grpc=HOST:PORT`", async () => {
    await using proc = serve([]);
    const m = await waitForStdout(proc, /tasklane listening http=(\S+) grpc=(\S+)\n/);
    expect(m?.[0]).toMatch(/^tasklane listening http=127\.0\.0\.1:\d+ grpc=127\.0\.0\.1:\d+\n$/);
    expect((await fetch(`http://${m![1]}/readyz`)).status).toBe(200);
  });

  test.skipIf(!ipv6Loopback())("IPv6: the host in brackets, so `http://${addr}` is a URL that answers /readyz", async () => {
    await using proc = serve(["--http-addr", "[::1]:0", "--grpc-addr", "[::ffff:127.0.0.1]:0"]);
    // The pattern of the line's consumers (test/e2e/binary.ts, bench/lib/agent-process.ts, build.ts).
    const m = await waitForStdout(proc, /tasklane listening http=(\S+) grpc=(\S+)\n/);
    expect(m?.[0]).toMatch(/^tasklane listening http=\[::1\]:\d+ grpc=\[::ffff:127\.0\.0\.1\]:\d+\n$/);
    const res = await fetch(`http://${m![1]}/readyz`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { status: string }).status).toBe("ready");
    expect(new URL(`http://${m![2]}`).port).toMatch(/^\d+$/);
  });
});

describe("config file mistakes", () => {
  test("a missing file and a bad principal are one-line ConfigErrors naming file, principal and key", async () => {
    using dir = tempDir();
    expect(((await startError({ args: ["--config", join(dir, "absent.toml")] })) as Error).message).toBe(
      `--config ${join(dir, "absent.toml")}: cannot read: ENOENT`,
    );
    const file = join(dir, "bad.toml");
    writeFileSync(file, '[[principals]]\nname = "alice"\nrole = "superuser"\ntoken_sha256 = "00"\n');
    const err = await startError({ args: ["--config", file] });
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toBe(`${file}: principals[0] (alice): role: must be one of admin, user, viewer, got "superuser"`);
  });

  test("a rate_per_sec below 0.001 is refused at start-up, naming the principal", async () => {
    using dir = tempDir();
    const file = join(dir, "tiny.toml");
    writeFileSync(file, `[[principals]]\nname = "x"\nrole = "user"\ntoken_sha256 = "${"a".repeat(64)}"\nrate_per_sec = 1e-22\nburst = 1\n`);
    const err = await startError({ args: ["--config", file] });
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toBe(`${file}: principals[0] (x): rate_per_sec: must be a number >= 0.001 (one request per 1000 s), got 1e-22`);
  });

  test("the binary exits with status 2 and prints the one-line error", async () => {
    using dir = tempDir();
    const file = join(dir, "bad.toml");
    writeFileSync(file, '[[principals]]\nname = "alice"\nrole = "user"\ntoken_sha256 = "my-actual-token"\n');
    const proc = Bun.spawn({
      cmd: [process.execPath, join(ROOT, "src/main.ts"), "serve", "--config", file, "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--data-dir", ":memory:"],
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root" },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
    expect(stderr).toContain(`${file}: principals[0] (alice): token_sha256: must be 64 hex digits`);
    expect(stderr).not.toContain("my-actual-token");
    expect(code).toBe(2);
  });
});

test("--tls-cert without --tls-key (or the reverse) is a ConfigError", () => {
  expect(() => loadTls({ tlsCert: "/x/cert.pem" })).toThrow(new ConfigError("--tls-cert and --tls-key: give both or neither"));
  expect(() => loadTls({ tlsKey: "/x/key.pem" })).toThrow(new ConfigError("--tls-cert and --tls-key: give both or neither"));
  expect(loadTls({})).toBeUndefined();
});

describe.skipIf(!OPENSSL)(`TLS (${OPENSSL ? "self-signed cert from openssl" : "skipped: openssl not installed"})`, () => {
  function makeCert(dir: string): { cert: string; key: string } {
    const cert = join(dir, "cert.pem");
    const key = join(dir, "key.pem");
    const r = Bun.spawnSync({
      cmd: [OPENSSL!, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=localhost",
        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", cert],
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(r.exitCode).toBe(0);
    return { cert, key };
  }

  /** `YYYYMMDDHHMMSSZ`, the date format of `openssl ca -startdate/-enddate`. */
  const opensslDate = (d: Date) => d.toISOString().replace(/[-:T]/g, "").replace(/\.\d{3}Z$/, "Z");

  /**
   * A self-signed certificate valid from `from` to `to`. `openssl req -x509`
   * takes validity dates only from OpenSSL 3.4 (`-not_before`), `openssl ca`
   * on every version.
   */
  function makeDatedCert(dir: string, from: Date, to: Date): { cert: string; key: string } {
    const cert = join(dir, "cert.pem");
    const key = join(dir, "key.pem");
    const csr = join(dir, "req.csr");
    const cnf = join(dir, "ca.cnf");
    writeFileSync(join(dir, "index.txt"), "");
    writeFileSync(join(dir, "serial"), "01\n");
    writeFileSync(
      cnf,
      `[ca]\ndefault_ca = d\n[d]\ndatabase = ${join(dir, "index.txt")}\nserial = ${join(dir, "serial")}\nnew_certs_dir = ${dir}\ndefault_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n`,
    );
    for (const cmd of [
      ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=localhost", "-keyout", key, "-out", csr],
      ["ca", "-batch", "-config", cnf, "-selfsign", "-keyfile", key, "-in", csr, "-out", cert, "-notext",
        "-startdate", opensslDate(from), "-enddate", opensslDate(to)],
    ]) {
      const r = Bun.spawnSync({ cmd: [OPENSSL!, ...cmd], stdout: "pipe", stderr: "pipe" });
      if (r.exitCode !== 0) throw new Error(`openssl ${cmd[0]}: ${r.stderr.toString()}`);
    }
    return { cert, key };
  }

  test("a certificate expired, not yet valid or expiring within 14 days: the agent starts and warns, naming the file and the date", async () => {
    using dir = tempDir();
    const now = Date.now();
    const soon = new Date(Math.floor((now + 3.5 * 86_400_000) / 1000) * 1000);
    const cases: [from: Date, to: Date, warning: string | undefined][] = [
      [new Date("2020-01-01T00:00:00Z"), new Date("2020-02-01T00:00:00Z"), "certificate expired since 2020-02-01T00:00:00Z; TLS clients will refuse it, renew it"],
      [new Date("2099-01-01T00:00:00Z"), new Date("2099-12-31T00:00:00Z"), "certificate not valid until 2099-01-01T00:00:00Z; TLS clients will refuse it until then"],
      [new Date(now - 86_400_000), soon, `certificate expires on ${soon.toISOString().replace(".000Z", "Z")} (in 3 days); renew it`],
      [new Date(now - 86_400_000), new Date(now + 30 * 86_400_000), undefined],
    ];
    for (const [i, [from, to, warning]] of cases.entries()) {
      const { cert, key } = makeDatedCert(mkdtempSync(join(dir, `c${i}-`)), from, to);
      const { logger, lines } = capture();
      await using a = await startSecureAgent({ logger, args: ["--tls-cert", cert, "--tls-key", key] });
      expect(warnings(lines)).toEqual(warning === undefined ? [] : [`--tls-cert ${cert}: ${warning}`]);
      // Started all the same: a warning, not an outage.
      expect((await fetch(`https://127.0.0.1:${a.agent.httpPort}/readyz`, { tls: { rejectUnauthorized: false } })).status).toBe(200);
    }
  });

  test("REST and gRPC over TLS, with tokens; plaintext is refused", async () => {
    using dir = tempDir();
    const { cert, key } = makeCert(dir);
    await using a = await startSecureAgent({ args: ["--tls-cert", cert, "--tls-key", key] });
    const ca = await Bun.file(cert).text();
    const https = `https://127.0.0.1:${a.agent.httpPort}`;
    const res = await fetch(`${https}/api/v1/info`, { headers: a.bearer("vic"), tls: { ca } });
    expect(res.status).toBe(200);
    // Routed by path whatever the Host (a container name over TLS).
    expect((await fetch(`${https}/healthz`, { headers: { host: "web" }, tls: { ca } })).status).toBe(200);
    // A Host of 1–2 characters would make the router read the path from a "/" in the query, past
    // the public probe the authenticator saw: refused instead, and no metrics without a token.
    const bypass = await fetch(`${https}/healthz?x=/api/v1/metrics`, { headers: { host: "a" }, tls: { ca } });
    expect({ status: bypass.status, error: ((await bypass.json()) as { error: string }).error }).toEqual({ status: 400, error: "InvalidRequest" });
    const info = (await res.json()) as { auth: { tls: boolean }; capabilities: string[] };
    expect(info.auth.tls).toBe(true);
    expect(info.capabilities).toContain("tls");
    expect((await fetch(`${https}/api/v1/tasks`, { tls: { ca } })).status).toBe(401);
    expect(await fetch(`${https}/healthz`, { tls: { rejectUnauthorized: true } }).then(() => "connected", () => "refused")).toBe("refused");
    expect(await fetch(`http://127.0.0.1:${a.agent.httpPort}/healthz`).then((r) => r.status, () => "refused")).not.toBe(200);

    const creds = grpc.credentials.createSsl(Buffer.from(ca));
    const Ctor = protoClient("solti/v1/api.proto", "solti.v1.SoltiApi", a.agent.grpcPort).constructor as grpc.ServiceClientConstructor;
    // Bun's TLS refuses an IP address as SNI name: verify against the certificate's DNS name instead.
    const tlsClient = new Ctor(`127.0.0.1:${a.agent.grpcPort}`, creds, { "grpc.ssl_target_name_override": "localhost", "grpc.default_authority": "localhost" });
    try {
      expect(await unary(tlsClient, "ListTasks", {}, a.md("root"))).toEqual({ tasks: [], total: 0 });
      const denied = await unary(tlsClient, "ListTasks", {}).then(() => 0, (e: grpc.ServiceError) => e.code);
      expect(denied).toBe(grpc.status.UNAUTHENTICATED);
    } finally {
      tlsClient.close();
    }
    // The plaintext client of the fixture cannot talk to the TLS port.
    const plain = await unary(a.solti, "ListTasks", {}, a.md("root")).then(() => grpc.status.OK, (e: grpc.ServiceError) => e.code);
    expect(plain).toBe(grpc.status.UNAVAILABLE);
  });

  test("a key that does not match the certificate, or a file that is not PEM: one-line ConfigError", async () => {
    using dir = tempDir();
    const one = makeCert(join(mkdtempSync(join(dir, "a-"))));
    const two = makeCert(join(mkdtempSync(join(dir, "b-"))));
    const { file } = writeConfig(dir);
    const mismatch = await startError({ args: ["--config", file, "--tls-cert", one.cert, "--tls-key", two.key] });
    expect((mismatch as Error).message).toBe(`--tls-key ${two.key}: does not match the certificate of --tls-cert ${one.cert}`);
    const notPem = await startError({ args: ["--config", file, "--tls-cert", file, "--tls-key", two.key] });
    expect((notPem as Error).message).toBe(`--tls-cert ${file}: not a PEM certificate`);
  });
});
