/**
 * `--control-plane` and `--advertise` URLs: which transport they mean and how
 * they are shown in logs and `/api/v1/info` (without credentials). This is the
 * one place their rules live; `config.ts` calls these functions at start-up so
 * a bad URL stops the agent before anything is opened.
 */
import { clip } from "../errors.ts";

/** Where heartbeats go. */
export type ControlPlaneTarget =
  | {
      transport: "http";
      /** The URL as shown to operators: no user info. */
      display: string;
      /** Full URL of the sync route: `{base}/api/v1/discovery/sync`. */
      syncUrl: string;
    }
  | {
      transport: "grpc";
      display: string;
      /** grpc-js target `host:port`. */
      address: string;
      /** `grpcs://`: TLS (the bundled roots plus `NODE_EXTRA_CA_CERTS`, as for `https://`). */
      tls: boolean;
    };

/** Path of the solti discovery route on an HTTP control plane. */
export const SYNC_PATH = "/api/v1/discovery/sync";

/** Longest host name DNS can carry, and longest label in it (RFC 1035). */
const MAX_HOST = 253;
const MAX_LABEL = 63;

/** Longest part of a URL echoed in an error message. */
const MAX_SHOWN = 200;

/**
 * The raw value for error messages: user info and any query or fragment
 * (where credentials hide) replaced, and cut to `MAX_SHOWN` characters. A
 * password must not reach stderr or the journal.
 */
function shown(url: string): string {
  // Everything from the scheme to the last "@" may be user info — also when the password holds an
  // unencoded "/", "?" or "#", or "//" is missing (`http:user:pass@host`): masked whatever its form.
  const at = url.lastIndexOf("@");
  const prefix = /^[a-z][a-z0-9+.-]*:(\/\/)?/i.exec(url)?.[0].length ?? 0;
  const masked = at >= 0 ? `${url.slice(0, prefix)}***${url.slice(at)}` : url;
  const safe = masked.replace(/([?#])[^]*$/, "$1…");
  return JSON.stringify(clip(safe, MAX_SHOWN));
}

/**
 * Parse and check the parts every URL here needs: `scheme://host…` written
 * out (the WHATWG parser "repairs" `http:host` and `http:///host`), and a
 * host DNS can carry.
 */
function parse(source: string, url: string, schemes: readonly string[], schemeError: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`${source}: not a URL, got ${shown(url)}`);
  }
  if (!schemes.includes(u.protocol)) throw new Error(`${source}: ${schemeError}, got ${shown(url)}`);
  if (!/^[a-z][a-z0-9+.-]*:\/\/[^/?#]/i.test(url)) throw new Error(`${source}: must be scheme://host[:port][/path], got ${shown(url)}`);
  if (!u.hostname) throw new Error(`${source}: missing host, got ${shown(url)}`);
  const host = u.hostname.replace(/\.$/, "");
  if (!host.startsWith("[")) {
    if (host.length > MAX_HOST) throw new Error(`${source}: host name longer than ${MAX_HOST} characters, got ${shown(url)}`);
    if (host.split(".").some((label) => label.length > MAX_LABEL)) throw new Error(`${source}: a host name label is longer than ${MAX_LABEL} characters, got ${shown(url)}`);
  }
  return u;
}

/**
 * User info in the authority, also where the parser does not split it out
 * (an unencoded "@" in a password after the first one).
 */
function hasUserInfo(u: URL, url: string): boolean {
  return Boolean(u.username || u.password || url.slice(u.protocol.length + 2).split("/")[0]!.includes("@"));
}

/** A path other than "/": a gRPC URL has nowhere to send one. */
function hasPath(u: URL): boolean {
  return u.pathname !== "" && u.pathname !== "/";
}

/** The port of a `grpc(s)://` URL: `grpc://` must give one, `grpcs://` defaults to 443. */
function grpcPort(source: string, u: URL, url: string): string {
  const port = u.port || (u.protocol === "grpcs:" ? "443" : "");
  if (!port) throw new Error(`${source}: grpc:// needs a port (grpc://host:port), got ${shown(url)}`);
  return port;
}

function redact(u: URL): string {
  const copy = new URL(u.href);
  copy.username = "";
  copy.password = "";
  return copy.href.replace(/\/$/, "");
}

/**
 * Parse `--control-plane`: `http(s)://[user:pass@]host[:port][/prefix]`
 * (heartbeats are posted to `{prefix}/api/v1/discovery/sync`; a URL that
 * already ends in that path is used as is) or `grpc://host:port` /
 * `grpcs://host[:port]` (`solti.discover.v1.DiscoverService/Sync`; no user
 * info: use TASKLANE_CONTROL_PLANE_TOKEN). A query or fragment is refused: it
 * would not be sent. Throws an `Error` whose message starts with `source`
 * (the flag or the environment variable the value came from) and never
 * shows user info.
 */
export function parseControlPlaneUrl(url: string, source = "--control-plane"): ControlPlaneTarget {
  const u = parse(source, url, ["http:", "https:", "grpc:", "grpcs:"], "scheme must be http://, https://, grpc:// or grpcs://");
  if (/[?#]/.test(url)) {
    throw new Error(`${source}: must not have a query (?…) or fragment (#…), which would not be sent; put a prefix in the path instead, got ${shown(url)}`);
  }
  switch (u.protocol) {
    case "http:":
    case "https:": {
      const sync = new URL(u.href);
      const base = sync.pathname.replace(/\/+$/, "");
      sync.pathname = base.endsWith(SYNC_PATH) ? base : base + SYNC_PATH;
      return { transport: "http", display: redact(u), syncUrl: sync.href };
    }
    default: {
      const tls = u.protocol === "grpcs:";
      const scheme = tls ? "grpcs://" : "grpc://";
      if (hasUserInfo(u, url)) {
        throw new Error(`${source}: ${scheme} cannot carry user info (user:pass@); set TASKLANE_CONTROL_PLANE_TOKEN for a bearer token, got ${shown(url)}`);
      }
      const port = grpcPort(source, u, url);
      if (hasPath(u)) {
        throw new Error(`${source}: ${scheme} has no path (the call is always /solti.discover.v1.DiscoverService/Sync), so it is refused instead of silently dropped, got ${shown(url)}`);
      }
      return { transport: "grpc", display: redact(u), address: `${u.hostname}:${port}`, tls };
    }
  }
}

/** Transport of an advertised agent endpoint. */
export type EndpointKind = "grpc" | "http";

/** Addresses that mean "every interface" to a listener and nothing to a caller. */
const WILDCARD_HOSTS = new Set(["0.0.0.0", "[::]"]);

/**
 * Check `--advertise` (`scheme://host…`, a host DNS can carry) and tell its
 * transport from the scheme: `grpc://`/`grpcs://` → gRPC, `http://`/`https://`
 * → HTTP. The URL is sent to the control plane, shown in logs and in
 * `/api/v1/info` as given, so it may not carry user info, a query or a
 * fragment; a `grpc://` endpoint needs its port and no path, and a wildcard
 * host is refused (a control plane cannot dial it). Throws an `Error` whose
 * message starts with `source` and never shows user info.
 */
export function endpointKindOf(url: string, source = "--advertise"): EndpointKind {
  const u = parse(source, url, ["grpc:", "grpcs:", "http:", "https:"], "scheme must be grpc://, grpcs://, http:// or https://");
  const grpc = u.protocol === "grpc:" || u.protocol === "grpcs:";
  if (hasUserInfo(u, url)) {
    throw new Error(`${source}: must not carry user info (user:pass@): the URL is sent to the control plane and shown in logs, got ${shown(url)}`);
  }
  if (/[?#]/.test(url)) throw new Error(`${source}: must not have a query (?…) or fragment (#…), got ${shown(url)}`);
  if (WILDCARD_HOSTS.has(u.hostname)) throw new Error(`${source}: ${u.hostname} is a wildcard listen address, not one a control plane can dial; advertise a name or an address, got ${shown(url)}`);
  if (grpc) {
    grpcPort(source, u, url);
    if (hasPath(u)) throw new Error(`${source}: a gRPC endpoint has no path, got ${shown(url)}`);
  }
  return grpc ? "grpc" : "http";
}
