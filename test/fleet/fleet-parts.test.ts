/** Small pure parts of the fleet link: URLs, endpoint, names, the agent id. */
import { describe, expect, test } from "bun:test";
import { hostname } from "node:os";
import { AGENT_ID_META_KEY, resolveAgentId } from "../../src/fleet/agent-id.ts";
import { endpointKindOf, parseControlPlaneUrl } from "../../src/fleet/control-plane-url.ts";
import { defaultEndpoint } from "../../src/fleet/fleet-link.ts";
import { createSyncRequestBuilder } from "../../src/fleet/sync-request.ts";
import { archName, platformName } from "../../src/platform.ts";

describe("parseControlPlaneUrl", () => {
  test("a password is never echoed, whatever characters it holds or however the URL is written", () => {
    for (const url of [
      "http://cpuser:pa/ssSECRET@127.0.0.1:1",
      "http:cpuser:paSECRET@127.0.0.1:1",
      "https:cpuser:paSECRET@cp.example",
      "http://cpuser:SEC?RET@127.0.0.1:1",
      "http://cpuser:SEC#RET@127.0.0.1:1",
      "ftp://u:SECRET@cp",
    ]) {
      let message = "";
      try {
        parseControlPlaneUrl(url);
      } catch (err) {
        message = (err as Error).message;
      }
      expect({ url, refused: message !== "" }).toEqual({ url, refused: true });
      expect(message).not.toContain("SEC");
    }
  });

  test("http(s) URLs post to {prefix}/api/v1/discovery/sync; credentials never shown", () => {
    expect(parseControlPlaneUrl("http://cp:8080")).toEqual({ transport: "http", display: "http://cp:8080", syncUrl: "http://cp:8080/api/v1/discovery/sync" });
    expect(parseControlPlaneUrl("https://u:p@cp.example/solti/")).toEqual({
      transport: "http",
      display: "https://cp.example/solti",
      syncUrl: "https://u:p@cp.example/solti/api/v1/discovery/sync",
    });
    expect(parseControlPlaneUrl("http://cp/api/v1/discovery/sync")).toMatchObject({ syncUrl: "http://cp/api/v1/discovery/sync" });
  });

  test("grpc:// needs a port, grpcs:// defaults to 443", () => {
    expect(parseControlPlaneUrl("grpc://10.0.0.1:50050")).toEqual({ transport: "grpc", display: "grpc://10.0.0.1:50050", address: "10.0.0.1:50050", tls: false });
    expect(parseControlPlaneUrl("grpcs://cp.example")).toEqual({ transport: "grpc", display: "grpcs://cp.example", address: "cp.example:443", tls: true });
    expect(parseControlPlaneUrl("grpc://[::1]:9000")).toMatchObject({ address: "[::1]:9000" });
    expect(() => parseControlPlaneUrl("grpc://cp")).toThrow('--control-plane: grpc:// needs a port (grpc://host:port), got "grpc://cp"');
  });

  test("a path in a grpc(s):// control-plane URL is refused: it would never be sent", () => {
    expect(parseControlPlaneUrl("grpc://cp:1/")).toMatchObject({ address: "cp:1" });
    expect(() => parseControlPlaneUrl("grpc://cp:1/some/prefix")).toThrow(
      '--control-plane: grpc:// has no path (the call is always /solti.discover.v1.DiscoverService/Sync), so it is refused instead of silently dropped, got "grpc://cp:1/some/prefix"',
    );
    expect(() => parseControlPlaneUrl("grpcs://cp/x")).toThrow("--control-plane: grpcs:// has no path");
  });

  test("--advertise is sent and shown as given: no user info, query or fragment; a dialable host; grpc:// with its port and no path", () => {
    expect(() => endpointKindOf("grpc://u:pw@edge:1")).toThrow('--advertise: must not carry user info (user:pass@): the URL is sent to the control plane and shown in logs, got "grpc://***@edge:1"');
    expect(() => endpointKindOf("https://u@edge")).toThrow("--advertise: must not carry user info");
    expect(() => endpointKindOf("https://edge/?x=1")).toThrow('--advertise: must not have a query (?…) or fragment (#…), got "https://edge/?…"');
    expect(() => endpointKindOf("grpc://edge:1#f")).toThrow("--advertise: must not have a query");
    expect(() => endpointKindOf("grpc://0.0.0.0:50051")).toThrow("--advertise: 0.0.0.0 is a wildcard listen address, not one a control plane can dial");
    expect(() => endpointKindOf("http://[::]:8080")).toThrow("--advertise: [::] is a wildcard listen address");
    expect(() => endpointKindOf("grpc://edge")).toThrow('--advertise: grpc:// needs a port (grpc://host:port), got "grpc://edge"');
    expect(() => endpointKindOf("grpc://edge:1/x")).toThrow('--advertise: a gRPC endpoint has no path, got "grpc://edge:1/x"');
    // What stays allowed: grpcs:// on its default port, an HTTP endpoint under a prefix.
    expect([endpointKindOf("grpcs://edge"), endpointKindOf("https://edge:8443/agents/7"), endpointKindOf("grpc://edge:1/")]).toEqual(["grpc", "http", "grpc"]);
  });

  test("other schemes and non-URLs are rejected naming the flag", () => {
    expect(() => parseControlPlaneUrl("cp:8080")).toThrow("--control-plane: scheme must be");
    expect(() => parseControlPlaneUrl("not a url")).toThrow('--control-plane: not a URL, got "not a url"');
    expect(() => endpointKindOf("tcp://x:1")).toThrow('--advertise: scheme must be grpc://, grpcs://, http:// or https://, got "tcp://x:1"');
  });

  test("the advertised scheme gives the endpoint type", () => {
    expect(["grpc://a:1", "grpcs://a", "http://a", "https://a"].map((u) => endpointKindOf(u))).toEqual(["grpc", "grpc", "http", "http"]);
  });

  test("messages name the source the value came from (flag or environment variable)", () => {
    expect(() => parseControlPlaneUrl("ftp://x", "TASKLANE_CONTROL_PLANE")).toThrow('TASKLANE_CONTROL_PLANE: scheme must be http://, https://, grpc:// or grpcs://, got "ftp://x"');
    expect(() => endpointKindOf("ftp://x", "TASKLANE_ADVERTISE")).toThrow('TASKLANE_ADVERTISE: scheme must be grpc://, grpcs://, http:// or https://, got "ftp://x"');
  });

  test("a query or fragment is refused, not silently dropped (nor shown in logs)", () => {
    const why = "--control-plane: must not have a query (?…) or fragment (#…), which would not be sent; put a prefix in the path instead";
    // The query is not echoed either: it may hold a credential.
    expect(() => parseControlPlaneUrl("http://cp/tenant?api_key=QSECRET")).toThrow(`${why}, got "http://cp/tenant?…"`);
    expect(() => parseControlPlaneUrl("https://cp/#frag")).toThrow(`${why}, got "https://cp/#…"`);
    expect(() => parseControlPlaneUrl("http://cp/?")).toThrow(why);
    expect(() => parseControlPlaneUrl("grpc://cp:1?x=1")).toThrow(why);
  });

  test("user info on grpc:// and grpcs:// is refused (it would be ignored); the password is never echoed", () => {
    expect(() => parseControlPlaneUrl("grpc://alice:SECRETPW@127.0.0.1:9000")).toThrow(
      '--control-plane: grpc:// cannot carry user info (user:pass@); set TASKLANE_CONTROL_PLANE_TOKEN for a bearer token, got "grpc://***@127.0.0.1:9000"',
    );
    expect(() => parseControlPlaneUrl("grpcs://alice@cp.example")).toThrow("--control-plane: grpcs:// cannot carry user info");
    expect(() => parseControlPlaneUrl("grpc://@cp:1")).toThrow("--control-plane: grpc:// cannot carry user info");
    for (const bad of ["ftp://u:SECRETPW@cp", "http://u:SECRETPW@cp/?q", "grpc://u:SECRETPW@cp:1"]) {
      expect(() => parseControlPlaneUrl(bad)).toThrow();
      expect(() => parseControlPlaneUrl(bad)).not.toThrow("SECRETPW");
    }
  });

  test("forms the URL parser would repair are refused: scheme://host must be written out", () => {
    const why = "--control-plane: must be scheme://host[:port][/path]";
    expect(() => parseControlPlaneUrl("http:///api")).toThrow(`${why}, got "http:///api"`);
    expect(() => parseControlPlaneUrl("http:cp.example")).toThrow(`${why}, got "http:cp.example"`);
    expect(() => parseControlPlaneUrl("https:/cp.example")).toThrow(why);
    expect(() => parseControlPlaneUrl("grpc://")).toThrow(why);
    expect(() => endpointKindOf("http:edge-7")).toThrow('--advertise: must be scheme://host[:port][/path], got "http:edge-7"');
    expect(parseControlPlaneUrl("HTTPS://CP.example:8443")).toMatchObject({ transport: "http", display: "https://cp.example:8443" });
  });

  test("host names DNS cannot carry are refused: over 253 characters, or a label over 63", () => {
    const label63 = "a".repeat(63);
    const host253 = [label63, label63, label63, "b".repeat(61)].join(".");
    expect(host253).toHaveLength(253);
    expect(parseControlPlaneUrl(`http://${host253}`)).toMatchObject({ transport: "http" });
    expect(parseControlPlaneUrl(`http://${host253}.:1`)).toMatchObject({ transport: "http" }); // a trailing dot is the root, not a character
    expect(() => parseControlPlaneUrl(`http://${host253}b`)).toThrow("--control-plane: host name longer than 253 characters");
    expect(() => parseControlPlaneUrl(`http://${"a".repeat(64)}.example/`)).toThrow("--control-plane: a host name label is longer than 63 characters");
    expect(() => parseControlPlaneUrl(`grpc://${"a".repeat(300)}:1`)).toThrow(`--control-plane: host name longer than 253 characters, got "grpc://${"a".repeat(193)}…"`);
    expect(() => endpointKindOf(`grpc://${"a".repeat(64)}:1`)).toThrow("--advertise: a host name label is longer than 63 characters");
    expect(parseControlPlaneUrl("grpc://[::1]:9000")).toMatchObject({ address: "[::1]:9000" });
  });
});

test("default endpoint: the bound gRPC address (grpcs with TLS), a wildcard replaced by the host name", () => {
  expect(defaultEndpoint("127.0.0.1", 50051)).toBe("grpc://127.0.0.1:50051");
  expect(defaultEndpoint("::1", 7)).toBe("grpc://[::1]:7");
  expect(defaultEndpoint("0.0.0.0", 7)).toBe(`grpc://${hostname()}:7`);
  expect(defaultEndpoint("::", 7)).toBe(`grpc://${hostname()}:7`);
  expect(defaultEndpoint("10.0.0.5", 7, true)).toBe("grpcs://10.0.0.5:7");
});

test("arch and platform use the solti names", () => {
  expect([archName("x64"), archName("arm64")]).toEqual(["amd64", "arm64"]);
  expect([platformName("linux"), platformName("darwin")]).toEqual(["linux", "macos"]);
});

test("agent id: configured wins and is not stored; otherwise generated once and kept", () => {
  const meta = new Map<string, string>();
  const store = { getMeta: (k: string) => meta.get(k), setMeta: (k: string, v: string) => void meta.set(k, v) };
  let n = 0;
  const gen = () => `id-${++n}`;
  expect(resolveAgentId(store, "fixed", gen)).toBe("fixed");
  expect(meta.size).toBe(0);
  expect(resolveAgentId(store, undefined, gen)).toBe("id-1");
  expect(resolveAgentId(store, undefined, gen)).toBe("id-1");
  expect(meta.get(AGENT_ID_META_KEY)).toBe("id-1");
});

test("heartbeatIntervalS: the interval in whole seconds, at least 1, never past int32", () => {
  const intervalS = (heartbeatMs: number) =>
    createSyncRequestBuilder({ id: "a", name: "n", endpoint: "grpc://a:1", endpointKind: "grpc", startedAt: 0, heartbeatMs, metadata: {} })().heartbeatIntervalS;
  expect([intervalS(250), intervalS(30_000), intervalS(30_001), intervalS(25_000 * 86_400_000)]).toEqual([1, 30, 31, 2 ** 31 - 1]);
});
