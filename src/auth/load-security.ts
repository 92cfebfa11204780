/**
 * Everything auth-related the agent needs at start-up, from its config:
 * principals (config file + TASKLANE_ADMIN_TOKEN) → authenticator, the listen
 * policy (safe defaults) and the TLS pair. Every mistake is a `ConfigError`.
 */
import type { Config } from "../config.ts";
import { effectivePrincipals, loadAuthConfig, type AuthConfig } from "./auth-config.ts";
import { createAuthenticator, type Authenticator } from "./authenticator.ts";
import { checkListenPolicy, type ListenPolicy } from "./listen-policy.ts";
import { loadTls, type TlsFiles } from "./load-tls.ts";

export interface Security {
  authenticator: Authenticator;
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
  const tls = loadTls(config);
  const policy = checkListenPolicy(
    { httpAddr: config.httpAddr, grpcAddr: config.grpcAddr, insecureNoAuth: config.insecureNoAuth, tls: tls !== undefined },
    principals.length,
  );
  const authenticator = createAuthenticator({ principals, unauthenticated: file?.unauthenticated, clock: opts.clock });
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
