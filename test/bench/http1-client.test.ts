import { afterAll, describe, expect, test } from "bun:test";
import { Http1Connection } from "../../bench/lib/http1-client.ts";

/** ≈ 1 MiB of numbered lines: a chunk lost, repeated, reordered or overwritten changes it. */
const BIG = Array.from({ length: 1 << 17 }, (_, i) => String(i).padStart(7, "0")).join("\n");
/** A real server on port 0: echoes POST bodies, counts connections, and has a few awkward routes. */
const connections = new Set<unknown>();
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  async fetch(req, srv) {
    connections.add(srv.requestIP(req)?.port);
    const path = new URL(req.url).pathname;
    if (path === "/big") return new Response(BIG, { headers: { "content-type": "text/plain" } });
    if (req.method === "POST") return Response.json({ got: await req.json(), host: req.headers.get("host") }, { status: 201 });
    return Response.json({ method: req.method, path });
  },
});
const url = `http://127.0.0.1:${server.port}`;
afterAll(() => server.stop(true));

describe("bench lean HTTP/1.1 client", () => {
  test("POSTs a JSON body and reads status and body; later requests reuse the connection", async () => {
    const conn = await Http1Connection.open(url);
    const before = connections.size;
    for (let i = 0; i < 5; i++) {
      const res = await conn.request("POST", "/api/v1/tasks", JSON.stringify({ spec: { slot: `s${i}`, note: "é" } }));
      expect(res.status).toBe(201);
      expect(JSON.parse(res.body)).toEqual({ got: { spec: { slot: `s${i}`, note: "é" } }, host: `127.0.0.1:${server.port}` });
    }
    const get = await conn.request("GET", "/api/v1/tasks/abc");
    expect(JSON.parse(get.body)).toEqual({ method: "GET", path: "/api/v1/tasks/abc" });
    expect(connections.size - before).toBeLessThanOrEqual(1);
    conn.close();
  });

  test("a body that arrives in many reads is put back together", async () => {
    const conn = await Http1Connection.open(url);
    const res = await conn.request("GET", "/big");
    expect(res.status).toBe(200);
    expect(res.body.length).toBe(BIG.length);
    expect(res.body === BIG).toBe(true);
    conn.close();
  });

  test("one request at a time: a second one while the first is out is refused", async () => {
    const conn = await Http1Connection.open(url);
    const first = conn.request("GET", "/big");
    await expect(conn.request("GET", "/a")).rejects.toThrow("one request at a time");
    expect((await first).status).toBe(200);
    conn.close();
  });

  test("an answer without Content-Length (chunked) fails the request with a clear error", async () => {
    // A raw TCP server: the answer's framing is exactly what is written here.
    const raw = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data: (s) => void s.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\npart\r\n0\r\n\r\n"),
      },
    });
    const conn = await Http1Connection.open(`http://127.0.0.1:${raw.port}`);
    await expect(conn.request("GET", "/stream")).rejects.toThrow("an answer without Content-Length: HTTP/1.1 200 OK");
    conn.close();
    raw.stop(true);
  });

  test("a request on a closed connection is refused", async () => {
    const conn = await Http1Connection.open(url);
    conn.close();
    await expect(conn.request("GET", "/a")).rejects.toThrow("connection closed");
  });
});

describe("bench lean HTTP/1.1 client: the server goes away", () => {
  test("a request pending when the server closes the connection rejects", async () => {
    const other = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: () => new Promise<Response>(() => {}), // never answers
    });
    const conn = await Http1Connection.open(`http://127.0.0.1:${other.port}`);
    const pending = conn.request("GET", "/hang");
    other.stop(true);
    await expect(pending).rejects.toThrow();
  });
});
