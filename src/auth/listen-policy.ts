/**
 * Safe defaults at start-up: with no principal configured the agent listens
 * on loopback only, unless `--insecure-no-auth` says otherwise; and the
 * one-line description of the auth mode that the agent logs.
 */
import { ConfigError } from "../config.ts";

/** `on`: tokens required; `off`: no principals, loopback only; `insecure`: no principals on a non-loopback address. */
export type AuthMode = "on" | "off" | "insecure";

export interface ListenPolicyInput {
  httpAddr: { host: string; port: number };
  grpcAddr: { host: string; port: number };
  insecureNoAuth: boolean;
  /** TLS configured for both servers. */
  tls: boolean;
}

export interface ListenPolicy {
  mode: AuthMode;
  /** The start-up line: "auth: on (N principals)", "auth: off (loopback only)" or "auth: OFF on non-loopback (insecure)". */
  line: string;
  /** Extra warnings to log (e.g. tokens in clear text on the network). */
  warnings: string[];
}

/**
 * 4 or 6 for an IP literal, 0 otherwise: node:net's `isIP` without loading
 * node:net (and its streams), ≈ 3 ms of the agent's start-up. IPv4: four
 * decimal parts 0–255 without leading zeros; IPv6: what a URL accepts in brackets.
 */
export function ipVersion(host: string): 0 | 4 | 6 {
  const parts = host.split(".");
  if (parts.length === 4 && parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255)) return 4;
  if (!host.includes(":") || /[[\]/?#@]/.test(host)) return 0;
  try {
    new URL(`http://[${host}]/`);
    return 6;
  } catch {
    return 0;
  }
}

/** True for `localhost`, 127.0.0.0/8, `::1` and IPv4-mapped loopback. Wildcards (`0.0.0.0`, `::`) are not loopback. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  const v = ipVersion(h);
  if (v === 4) return h.startsWith("127.");
  if (v === 6) return h === "::1" || h === "0:0:0:0:0:0:0:1" || /^::ffff:127\./.test(h);
  return false;
}

/** `host:port`, an IPv6 host in brackets (`[::1]:8080`): `http://${showAddress(a)}` is a URL, the port unambiguous. */
export function showAddress(addr: { host: string; port: number }): string {
  return `${addr.host.includes(":") ? `[${addr.host}]` : addr.host}:${addr.port}`;
}

/**
 * Decide the auth mode; throws `ConfigError` (exit 2) when there is no
 * principal and an address is not loopback and `--insecure-no-auth` is absent.
 */
export function checkListenPolicy(input: ListenPolicyInput, principalCount: number): ListenPolicy {
  const exposed = [
    ["--http-addr", input.httpAddr],
    ["--grpc-addr", input.grpcAddr],
  ].filter(([, a]) => !isLoopbackHost((a as { host: string }).host)) as [string, { host: string; port: number }][];
  if (principalCount > 0) {
    const warnings =
      exposed.length > 0 && !input.tls
        ? [`tls: off on a non-loopback address (${exposed.map(([f, a]) => `${f} ${showAddress(a)}`).join(", ")}): bearer tokens travel in clear text; use --tls-cert/--tls-key or a TLS proxy`]
        : [];
    return { mode: "on", line: `auth: on (${principalCount} principal${principalCount === 1 ? "" : "s"})`, warnings };
  }
  if (exposed.length === 0) return { mode: "off", line: "auth: off (loopback only)", warnings: [] };
  if (!input.insecureNoAuth) {
    const [flag, addr] = exposed[0]!;
    throw new ConfigError(
      `${flag} ${showAddress(addr)}: not a loopback address and auth is off (no principals); configure principals (--config FILE or TASKLANE_ADMIN_TOKEN), or pass --insecure-no-auth to allow anyone who can reach it to run commands`,
    );
  }
  return {
    mode: "insecure",
    line: "auth: OFF on non-loopback (insecure)",
    warnings: [`anyone who can reach ${exposed.map(([, a]) => showAddress(a)).join(" and ")} can run any command as this agent's user`],
  };
}
