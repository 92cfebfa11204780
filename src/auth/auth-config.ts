/**
 * The auth part of the config file (`--config tasklane.toml`), parsed with
 * Bun's native TOML parser and validated strictly:
 *
 * ```toml
 * [[principals]]
 * name = "alice"
 * role = "user"                 # admin | user | viewer
 * token_sha256 = "<64 hex>"     # `tasklane hash-token` prints it
 * rate_per_sec = 20             # optional, default 50
 * burst = 40                    # optional, default 2 × rate_per_sec
 *
 * [unauthenticated]             # optional: budget per remote address for
 * rate_per_sec = 10             # requests without a valid token
 * burst = 20
 *
 * [agent.labels]                # optional: metadata sent to the control plane
 * site = "edge-7"
 * ```
 *
 * Every mistake is a one-line `ConfigError` naming the file, the principal
 * (index and name) and the key. Token hashes are never echoed back: a value
 * pasted into `token_sha256` by mistake may be the token itself.
 */
import { readFileSync } from "node:fs";
import { ConfigError } from "../config.ts";
import { bearerTokenProblem, hashToken } from "./hash-token.ts";

/** What a principal may do (CONTRACT §4). */
export type Role = "admin" | "user" | "viewer";
export const ROLES: readonly Role[] = ["admin", "user", "viewer"];

/** A configured principal; the token itself is never kept, only its hash. */
export interface PrincipalConfig {
  name: string;
  role: Role;
  /** SHA-256 of the token, 64 lower-case hex digits. */
  tokenSha256: string;
  ratePerSec: number;
  burst: number;
}

/** Token bucket of requests without a valid token, per remote address. */
export interface BucketConfig {
  ratePerSec: number;
  burst: number;
}

export interface AuthConfig {
  principals: PrincipalConfig[];
  unauthenticated: BucketConfig;
  /** `[agent.labels]`: metadata of the agent's discovery heartbeats. */
  agentLabels: Record<string, string>;
}

/**
 * Lowest accepted `rate_per_sec`: one request per 1000 s (≈ 17 min). Below
 * it a bucket never refills in practice and its wait (`Retry-After`) is
 * astronomical; leave the principal out instead.
 */
export const MIN_RATE_PER_SEC = 0.001;
/** Default request rate of a principal (requests per second). */
export const DEFAULT_RATE_PER_SEC = 50;
/** Default budget of unauthenticated requests per remote address. */
export const DEFAULT_UNAUTHENTICATED: Readonly<BucketConfig> = Object.freeze({ ratePerSec: 10, burst: 20 });
/** Name of the principal whose token comes from TASKLANE_ADMIN_TOKEN. */
export const ENV_ADMIN_NAME = "admin";

const PRINCIPAL_KEYS = ["name", "role", "token_sha256", "rate_per_sec", "burst"] as const;
const BUCKET_KEYS = ["rate_per_sec", "burst"] as const;
const TOP_KEYS = ["principals", "unauthenticated", "agent"] as const;
const AGENT_KEYS = ["labels"] as const;
const NAME_RE = /^[A-Za-z0-9._@-]{1,64}$/;
const HEX64_RE = /^[0-9a-fA-F]{64}$/;

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return "an array";
  if (v instanceof Date) return "a date";
  if (isTable(v)) return "a table";
  return typeof v === "string" ? JSON.stringify(v) : String(v);
}

function rejectUnknown(table: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(table)) {
    if (!allowed.includes(key)) throw new ConfigError(`${where}: unknown key "${key}" (allowed: ${allowed.join(", ")})`);
  }
}

/** `table[key]` when it is a finite number `>= min`; `hint` explains the bound in the error. */
function atLeast(table: Record<string, unknown>, key: string, where: string, min: number, hint = ""): number | undefined {
  const v = table[key];
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v) || v < min) {
    throw new ConfigError(`${where}: ${key}: must be a number >= ${min}${hint}, got ${describe(v)}`);
  }
  return v;
}

function bucket(table: Record<string, unknown>, where: string, defaultRate: number): BucketConfig {
  const ratePerSec = atLeast(table, "rate_per_sec", where, MIN_RATE_PER_SEC, " (one request per 1000 s)") ?? defaultRate;
  const burst = atLeast(table, "burst", where, 1) ?? Math.max(1, 2 * ratePerSec);
  return { ratePerSec, burst };
}

function principal(raw: unknown, index: number, file: string): PrincipalConfig {
  const anon = `${file}: principals[${index}]`;
  if (!isTable(raw)) throw new ConfigError(`${anon}: must be a table ([[principals]]), got ${describe(raw)}`);
  const name = raw.name;
  const where = typeof name === "string" && NAME_RE.test(name) ? `${anon} (${name})` : anon;
  rejectUnknown(raw, PRINCIPAL_KEYS, where);
  if (name === undefined) throw new ConfigError(`${where}: name: required`);
  if (typeof name !== "string" || !NAME_RE.test(name)) {
    throw new ConfigError(`${where}: name: must be 1..64 of [A-Za-z0-9._@-], got ${describe(name)}`);
  }
  const role = raw.role;
  if (role === undefined) throw new ConfigError(`${where}: role: required (one of ${ROLES.join(", ")})`);
  if (typeof role !== "string" || !(ROLES as readonly string[]).includes(role)) {
    throw new ConfigError(`${where}: role: must be one of ${ROLES.join(", ")}, got ${describe(role)}`);
  }
  const hash = raw.token_sha256;
  if (hash === undefined) throw new ConfigError(`${where}: token_sha256: required (print it with \`tasklane hash-token\`)`);
  if (typeof hash !== "string" || !HEX64_RE.test(hash)) {
    // Not echoed: a token pasted here by mistake must not end up in a log.
    throw new ConfigError(
      `${where}: token_sha256: must be 64 hex digits, the SHA-256 of the token (print it with \`tasklane hash-token\`); the value is not shown`,
    );
  }
  return { name, role: role as Role, tokenSha256: hash.toLowerCase(), ...bucket(raw, where, DEFAULT_RATE_PER_SEC) };
}

/** Parse and validate the text of a config file; `file` names it in error messages. */
export function parseAuthConfig(text: string, file: string): AuthConfig {
  let doc: unknown;
  try {
    doc = Bun.TOML.parse(text);
  } catch (err) {
    // The parser quotes the offending text: a token pasted without quotes must not reach a log.
    const why = (err instanceof Error ? err.message : String(err)).split("\n")[0]!.replace(/"[^"]*"|'[^']*'/g, "<value>");
    throw new ConfigError(`${file}: invalid TOML: ${why}`);
  }
  if (!isTable(doc)) throw new ConfigError(`${file}: must be a TOML document`);
  rejectUnknown(doc, TOP_KEYS, file);
  const list = doc.principals ?? [];
  if (!Array.isArray(list)) throw new ConfigError(`${file}: principals: must be an array of tables ([[principals]]), got ${describe(list)}`);
  const principals = list.map((p, i) => principal(p, i, file));
  const byName = new Map<string, number>();
  const byHash = new Map<string, number>();
  principals.forEach((p, i) => {
    const sameName = byName.get(p.name);
    if (sameName !== undefined) throw new ConfigError(`${file}: principals[${i}] (${p.name}): name: already used by principals[${sameName}]`);
    byName.set(p.name, i);
    const sameHash = byHash.get(p.tokenSha256);
    if (sameHash !== undefined) {
      throw new ConfigError(
        `${file}: principals[${i}] (${p.name}): token_sha256: same as principals[${sameHash}] (${principals[sameHash]!.name}); every principal needs its own token`,
      );
    }
    byHash.set(p.tokenSha256, i);
  });
  let unauthenticated: BucketConfig = { ...DEFAULT_UNAUTHENTICATED };
  if (doc.unauthenticated !== undefined) {
    const where = `${file}: unauthenticated`;
    if (!isTable(doc.unauthenticated)) throw new ConfigError(`${where}: must be a table, got ${describe(doc.unauthenticated)}`);
    rejectUnknown(doc.unauthenticated, BUCKET_KEYS, where);
    unauthenticated = bucket(doc.unauthenticated, where, DEFAULT_UNAUTHENTICATED.ratePerSec);
  }
  return { principals, unauthenticated, agentLabels: agentLabels(doc.agent, file) };
}

function agentLabels(raw: unknown, file: string): Record<string, string> {
  if (raw === undefined) return {};
  if (!isTable(raw)) throw new ConfigError(`${file}: agent: must be a table ([agent]), got ${describe(raw)}`);
  rejectUnknown(raw, AGENT_KEYS, `${file}: agent`);
  const labels = raw.labels ?? {};
  if (!isTable(labels)) throw new ConfigError(`${file}: agent.labels: must be a table ([agent.labels]), got ${describe(labels)}`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels)) {
    if (typeof v !== "string") throw new ConfigError(`${file}: agent.labels.${k}: must be a string, got ${describe(v)}`);
    out[k] = v;
  }
  return out;
}

/** Read and parse `file`; a missing or unreadable file is a `ConfigError` too. */
export function loadAuthConfig(file: string): AuthConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    const code = typeof err === "object" && err !== null && "code" in err ? String(err.code) : String(err);
    throw new ConfigError(`--config ${file}: cannot read: ${code}`);
  }
  return parseAuthConfig(text, file);
}

/**
 * The principals the agent authenticates: those of the config file plus, when
 * TASKLANE_ADMIN_TOKEN is set, an admin named "admin" (default rate). The
 * env token is hashed here and not kept. A set but empty (or blank) token is
 * an error, not "auth off"; so is one with whitespace, which no
 * `Bearer <token>` header can carry. Neither message shows the value.
 */
export function effectivePrincipals(config: AuthConfig | undefined, adminToken: string | undefined): PrincipalConfig[] {
  const out = [...(config?.principals ?? [])];
  if (adminToken !== undefined) {
    if (adminToken.trim() === "") {
      throw new ConfigError("TASKLANE_ADMIN_TOKEN is set but empty; unset it to run without auth, or give it a token");
    }
    if (/\s/.test(adminToken)) {
      throw new ConfigError(
        "TASKLANE_ADMIN_TOKEN: contains whitespace (a space, tab or newline), so no `Authorization: Bearer <token>` could ever match it; remove it (the value is not shown)",
      );
    }
    const problem = bearerTokenProblem(adminToken.trim());
    if (problem !== undefined) throw new ConfigError(`TASKLANE_ADMIN_TOKEN: ${problem}, or no \`Authorization: Bearer <token>\` header sends it as given (the value is not shown)`);
    if (out.some((p) => p.name === ENV_ADMIN_NAME)) {
      throw new ConfigError(
        `TASKLANE_ADMIN_TOKEN: the config file already has a principal named "${ENV_ADMIN_NAME}"; rename it or unset TASKLANE_ADMIN_TOKEN`,
      );
    }
    const tokenSha256 = hashToken(adminToken);
    const clash = out.find((p) => p.tokenSha256 === tokenSha256);
    if (clash) throw new ConfigError(`TASKLANE_ADMIN_TOKEN: same token as principal ${clash.name} of the config file; every principal needs its own token`);
    out.push({ name: ENV_ADMIN_NAME, role: "admin", tokenSha256, ratePerSec: DEFAULT_RATE_PER_SEC, burst: 2 * DEFAULT_RATE_PER_SEC });
  }
  return out;
}
