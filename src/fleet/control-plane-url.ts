/**
 * `--control-plane` and `--advertise` URLs: which transport they mean and how
 * they are shown in logs and `/api/v1/info` (without credentials).
 */

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
      /** `grpcs://`: TLS with the system roots. */
      tls: boolean;
    };

/** Path of the solti discovery route on an HTTP control plane. */
export const SYNC_PATH = "/api/v1/discovery/sync";

function parse(flag: string, url: string): URL {
  try {
    return new URL(url);
  } catch {
    throw new Error(`${flag}: not a URL, got ${JSON.stringify(url)}`);
  }
}

function redact(u: URL): string {
  const copy = new URL(u.href);
  copy.username = "";
  copy.password = "";
  return copy.href.replace(/\/$/, "");
}

/**
 * Parse `--control-plane`: `http(s)://host[:port][/prefix]` (heartbeats are
 * posted to `{prefix}/api/v1/discovery/sync`; a URL that already ends in that
 * path is used as is) or `grpc://host:port` / `grpcs://host[:port]`
 * (`solti.discover.v1.DiscoverService/Sync`). Throws an `Error` naming the flag.
 */
export function parseControlPlaneUrl(url: string): ControlPlaneTarget {
  const u = parse("--control-plane", url);
  switch (u.protocol) {
    case "http:":
    case "https:": {
      const sync = new URL(u.href);
      sync.search = "";
      sync.hash = "";
      const base = sync.pathname.replace(/\/+$/, "");
      sync.pathname = base.endsWith(SYNC_PATH) ? base : base + SYNC_PATH;
      return { transport: "http", display: redact(u), syncUrl: sync.href };
    }
    case "grpc:":
    case "grpcs:": {
      const tls = u.protocol === "grpcs:";
      if (!u.hostname) throw new Error(`--control-plane: missing host, got ${JSON.stringify(url)}`);
      const port = u.port || (tls ? "443" : "");
      if (!port) throw new Error(`--control-plane: grpc:// needs a port (grpc://host:port), got ${JSON.stringify(url)}`);
      return { transport: "grpc", display: redact(u), address: `${u.hostname}:${port}`, tls };
    }
    default:
      throw new Error(`--control-plane: scheme must be http://, https://, grpc:// or grpcs://, got ${JSON.stringify(url)}`);
  }
}

/** Transport of an advertised agent endpoint. */
export type EndpointKind = "grpc" | "http";

/**
 * Check `--advertise` and tell its transport from the scheme:
 * `grpc://`/`grpcs://` → gRPC, `http://`/`https://` → HTTP. Throws naming the flag.
 */
export function endpointKindOf(url: string): EndpointKind {
  const u = parse("--advertise", url);
  if (u.protocol === "grpc:" || u.protocol === "grpcs:") return "grpc";
  if (u.protocol === "http:" || u.protocol === "https:") return "http";
  throw new Error(`--advertise: scheme must be grpc://, grpcs://, http:// or https://, got ${JSON.stringify(url)}`);
}
