/** Small pure parts of the fleet link: URLs, endpoint, names, the agent id. */
import { describe, expect, test } from "bun:test";
import { hostname } from "node:os";
import { AGENT_ID_META_KEY, resolveAgentId } from "../../src/fleet/agent-id.ts";
import { endpointKindOf, parseControlPlaneUrl } from "../../src/fleet/control-plane-url.ts";
import { defaultEndpoint } from "../../src/fleet/fleet-link.ts";
import { archName, platformName } from "../../src/fleet/sync-request.ts";

describe("parseControlPlaneUrl", () => {
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

  test("other schemes and non-URLs are rejected naming the flag", () => {
    expect(() => parseControlPlaneUrl("cp:8080")).toThrow("--control-plane: scheme must be");
    expect(() => parseControlPlaneUrl("not a url")).toThrow('--control-plane: not a URL, got "not a url"');
    expect(() => endpointKindOf("tcp://x:1")).toThrow('--advertise: scheme must be grpc://, grpcs://, http:// or https://, got "tcp://x:1"');
  });

  test("the advertised scheme gives the endpoint type", () => {
    expect(["grpc://a:1", "grpcs://a", "http://a", "https://a"].map(endpointKindOf)).toEqual(["grpc", "grpc", "http", "http"]);
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
