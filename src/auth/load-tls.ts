/**
 * Optional TLS for both servers (`--tls-cert`, `--tls-key`, PEM files). The
 * pair is read and checked at start-up so a mistake is a one-line
 * `ConfigError` instead of a failure deep inside Bun.serve or grpc-js.
 */
import type { X509Certificate as X509, createPrivateKey as CreatePrivateKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { ConfigError } from "../config.ts";

/** PEM certificate chain and private key. */
export interface TlsFiles {
  cert: string;
  key: string;
}

function read(flag: string, path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    const code = typeof err === "object" && err !== null && "code" in err ? String(err.code) : String(err);
    throw new ConfigError(`${flag} ${path}: cannot read: ${code}`);
  }
}

/** Read and check the TLS pair, or `undefined` when neither flag is given. */
export function loadTls(cfg: { tlsCert?: string; tlsKey?: string }): TlsFiles | undefined {
  if (cfg.tlsCert === undefined && cfg.tlsKey === undefined) return undefined;
  if (cfg.tlsCert === undefined || cfg.tlsKey === undefined) throw new ConfigError("--tls-cert and --tls-key: give both or neither");
  const cert = read("--tls-cert", cfg.tlsCert);
  const key = read("--tls-key", cfg.tlsKey);
  // Loaded only when TLS is configured: node:crypto costs ≈ 2 ms of start-up.
  const { X509Certificate, createPrivateKey } = require("node:crypto") as { X509Certificate: typeof X509; createPrivateKey: typeof CreatePrivateKey };
  let x509: X509;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    throw new ConfigError(`--tls-cert ${cfg.tlsCert}: not a PEM certificate`);
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    // The message of the parser is not repeated: it could quote key material.
    throw new ConfigError(`--tls-key ${cfg.tlsKey}: not a PEM private key (or it is encrypted)`);
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new ConfigError(`--tls-key ${cfg.tlsKey}: does not match the certificate of --tls-cert ${cfg.tlsCert}`);
  }
  return { cert, key };
}
