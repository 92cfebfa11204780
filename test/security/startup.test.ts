/**
 * Safe defaults at start-up (loopback only without principals, the auth-mode
 * line), config-file mistakes as one-line errors with exit status 2, tokens
 * never in logs, and optional TLS for both servers with a self-signed
 * certificate made by openssl in the test.
 */
import { describe, expect, test } from "bun:test";
import * as grpc from "@grpc/grpc-js";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
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

describe("safe defaults", () => {
  test("no principals: loopback only, and the agent says so", async () => {
    const { logger, lines } = capture();
    await using a = await startAgent({ logger });
    expect(lines.some((l) => JSON.parse(l).msg === "auth: off (loopback only)")).toBe(true);
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
