/**
 * Bearer-token authentication and per-principal rate limits for both
 * transports (CONTRACT §4).
 *
 * - HTTP: `Authorization: Bearer <token>`. On the WebSocket route browsers
 *   cannot set headers, so `?token=<token>` or the subprotocol
 *   `bearer.<token>` (offered next to `tasklane`) are accepted there too.
 *   `/healthz` and `/readyz` are public.
 * - gRPC: metadata `authorization: Bearer <token>` (the health service is not
 *   routed through here, so it stays public).
 *
 * A presented token is hashed with SHA-256 and compared with every
 * principal's digest with `crypto.timingSafeEqual`, without an early exit, so the
 * time taken does not depend on which principal (if any) matched. Tokens never
 * appear in error messages.
 *
 * Rate limits: each principal has a token bucket; a call that fails to
 * authenticate takes a token from the bucket of its remote address instead,
 * which blunts token guessing. Each call is counted once, so a long-lived
 * stream (SSE, WebSocket, gRPC server stream) counts once, when it opens.
 */
import { AgentError, clip } from "../errors.ts";
import type { Caller } from "../tasks/model.ts";
import { DEFAULT_UNAUTHENTICATED, type BucketConfig, type PrincipalConfig } from "./auth-config.ts";
import { requestParams, requestPath } from "../http/request-path.ts";
import { tokenDigest } from "./hash-token.ts";
import { isLoopbackHost } from "./listen-policy.ts";
import { createRateLimiter, type RateLimiter } from "./rate-limiter.ts";

/** HTTP paths that need no token (liveness and readiness probes). */
export const PUBLIC_HTTP_PATHS: readonly string[] = ["/healthz", "/readyz"];
/** The WebSocket route, where a token may also travel as `?token=` or a subprotocol. */
export const WS_PATH = "/ws/tasks";
/** Subprotocol a browser offers (next to `bearer.<token>`) and the server selects. */
export const WS_PROTOCOL = "tasklane";
/** Prefix of the subprotocol that carries the token. */
export const WS_BEARER_PREFIX = "bearer.";

export interface AuthenticatorOptions {
  /** Principals with their token hashes; none means auth is off. */
  principals: readonly PrincipalConfig[];
  /** Budget per remote address for calls without a valid token. */
  unauthenticated?: BucketConfig;
  clock?: () => number;
  /** Injected limiter (tests); default: one created with `clock`. */
  limiter?: RateLimiter;
  /**
   * With auth off, which HTTP requests a web page could have made are refused
   * (403): `loopback` (auth off, loopback only) — a `Host` that is not a loopback
   * name (DNS rebinding) or an `Origin` that is not a loopback origin (another
   * site's page); `origin` (`--insecure-no-auth`) — the `Origin` only. Default
   * `loopback`. Ignored when auth is on: a page cannot send a token.
   */
  browserGuard?: "loopback" | "origin";
}

export interface Authenticator {
  /** True when at least one principal is configured. */
  readonly enabled: boolean;
  readonly principalCount: number;
  /**
   * Caller of an HTTP request (or WebSocket upgrade); throws `Unauthenticated` or `RateLimited`,
   * and with auth off `PermissionDenied` for what only a web page would send (see `browserGuard`).
   * `remoteAddress` is asked for only when the request is refused (refusals are rate limited per address).
   */
  http(request: Request, remoteAddress?: () => string | undefined): Caller;
  /** Caller of a gRPC call from its metadata; `peer` is the remote address (`host:port`). */
  grpc(metadata: Record<string, string>, peer?: string): Caller;
}

interface Entry {
  digest: Buffer;
  caller: Caller;
  ratePerSec: number;
  burst: number;
}

type Presented = { token: string } | { problem: string };

const BEARER_RE = /^\s*bearer\s+(\S+)\s*$/i;

function fromAuthorization(value: string | null | undefined): Presented | undefined {
  if (value === null || value === undefined || value.trim() === "") return undefined;
  const m = BEARER_RE.exec(value);
  return m ? { token: m[1]! } : { problem: 'authorization must be "Bearer <token>"' };
}

/** The token of an HTTP request: header, then (WebSocket route only) query or subprotocol. */
function presentedHttp(request: Request, path: string): Presented | undefined {
  const header = fromAuthorization(request.headers.get("authorization"));
  if (header || path !== WS_PATH) return header;
  const q = requestParams(request.url).get("token");
  if (q !== null && q !== "") return { token: q };
  const protocols = (request.headers.get("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim());
  const carrier = protocols.find((p) => p.startsWith(WS_BEARER_PREFIX) && p.length > WS_BEARER_PREFIX.length);
  return carrier ? { token: carrier.slice(WS_BEARER_PREFIX.length) } : undefined;
}

/** `127.0.0.1:5000`, `[::1]:5000`, `ipv4:…`, `::ffff:10.0.0.1` → the bare address used as a bucket key. */
export function addressOf(peer: string | undefined): string {
  if (!peer) return "unknown";
  let p = peer.replace(/^(ipv4|ipv6|unix):/, "");
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(p);
  if (bracketed) p = bracketed[1]!;
  else if (/^[^:]+:\d+$/.test(p)) p = p.slice(0, p.lastIndexOf(":"));
  return p.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, "");
}

/** True for an `Origin` of a page served from this machine (`http://localhost:3000`); `null` (a sandboxed or file page) is not. */
function isLoopbackOrigin(origin: string): boolean {
  const host = URL.parse(origin)?.hostname;
  return host !== undefined && host !== "" && isLoopbackHost(host.startsWith("[") ? host.slice(1, -1) : host);
}

/**
 * The requests a web page in a browser on this machine could send to an agent
 * without auth, refused: another site's page (its `Origin`), and a page whose
 * site name was rebound to 127.0.0.1 (its `Host`, when `checkHost`).
 * Non-browser clients send no `Origin`, and name the address they connect to.
 */
function createBrowserGuard(checkHost: boolean): (request: Request) => void {
  let lastHost: string | undefined; // every request names the same Host: check it once
  return (request) => {
    const origin = request.headers.get("origin");
    if (origin !== null && !isLoopbackOrigin(origin)) {
      throw new AgentError(
        "PermissionDenied",
        `Origin ${JSON.stringify(clip(origin))} refused: with auth off the agent does not answer web pages of other sites; configure principals (tokens) to serve them`,
      );
    }
    if (!checkHost) return;
    const host = request.headers.get("host");
    if (host === null || host === "" || host === lastHost) return;
    if (!isLoopbackHost(addressOf(host))) { // `[::1]:8080` → `::1`, `localhost:8080` → `localhost`
      throw new AgentError(
        "PermissionDenied",
        `Host ${JSON.stringify(clip(host))} refused: with auth off the agent answers only requests addressed to a loopback name (localhost, 127.0.0.1, [::1]); configure principals (tokens) to serve other names`,
      );
    }
    lastHost = host;
  };
}

function isPublicPath(pathname: string): boolean {
  const path = pathname.length > 1 && pathname.endsWith("/") ? pathname.slice(0, -1) : pathname;
  return PUBLIC_HTTP_PATHS.includes(path);
}

/**
 * Caller of the public probes when auth is on: a viewer with a name no
 * principal can have, so it sees no task and may change nothing should a
 * public route ever use its caller.
 */
const PROBE_CALLER: Caller = Object.freeze({ principal: Object.freeze({ name: "", role: "viewer" as const }) });

/** The caller of every request when authentication is off (one shared object: callers are never mutated). */
const ANONYMOUS: Caller = Object.freeze({});

function seconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

/** Create the authenticator. With no principals every call is the anonymous caller `{}` (auth off). */
export function createAuthenticator(opts: AuthenticatorOptions): Authenticator {
  const entries: Entry[] = opts.principals.map((p) => ({
    digest: Buffer.from(p.tokenSha256, "hex"),
    caller: Object.freeze({ principal: Object.freeze({ name: p.name, role: p.role }) }),
    ratePerSec: p.ratePerSec,
    burst: p.burst,
  }));
  const enabled = entries.length > 0;
  const anon = opts.unauthenticated ?? DEFAULT_UNAUTHENTICATED;
  // Principals and remote addresses in separate limiters: a flood from many addresses may evict
  // address buckets, never a principal's partly drained one (there is one bucket per principal).
  const limiter = opts.limiter ?? createRateLimiter({ clock: opts.clock });
  const guardBrowser = createBrowserGuard((opts.browserGuard ?? "loopback") === "loopback");
  const principalLimiter = createRateLimiter({ clock: opts.clock, maxKeys: Math.max(1, entries.length) });

  /** Constant-time lookup: every digest is compared, whatever matches. */
  function find(token: string): Entry | undefined {
    const digest = tokenDigest(token);
    let found: Entry | undefined;
    for (const e of entries) {
      const same = crypto.timingSafeEqual(digest, e.digest);
      if (same) found = e;
    }
    return found;
  }

  function reject(message: string, remote: () => string | undefined): never {
    const addr = addressOf(remote());
    const wait = limiter.take(addr, anon.ratePerSec, anon.burst);
    if (wait > 0) {
      throw new AgentError("RateLimited", `too many unauthenticated requests from ${addr}; retry in ${seconds(wait)} s`, {
        retryAfterMs: wait,
      });
    }
    throw new AgentError("Unauthenticated", message);
  }

  function resolve(presented: Presented | undefined, remote: () => string | undefined, how: string): Caller {
    if (!enabled) return ANONYMOUS;
    if (presented === undefined) return reject(`missing bearer token: send ${how}`, remote);
    if ("problem" in presented) return reject(presented.problem, remote);
    const entry = find(presented.token);
    if (!entry) return reject("unknown bearer token", remote);
    const wait = principalLimiter.take(entry.caller.principal!.name, entry.ratePerSec, entry.burst);
    if (wait > 0) {
      throw new AgentError(
        "RateLimited",
        `rate limit of principal ${entry.caller.principal!.name} exceeded (${entry.ratePerSec}/s, burst ${entry.burst}); retry in ${seconds(wait)} s`,
        { retryAfterMs: wait },
      );
    }
    return entry.caller;
  }

  return {
    enabled,
    principalCount: entries.length,
    http(request, remoteAddress = () => undefined) {
      if (!enabled) {
        guardBrowser(request);
        return ANONYMOUS;
      }
      // The path as the router reads it (the app refuses a URL it would route by another one).
      const path = requestPath(request.url);
      if (isPublicPath(path)) return PROBE_CALLER;
      return resolve(presentedHttp(request, path), remoteAddress, "Authorization: Bearer <token>");
    },
    grpc(metadata, peer) {
      return resolve(fromAuthorization(metadata.authorization), () => peer, "metadata authorization: Bearer <token>");
    },
  };
}
