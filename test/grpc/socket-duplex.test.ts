/**
 * The Duplex over a Bun socket: partial writes finish on drain, a full read
 * buffer pauses the socket until the consumer reads, close ends the readable
 * side and fails a pending write, destroy terminates the socket.
 */
import { describe, expect, test } from "bun:test";
import { SocketDuplex, type RawSocket } from "../../src/grpc/socket-duplex.ts";

/** A socket whose kernel buffer takes `room` bytes per write call until refilled. */
function fakeSocket(room = Infinity) {
  const calls: string[] = [];
  const written: number[] = [];
  const s = {
    room,
    closed: false,
    write(data: Uint8Array, offset = 0, length = data.byteLength - offset) {
      if (s.closed) return -1;
      const n = Math.min(length, s.room);
      s.room -= n;
      for (const b of data.subarray(offset, offset + n)) written.push(b);
      return n;
    },
    end: () => calls.push("end"),
    terminate: () => calls.push("terminate"),
    pause: () => calls.push("pause"),
    resume: () => calls.push("resume"),
    remoteAddress: "::1",
    remotePort: 5555,
  };
  return { socket: s as RawSocket & { room: number; closed: boolean }, calls, written };
}

describe("SocketDuplex", () => {
  test("a write the kernel takes in part completes after drains, in order", async () => {
    const { socket, written } = fakeSocket(3);
    const d = new SocketDuplex(socket);
    let done = false;
    d.write(Buffer.from([1, 2, 3, 4, 5, 6, 7]), () => (done = true));
    expect([written, done]).toEqual([[1, 2, 3], false]);
    socket.room = 3;
    d.onSocketDrain();
    expect(written).toEqual([1, 2, 3, 4, 5, 6]);
    socket.room = 10;
    d.onSocketDrain();
    await new Promise((r) => setImmediate(r));
    expect([written, done]).toEqual([[1, 2, 3, 4, 5, 6, 7], true]);
    expect([d.remoteAddress, d.remotePort, d.remoteFamily]).toEqual(["::1", 5555, "IPv6"]);
  });

  test("a full readable buffer pauses the socket; reading resumes it", async () => {
    const { socket, calls } = fakeSocket();
    const d = new SocketDuplex(socket);
    const big = Buffer.alloc(d.readableHighWaterMark + 1);
    d.onSocketData(big);
    expect(calls).toContain("pause");
    const got: Buffer[] = [];
    d.on("data", (c: Buffer) => got.push(c));
    await new Promise((r) => setImmediate(r));
    expect(calls.at(-1)).toBe("resume");
    expect(Buffer.concat(got).length).toBe(big.length);
  });

  test("close ends the readable side; a pending write fails and the stream closes", async () => {
    const quiet = new SocketDuplex(fakeSocket().socket);
    const ended = new Promise<void>((r) => quiet.on("end", () => r()));
    quiet.resume();
    quiet.onSocketClose();
    await ended;

    const { socket } = fakeSocket(0);
    const d = new SocketDuplex(socket);
    const closed = new Promise<void>((r) => d.on("close", () => r()));
    d.on("error", () => {});
    const failed = new Promise<Error | null | undefined>((r) => d.write(Buffer.from("x"), (err) => r(err)));
    d.onSocketClose();
    expect((await failed)?.message).toBe("socket closed");
    await closed;
  });

  test("destroy terminates the socket once; end() ends its write side", async () => {
    const a = fakeSocket();
    const d = new SocketDuplex(a.socket);
    d.end();
    await new Promise((r) => d.on("finish", r));
    expect(a.calls).toEqual(["end"]);
    const b = fakeSocket();
    const e = new SocketDuplex(b.socket);
    e.destroy();
    e.destroy();
    await new Promise((r) => setImmediate(r));
    expect(b.calls.filter((c) => c === "terminate")).toEqual(["terminate"]);
  });
});
