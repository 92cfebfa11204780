/**
 * Everything auth-related the agent needs at start-up, from its config:
 * principals (config file + TASKLANE_ADMIN_TOKEN) → authenticator, the listen
 * policy (safe defaults) and the TLS pair. Every mistake is a `ConfigError`;
 * what is allowed but probably unintended (a config file without principals,
 * a certificate outside or near the end of its validity) is a warning in
 * `policy.warnings`, which the agent logs after the auth-mode line.
 */
import type { Config } from "../config.ts";
import { effectivePrincipals, loadAuthConfig, type AuthConfig } from "./auth-config.ts";
import { createAuthenticator, type Authenticator } from "./authenticator.ts";
import { checkListenPolicy, type ListenPolicy } from "./listen-policy.ts";
import { loadTls, type TlsFiles } from "./load-tls.ts";

export interface Security {
  authenticator: Authenticator;
  /** The listen policy; its `warnings` also carry those of the config file and the TLS certificate. */
  policy: ListenPolicy;
  tls: TlsFiles | undefined;
  /** `[agent.labels]` of the config file, for the control-plane heartbeats. */
  agentLabels: Record<string, string>;
  /** The `auth` section of /api/v1/info (no names, no hashes). */
  info(): { enabled: boolean; mode: ListenPolicy["mode"]; principals: number; tls: boolean; rateLimits: boolean };
}

/** Load principals, check the listen addresses and read the TLS pair. Throws `ConfigError`. */
export function loadSecurity(config: Readonly<Config>, opts: { clock?: () => number } = {}): Security {
  const file: AuthConfig | undefined = config.configFile !== undefined ? loadAuthConfig(config.configFile) : undefined;
  const principals = effectivePrincipals(file, config.adminToken);
  const loaded = loadTls(config, (opts.clock ?? Date.now)());
  const tls = loaded?.files;
  const listen = checkListenPolicy(
    { httpAddr: config.httpAddr, grpcAddr: config.grpcAddr, insecureNoAuth: config.insecureNoAuth, tls: tls !== undefined },
    principals.length,
  );
  const warnings = [...listen.warnings, ...(loaded?.warnings ?? [])];
  // An empty file can be intentional (principals to come); say what it means rather than refuse it.
  if (config.configFile !== undefined && principals.length === 0) {
    warnings.push(`--config ${config.configFile}: defines no principals, so auth is off (set TASKLANE_ADMIN_TOKEN or add [[principals]] to turn it on)`);
  }
  // Tasks run as the agent's user: they can read /proc/<agent>/environ, where the plaintext stays.
  if (config.adminToken !== undefined && principals.some((p) => p.role !== "admin")) {
    warnings.push(
      "TASKLANE_ADMIN_TOKEN stays readable by tasks (they run as the agent's user and can read /proc/<agent pid>/environ): a user principal's task can take admin rights; give the admin a token_sha256 in the config file instead (docs/security.md, \"What isolation does not cover\")",
    );
  }
  const policy: ListenPolicy = { ...listen, warnings };
  const authenticator = createAuthenticator({
    principals,
    unauthenticated: file?.unauthenticated,
    clock: opts.clock,
    browserGuard: policy.mode === "insecure" ? "origin" : "loopback",
  });
  return {
    authenticator,
    policy,
    tls,
    agentLabels: file?.agentLabels ?? {},
    info: () => ({
      enabled: authenticator.enabled,
      mode: policy.mode,
      principals: authenticator.principalCount,
      tls: tls !== undefined,
      rateLimits: authenticator.enabled,
    }),
  };
}
