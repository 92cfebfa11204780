/**
 * A server stream over the agent's connection path (a Bun socket, our
 * SocketDuplex, grpc-js's injected HTTP/2 server) reaches the socket in few
 * large writes once `deferWritesLikeNative` applies, and every message
 * arrives in order. Without it, Bun's node:http2 calls back each message's
 * write on the next event-loop turn, so the stream goes out a message or two
 * per socket write; that case is kept as a canary: when it fails, Bun no
 * longer defers that way and the patch may be dropped.
 */
import { describe, expect, test } from "bun:test";
import { connect as http2Connect } from "node:http2";
import { Server, ServerCredentials, type ServerWritableStream } from "@grpc/grpc-js";
import { deferWritesLikeNative } from "../../src/grpc/grpc-services.ts";
import { SocketDuplex, type RawSocket } from "../../src/grpc/socket-duplex.ts";

const MESSAGES = 20_000;
const PAYLOAD = 100;

interface Flood extends AsyncDisposable {
  port: number;
  /** Calls of the socket's `write` so far. */
  writes(): number;
  patched: boolean;
}

/** A grpc-js server streaming `count` numbered payloads, served like the agent serves: Bun.listen → SocketDuplex → injector. */
function startFlood(patch: boolean): Flood {
  const identity = (b: Buffer) => b;
  const server = new Server();
  server.addService(
    { Flood: { path: "/test.Flood/Flood", requestStream: false, responseStream: true, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity } },
    {
      Flood: async (call: ServerWritableStream<Buffer, Buffer>) => {
        const count = call.request.readUInt32BE(0);
        for (let i = 0; i < count; i++) {
          const msg = Buffer.alloc(PAYLOAD, 0x61);
          msg.writeUInt32BE(i, 0);
          if (!call.write(msg)) await new Promise((r) => call.once("drain", r));
        }
        call.end();
      },
    },
  );
  const injector = server.createConnectionInjector(ServerCredentials.createInsecure());
  const patched = patch && deferWritesLikeNative(server);
  let writes = 0;
  type Data = { duplex?: SocketDuplex };
  const listener = Bun.listen<Data>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(socket) {
        const raw: RawSocket = {
          write: (data, offset, length) => {
            writes++;
            return socket.write(data, offset, length);
          },
          end: () => socket.end(),
          terminate: () => socket.terminate(),
          pause: () => socket.pause(),
          resume: () => socket.resume(),
          remoteAddress: socket.remoteAddress,
        };
        socket.data = { duplex: new SocketDuplex(raw) };
        injector.injectConnection(socket.data.duplex as SocketDuplex);
      },
      data: (socket, chunk) => socket.data.duplex?.onSocketData(chunk),
      drain: (socket) => socket.data.duplex?.onSocketDrain(),
      close: (socket) => socket.data.duplex?.onSocketClose(),
      error: (socket, err) => socket.data.duplex?.onSocketError(err),
    },
  });
  return {
    port: listener.port,
    writes: () => writes,
    patched,
    async [Symbol.asyncDispose]() {
      server.forceShutdown();
      listener.stop(true);
    },
  };
}

/** Call Flood over plain HTTP/2; the payloads' sequence numbers, in arrival order. */
async function readFlood(port: number, count: number): Promise<number[]> {
  const session = http2Connect(`http://127.0.0.1:${port}`);
  try {
    const req = session.request({ ":method": "POST", ":path": "/test.Flood/Flood", "content-type": "application/grpc", te: "trailers" });
    const framed = Buffer.alloc(9);
    framed.writeUInt32BE(4, 1);
    framed.writeUInt32BE(count, 5);
    req.end(framed);
    const seqs: number[] = [];
    let carry: Buffer = Buffer.alloc(0);
    let status: unknown;
    req.on("trailers", (t) => (status = t["grpc-status"]));
    req.on("data", (d: Buffer) => {
      let buf = carry.length ? Buffer.concat([carry, d]) : d;
      let p = 0;
      while (buf.length - p >= 5 && buf.length - p - 5 >= buf.readUInt32BE(p + 1)) {
        const len = buf.readUInt32BE(p + 1);
        if (len !== PAYLOAD) throw new Error(`message of ${len} bytes`);
        seqs.push(buf.readUInt32BE(p + 5));
        p += 5 + len;
      }
      carry = buf.subarray(p);
    });
    await new Promise<void>((resolve, reject) => {
      req.on("end", resolve);
      req.on("error", reject);
    });
    expect(String(status)).toBe("0");
    expect(carry.length).toBe(0);
    return seqs;
  } finally {
    session.close();
  }
}

describe("server streams over the SocketDuplex", () => {
  test("with deferWritesLikeNative: every message in order, in far fewer socket writes than messages", async () => {
    await using flood = startFlood(true);
    expect(flood.patched).toBe(true);
    const seqs = await readFlood(flood.port, MESSAGES);
    expect(seqs.length).toBe(MESSAGES);
    expect(seqs.every((s, i) => s === i)).toBe(true);
    // 20 000 messages of 105 bytes on the wire ≈ 2.1 MB: a few hundred writes at most.
    expect(flood.writes()).toBeLessThan(MESSAGES / 20);
  }, 30_000);

  test("canary: without it, Bun's node:http2 sends about one message per socket write", async () => {
    await using flood = startFlood(false);
    const seqs = await readFlood(flood.port, 2_000);
    expect(seqs.length).toBe(2_000);
    expect(flood.writes()).toBeGreaterThan(2_000 / 4);
  }, 30_000);
});
