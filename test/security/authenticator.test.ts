import { describe, expect, test } from "bun:test";
import type { PrincipalConfig } from "../../src/auth/auth-config.ts";
import { addressOf, createAuthenticator } from "../../src/auth/authenticator.ts";
import { hashToken } from "../../src/auth/hash-token.ts";
import { createRateLimiter } from "../../src/auth/rate-limiter.ts";
import { AgentError } from "../../src/errors.ts";
import type { Caller } from "../../src/tasks/model.ts";
import { Metadata } from "@grpc/grpc-js";
import { metadataRecord } from "../../src/grpc/bind-service.ts";

const principals: PrincipalConfig[] = [
  { name: "alice", role: "user", tokenSha256: hashToken("alice-token"), ratePerSec: 1, burst: 2 },
  { name: "vic", role: "viewer", tokenSha256: hashToken("vic-token"), ratePerSec: 100, burst: 100 },
];

function failure(fn: () => unknown): { code: string; message: string; retryAfterMs?: number } {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError);
    const e = err as AgentError;
    return e.retryAfterMs === undefined ? { code: e.code, message: e.message } : { code: e.code, message: e.message, retryAfterMs: e.retryAfterMs };
  }
  throw new Error("expected an AgentError");
}

const req = (path: string, headers: Record<string, string> = {}) => new Request(`http://127.0.0.1${path}`, { headers });

describe("createAuthenticator", () => {
  test("with no principals everything is the anonymous caller (auth off)", () => {
    const auth = createAuthenticator({ principals: [] });
    expect(auth.enabled).toBe(false);
    expect(auth.http(req("/api/v1/tasks"))).toEqual({});
    expect(auth.grpc({})).toEqual({});
  });

  test("two authorization values are refused on both transports, whichever comes first (a gateway's appended one cannot be shadowed)", () => {
    const auth = createAuthenticator({ principals, clock: () => 0 });
    for (const values of [["Bearer alice-token", "Bearer wrong"], ["Bearer wrong", "Bearer alice-token"]]) {
      const md = new Metadata();
      for (const v of values) md.add("authorization", v);
      expect(metadataRecord(md).authorization).toBe(values.join(", "));
      expect(failure(() => auth.grpc(metadataRecord(md))).code).toBe("Unauthenticated");
      const headers = new Headers();
      for (const v of values) headers.append("authorization", v);
      expect(failure(() => auth.http(new Request("http://127.0.0.1/api/v1/tasks", { headers }))).code).toBe("Unauthenticated");
    }
  });

  test("bearer tokens map to principals on both transports", () => {
    const auth = createAuthenticator({ principals, clock: () => 0 });
    expect(auth.http(req("/api/v1/tasks", { authorization: "Bearer alice-token" }))).toEqual({ principal: { name: "alice", role: "user" } });
    expect(auth.grpc({ authorization: "bearer vic-token" })).toEqual({ principal: { name: "vic", role: "viewer" } });
  });

  test("missing, malformed and unknown tokens are Unauthenticated; the token is never echoed", () => {
    const auth = createAuthenticator({ principals, unauthenticated: { ratePerSec: 1000, burst: 1000 } });
    expect(failure(() => auth.http(req("/api/v1/tasks")))).toEqual({
      code: "Unauthenticated",
      message: "missing bearer token: send Authorization: Bearer <token>",
    });
    expect(failure(() => auth.http(req("/api/v1/tasks", { authorization: "Basic YWxpY2U6eA==" })))).toEqual({
      code: "Unauthenticated",
      message: 'authorization must be "Bearer <token>"',
    });
    const unknown = failure(() => auth.grpc({ authorization: "Bearer guess-123" }));
    expect(unknown).toEqual({ code: "Unauthenticated", message: "unknown bearer token" });
    expect(failure(() => auth.grpc({}))).toEqual({ code: "Unauthenticated", message: "missing bearer token: send metadata authorization: Bearer <token>" });
  });

  test("probes are public, but their caller can neither see nor change anything", () => {
    const auth = createAuthenticator({ principals });
    expect(auth.http(req("/healthz"))).toEqual({ principal: { name: "", role: "viewer" } });
    expect(auth.http(req("/readyz/"))).toEqual({ principal: { name: "", role: "viewer" } });
    expect(failure(() => auth.http(req("/healthz/x"))).code).toBe("Unauthenticated");
    expect(failure(() => auth.http(req("/openapi.json"))).code).toBe("Unauthenticated");
  });

  test("the WebSocket route also takes ?token= and the bearer.<token> subprotocol; other routes do not", () => {
    const auth = createAuthenticator({ principals, unauthenticated: { ratePerSec: 1000, burst: 1000 } });
    const alice: Caller = { principal: { name: "alice", role: "user" } };
    const vic: Caller = { principal: { name: "vic", role: "viewer" } };
    expect(auth.http(req("/ws/tasks?token=vic-token"))).toEqual(vic);
    expect(auth.http(req("/ws/tasks", { "sec-websocket-protocol": "tasklane, bearer.vic-token" }))).toEqual(vic);
    expect(auth.http(req("/ws/tasks?token=alice-token", { authorization: "Bearer vic-token" }))).toEqual(vic);
    expect(failure(() => auth.http(req("/api/v1/tasks?token=alice-token"))).code).toBe("Unauthenticated");
    expect(failure(() => auth.http(req("/api/v1/events", { "sec-websocket-protocol": "bearer.alice-token" }))).code).toBe("Unauthenticated");
    expect(auth.http(req("/ws/tasks?token=alice-token"))).toEqual(alice);
  });

  test("per-principal buckets: RateLimited with a retry time, other principals unaffected", () => {
    let now = 0;
    const auth = createAuthenticator({ principals, clock: () => now });
    const alice = () => auth.grpc({ authorization: "Bearer alice-token" });
    alice();
    alice();
    expect(failure(alice)).toEqual({
      code: "RateLimited",
      message: "rate limit of principal alice exceeded (1/s, burst 2); retry in 1 s",
      retryAfterMs: 1000,
    });
    expect(auth.grpc({ authorization: "Bearer vic-token" }).principal?.name).toBe("vic");
    now += 1000;
    expect(alice().principal?.name).toBe("alice");
  });

  test("failed attempts are limited per remote address, valid tokens from that address are not", () => {
    const auth = createAuthenticator({ principals, unauthenticated: { ratePerSec: 1, burst: 3 }, clock: () => 0 });
    const guess = (addr: string) => failure(() => auth.grpc({ authorization: "Bearer nope" }, addr)).code;
    expect([guess("10.0.0.1:5000"), guess("10.0.0.1:5001"), guess("10.0.0.1:5002"), guess("10.0.0.1:5003")]).toEqual([
      "Unauthenticated",
      "Unauthenticated",
      "Unauthenticated",
      "RateLimited",
    ]);
    expect(failure(() => auth.http(req("/api/v1/tasks"), () => "10.0.0.1"))).toEqual({
      code: "RateLimited",
      message: "too many unauthenticated requests from 10.0.0.1; retry in 1 s",
      retryAfterMs: 1000,
    });
    expect(guess("10.0.0.2:5000")).toBe("Unauthenticated");
    expect(auth.grpc({ authorization: "Bearer vic-token" }, "10.0.0.1:5004").principal?.name).toBe("vic");
  });

  test("a flood of failed attempts from many addresses never resets a principal's drained bucket", () => {
    // A tiny address limiter: every new address evicts older address buckets.
    const auth = createAuthenticator({ principals, limiter: createRateLimiter({ clock: () => 0, maxKeys: 2 }), clock: () => 0 });
    const alice = () => auth.grpc({ authorization: "Bearer alice-token" }, "10.0.0.1:1");
    alice();
    alice();
    expect(failure(alice).code).toBe("RateLimited");
    for (let i = 0; i < 50; i++) failure(() => auth.grpc({ authorization: "Bearer nope" }, `10.1.0.${i}:1`));
    expect(failure(alice).code).toBe("RateLimited");
  });

  test("addressOf strips ports, brackets, schemes and the IPv4-mapped prefix", () => {
    expect(["127.0.0.1:5000", "[::1]:443", "ipv4:10.1.2.3:9", "::ffff:10.0.0.7", "::1", undefined].map(addressOf)).toEqual([
      "127.0.0.1",
      "::1",
      "10.1.2.3",
      "10.0.0.7",
      "::1",
      "unknown",
    ]);
  });
});
