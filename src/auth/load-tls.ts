/**
 * Optional TLS for both servers (`--tls-cert`, `--tls-key`, PEM files). The
 * pair is read and checked at start-up so a mistake is a one-line
 * `ConfigError` instead of a failure deep inside Bun.serve or grpc-js. A
 * certificate outside its validity period, or expiring within
 * `EXPIRY_WARNING_DAYS`, is a warning, not an error: refusing it would turn an
 * expiry into an outage at the next restart.
 */
import type { X509Certificate as X509, createPrivateKey as CreatePrivateKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { ConfigError } from "../config.ts";

/** PEM certificate chain and private key. */
export interface TlsFiles {
  cert: string;
  key: string;
}

/** The checked pair and the start-up warnings about it (validity of the certificate). */
export interface LoadedTls {
  files: TlsFiles;
  warnings: string[];
}

/** A certificate that expires within this many days is logged as a warning at start-up. */
export const EXPIRY_WARNING_DAYS = 14;
const DAY_MS = 86_400_000;

/** `2026-03-01T12:00:00Z`: the date of a validity bound, to the second. */
function isoSecond(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/**
 * Warnings about the validity period of the certificate of `file` at `now`:
 * not yet valid, expired, or expiring within `EXPIRY_WARNING_DAYS`.
 */
export function validityWarnings(file: string, validity: { from: Date; to: Date }, now: number): string[] {
  const where = `--tls-cert ${file}`;
  const from = validity.from.getTime();
  const to = validity.to.getTime();
  if (now < from) return [`${where}: certificate not valid until ${isoSecond(validity.from)}; TLS clients will refuse it until then`];
  if (now > to) return [`${where}: certificate expired since ${isoSecond(validity.to)}; TLS clients will refuse it, renew it`];
  if (to - now < EXPIRY_WARNING_DAYS * DAY_MS) {
    const days = Math.floor((to - now) / DAY_MS);
    const left = days === 0 ? "less than a day" : `${days} day${days === 1 ? "" : "s"}`;
    return [`${where}: certificate expires on ${isoSecond(validity.to)} (in ${left}); renew it`];
  }
  return [];
}

function read(flag: string, path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    const code = typeof err === "object" && err !== null && "code" in err ? String(err.code) : String(err);
    throw new ConfigError(`${flag} ${path}: cannot read: ${code}`);
  }
}

/**
 * Read and check the TLS pair, or `undefined` when neither flag is given.
 * `now` (epoch ms, default `Date.now()`) dates the validity warnings.
 */
export function loadTls(cfg: { tlsCert?: string; tlsKey?: string }, now: number = Date.now()): LoadedTls | undefined {
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
  return { files: { cert, key }, warnings: validityWarnings(cfg.tlsCert, { from: x509.validFromDate, to: x509.validToDate }, now) };
}
