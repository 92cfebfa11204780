/**
 * A self-signed certificate for `localhost` and `127.0.0.1` (P-256, one day) in a fresh temp
 * dir, made with the openssl command line: `cert.pem` and `key.pem`. The dir
 * goes when the value is disposed (`using tls = selfSignedCert()`).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface SelfSigned extends Disposable {
  dir: string;
  certPath: string;
  keyPath: string;
}

export function selfSignedCert(): SelfSigned {
  const dir = mkdtempSync(join(tmpdir(), "tasklane-tls-"));
  const certPath = join(dir, "cert.pem");
  const keyPath = join(dir, "key.pem");
  const gen = Bun.spawnSync(
    ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
      "-keyout", keyPath, "-out", certPath, "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
    { stdout: "pipe", stderr: "pipe" },
  );
  const dispose = () => rmSync(dir, { recursive: true, force: true });
  if (gen.exitCode !== 0) {
    dispose();
    throw new Error(`openssl req failed (${gen.exitCode}): ${gen.stderr.toString()}`);
  }
  return { dir, certPath, keyPath, [Symbol.dispose]: dispose };
}
