/** The HTTP transport against a real Bun.serve endpoint answering odd things. */
import { create } from "@bufbuild/protobuf";
import { expect, test } from "bun:test";
import { createHttpSyncTransport, MAX_ANSWER_BYTES } from "../../src/fleet/http-sync-transport.ts";
import { SyncRequestSchema } from "../../src/gen/solti/discover/v1/discovery_pb.ts";
import { syncFailureOf } from "./sync-failure.ts";

function serve(answer: () => Response) {
  const seen: { auth: string | null; body: unknown }[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      seen.push({ auth: req.headers.get("authorization"), body: await req.json() });
      return answer();
    },
  });
  return { server, seen, url: `http://127.0.0.1:${server.port}/api/v1/discovery/sync`, [Symbol.dispose]: () => void server.stop(true) };
}

const req = create(SyncRequestSchema, { id: "a1", apiVersion: 1 });

test("a 2xx SyncResponse is decoded (unknown fields ignored); an empty 2xx counts as accepted", async () => {
  let body = '{"success":false,"reason":"full","retryAfterS":5,"extra":1}';
  using s = serve(() => new Response(body, { status: body ? 200 : 204 }));
  const t = createHttpSyncTransport({ syncUrl: s.url, token: "tok" });
  expect(await t.sync(req, new AbortController().signal)).toMatchObject({ success: false, reason: "full", retryAfterS: 5 });
  body = "";
  expect(await t.sync(req, new AbortController().signal)).toMatchObject({ success: true });
  expect(s.seen[0]).toEqual({
    auth: "Bearer tok",
    body: { id: "a1", name: "", endpoint: "", uptimeSeconds: "0", os: "", arch: "", platform: "", ts: "0", metadata: {}, endpointType: "ENDPOINT_TYPE_UNSPECIFIED", apiVersion: 1, heartbeatIntervalS: 0, capabilities: [] },
  });
});

test("non-2xx answers fail with the status, a short detail and any Retry-After", async () => {
  let res = () => new Response("slow down", { status: 429, headers: { "retry-after": "3" } });
  using s = serve(() => res());
  const t = createHttpSyncTransport({ syncUrl: s.url });
  expect(await syncFailureOf(t.sync(req, new AbortController().signal))).toEqual({ message: "HTTP 429: slow down", retryAfterMs: 3000 });
  res = () => Response.json({ success: false, retryAfterS: 2 }, { status: 503 });
  expect(await syncFailureOf(t.sync(req, new AbortController().signal))).toEqual({ message: 'HTTP 503: {"success":false,"retryAfterS":2}', retryAfterMs: 2000 });
  res = () => new Response("", { status: 401 });
  expect(await syncFailureOf(t.sync(req, new AbortController().signal))).toEqual({ message: "HTTP 401 (check TASKLANE_CONTROL_PLANE_TOKEN)", retryAfterMs: undefined });
  res = () => new Response("<html>ok</html>", { status: 200 });
  expect(await syncFailureOf(t.sync(req, new AbortController().signal))).toEqual({ message: "invalid SyncResponse: not JSON: <html>ok</html>", retryAfterMs: undefined });
});

test("an unreachable control plane and an aborted call are failures, not crashes", async () => {
  const s = serve(() => new Response(""));
  const url = s.url;
  s[Symbol.dispose]();
  const t = createHttpSyncTransport({ syncUrl: url });
  expect((await syncFailureOf(t.sync(req, new AbortController().signal))).message).toStartWith("unreachable: ");
  const ac = new AbortController();
  ac.abort(new Error("no answer within 5 ms"));
  expect(await syncFailureOf(t.sync(req, ac.signal))).toEqual({ message: "no answer within 5 ms", retryAfterMs: undefined });
});

test("an answer larger than 64 KiB fails the attempt: refused by content-length, or cut off while streaming", async () => {
  expect(MAX_ANSWER_BYTES).toBe(65536);
  const big = "x".repeat(MAX_ANSWER_BYTES + 1);
  let cancelled: () => void = () => {};
  const cancelledP = new Promise<void>((resolve) => (cancelled = resolve));
  let res = () => new Response(big, { status: 200 });
  using s = serve(() => res());
  const t = createHttpSyncTransport({ syncUrl: s.url });
  expect(await syncFailureOf(t.sync(req, new AbortController().signal))).toEqual({ message: "HTTP 200: answer larger than 65536 bytes", retryAfterMs: undefined });
  // An error page with Retry-After is refused the same way, before its body is read.
  res = () => new Response(big, { status: 503, headers: { "retry-after": "5" } });
  expect(await syncFailureOf(t.sync(req, new AbortController().signal))).toEqual({ message: "HTTP 503: answer larger than 65536 bytes", retryAfterMs: undefined });
  // No content-length: an endless stream (which a whole-body read would never finish) is cut once past the cap.
  res = () =>
    new Response(
      new ReadableStream({
        pull(c) {
          c.enqueue(new TextEncoder().encode(" ".repeat(16384)));
        },
        cancel() {
          cancelled();
        },
      }),
      { status: 200 },
    );
  expect(await syncFailureOf(t.sync(req, new AbortController().signal))).toEqual({ message: "HTTP 200: answer larger than 65536 bytes", retryAfterMs: undefined });
  await cancelledP; // the agent hung up instead of reading on
  // Exactly the cap is fine.
  res = () => new Response(`{"success":true}${" ".repeat(MAX_ANSWER_BYTES - 16)}`, { status: 200 });
  expect(await t.sync(req, new AbortController().signal)).toMatchObject({ success: true });
});

test("a redirect is not followed: a failed attempt naming the status and the Location, and the target sees nothing", async () => {
  const hits: string[] = [];
  const target = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(r) {
      hits.push(`${r.method} ${new URL(r.url).pathname}`);
      return new Response("");
    },
  });
  try {
    const to = `http://127.0.0.1:${target.port}/elsewhere/api/v1/discovery/sync`;
    let res = () => new Response(null, { status: 302, headers: { location: to } });
    using s = serve(() => res());
    const t = createHttpSyncTransport({ syncUrl: s.url, token: "tok" });
    expect(await syncFailureOf(t.sync(req, new AbortController().signal))).toEqual({
      message: `HTTP 302 redirect to ${to}: redirects are not followed, set --control-plane to the final URL`,
      retryAfterMs: undefined,
    });
    for (const status of [301, 303, 307, 308]) {
      res = () => new Response("moved", { status, headers: { location: to } });
      expect((await syncFailureOf(t.sync(req, new AbortController().signal))).message).toStartWith(`HTTP ${status} redirect to ${to}: `);
    }
    // A relative Location is shown resolved against the sync URL, without its user info.
    res = () => new Response(null, { status: 301, headers: { location: "/v2/api/v1/discovery/sync" } });
    const withCreds = createHttpSyncTransport({ syncUrl: s.url.replace("http://", "http://bob:URLSECRET@") });
    expect((await syncFailureOf(withCreds.sync(req, new AbortController().signal))).message).toBe(
      `HTTP 301 redirect to ${new URL(s.url).origin}/v2/api/v1/discovery/sync: redirects are not followed, set --control-plane to the final URL`,
    );
    expect(hits).toEqual([]);
  } finally {
    target.stop(true);
  }
});

test("answers are asked for uncompressed, and a compressed one is refused unread: a small gzip body that unpacks past the cap never is", async () => {
  // 40 MB of spaces gzip to about 40 KiB: under the cap as sent, 600 times over it unpacked.
  const bomb = Bun.gzipSync(new Uint8Array(40 * 1024 * 1024).fill(32));
  expect(bomb.byteLength).toBeLessThan(MAX_ANSWER_BYTES);
  const encodings: (string | null)[] = [];
  let answer = () => new Response(bomb, { status: 200, headers: { "content-encoding": "gzip", "content-type": "application/json" } });
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(r) {
      encodings.push(r.headers.get("accept-encoding"));
      return answer();
    },
  });
  try {
    const t = createHttpSyncTransport({ syncUrl: `http://127.0.0.1:${server.port}/api/v1/discovery/sync` });
    const rssBefore = process.memoryUsage().rss;
    expect(await syncFailureOf(t.sync(req, new AbortController().signal))).toEqual({
      message: 'HTTP 200: compressed answer (content-encoding "gzip") refused: the agent asks for identity',
      retryAfterMs: undefined,
    });
    // Nothing was unpacked: far less than the 40 MB the body holds.
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(20 * 1024 * 1024);
    expect(encodings).toEqual(["identity"]);
    // An explicit identity encoding is an ordinary answer.
    answer = () => new Response('{"success":true}', { status: 200, headers: { "content-encoding": "identity" } });
    expect(await t.sync(req, new AbortController().signal)).toMatchObject({ success: true });
  } finally {
    server.stop(true);
  }
});
