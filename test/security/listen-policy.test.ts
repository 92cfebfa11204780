import { describe, expect, test } from "bun:test";
import { isIP } from "node:net";
import { checkListenPolicy, ipVersion, isLoopbackHost } from "../../src/auth/listen-policy.ts";
import { ConfigError } from "../../src/config.ts";

const loop = { host: "127.0.0.1", port: 8080 };
const any = { host: "0.0.0.0", port: 8080 };

describe("checkListenPolicy", () => {
  test("loopback detection", () => {
    expect(["127.0.0.1", "127.1.2.3", "::1", "localhost", "::ffff:127.0.0.1"].every(isLoopbackHost)).toBe(true);
    expect(["0.0.0.0", "::", "10.0.0.1", "192.168.1.2", "example.org", "fe80::1"].some(isLoopbackHost)).toBe(false);
  });

  test("ipVersion agrees with node:net isIP", () => {
    const inputs = [
      "127.0.0.1", "0.0.0.0", "255.255.255.255", "256.0.0.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.04", "1.2.3.-4", " 1.2.3.4", "1.2.3.4 ",
      "::", "::1", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1", "fe80::1", "2001:db8::8a2e:370:7334", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9",
      ":::", "1::2::3", "gggg::1", "[::1]", "::1/128", "::1#", "localhost", "example.org", "", "1.2.3.4:80", "::ffff:1.2.3.256",
    ];
    for (const h of inputs) expect([h, ipVersion(h)]).toEqual([h, isIP(h) as 0 | 4 | 6]);
  });

  test("the three modes and their start-up lines", () => {
    expect(checkListenPolicy({ httpAddr: loop, grpcAddr: loop, insecureNoAuth: false, tls: false }, 0)).toEqual({
      mode: "off",
      line: "auth: off (loopback only)",
      warnings: [],
    });
    expect(checkListenPolicy({ httpAddr: loop, grpcAddr: loop, insecureNoAuth: false, tls: false }, 3)).toEqual({
      mode: "on",
      line: "auth: on (3 principals)",
      warnings: [],
    });
    const insecure = checkListenPolicy({ httpAddr: any, grpcAddr: loop, insecureNoAuth: true, tls: false }, 0);
    expect(insecure.mode).toBe("insecure");
    expect(insecure.line).toBe("auth: OFF on non-loopback (insecure)");
  });

  test("no principals on a non-loopback address without --insecure-no-auth is a ConfigError", () => {
    expect(() => checkListenPolicy({ httpAddr: loop, grpcAddr: { host: "::", port: 50051 }, insecureNoAuth: false, tls: false }, 0)).toThrow(
      new ConfigError(
        "--grpc-addr [::]:50051: not a loopback address and auth is off (no principals); configure principals (--config FILE or TASKLANE_ADMIN_TOKEN), or pass --insecure-no-auth to allow anyone who can reach it to run commands",
      ),
    );
  });

  test("auth on a non-loopback address without TLS warns about clear-text tokens", () => {
    const p = checkListenPolicy({ httpAddr: any, grpcAddr: loop, insecureNoAuth: false, tls: false }, 1);
    expect(p.line).toBe("auth: on (1 principal)");
    expect(p.warnings).toEqual([
      "tls: off on a non-loopback address (--http-addr 0.0.0.0:8080): bearer tokens travel in clear text; use --tls-cert/--tls-key or a TLS proxy",
    ]);
    expect(checkListenPolicy({ httpAddr: any, grpcAddr: loop, insecureNoAuth: false, tls: true }, 1).warnings).toEqual([]);
  });
});
