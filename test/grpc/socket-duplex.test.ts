/**
 * The Duplex over a Bun socket: the writes of one turn reach the socket in
 * one call on the next, partial writes finish on drain while later writes
 * wait, a full queue holds the writer back, end() writes what is queued
 * first, a full read buffer pauses the socket until the consumer reads, close
 * ends the readable side and fails what waits, destroy writes what is queued
 * and ends the socket (terminates it when the socket itself failed).
 */
import { describe, expect, test } from "bun:test";
import { QUEUE_LIMIT, SocketDuplex, type RawSocket } from "../../src/grpc/socket-duplex.ts";

/** The next event-loop turn (when queued writes go to the socket). */
const nextTurn = () => new Promise<void>((r) => setImmediate(r));

/** A socket whose kernel buffer takes `room` bytes per write call until refilled. */
function fakeSocket(room = Infinity) {
  const calls: string[] = [];
  const written: number[] = [];
  const s = {
    room,
    closed: false,
    write(data: Uint8Array, offset = 0, length = data.byteLength - offset) {
      calls.push("write");
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
  test("a socket reset before it is handed over (no remote address any more) still makes a Duplex", () => {
    const { socket } = fakeSocket();
    const reset = { ...socket, remoteAddress: undefined } as unknown as RawSocket;
    const d = new SocketDuplex(reset);
    expect([d.remoteAddress, d.remoteFamily]).toEqual(["", "IPv4"]);
    expect(new SocketDuplex(socket).remoteFamily).toBe("IPv6");
  });

  test("'drain' follows each turn's writes once they are all with the kernel (Bun's HTTP/2 session flushes its frame queue on it)", async () => {
    const { socket } = fakeSocket(3);
    const d = new SocketDuplex(socket);
    let drains = 0;
    d.on("drain", () => drains++);
    d.write(Buffer.from([1, 2]));
    d.write(Buffer.from([3, 4]));
    await nextTurn();
    expect(drains).toBe(0); // one byte still waits for the kernel
    socket.room = 10;
    d.onSocketDrain();
    expect(drains).toBe(1);
    d.write(Buffer.from([5]));
    await nextTurn();
    expect(drains).toBe(2);
    await nextTurn();
    expect(drains).toBe(2); // a turn without writes says nothing
  });

  test("the writes of one turn reach the socket in one call on the next turn, in order", async () => {
    const { socket, calls, written } = fakeSocket();
    const d = new SocketDuplex(socket);
    const acked: number[] = [];
    d.write(Buffer.from([1, 2]), () => acked.push(1));
    d.write(Buffer.from([3]), () => acked.push(2));
    d.write(Buffer.from([4, 5]), () => acked.push(3));
    expect(written).toEqual([]);
    await nextTurn();
    expect(written).toEqual([1, 2, 3, 4, 5]);
    expect(calls.filter((c) => c === "write")).toEqual(["write"]);
    expect(acked).toEqual([1, 2, 3]);
    expect([d.remoteAddress, d.remotePort, d.remoteFamily]).toEqual(["::1", 5555, "IPv6"]);
  });

  test("a buffer the kernel takes in part goes out on drains; a write made meanwhile waits for it", async () => {
    const { socket, written } = fakeSocket(3);
    const d = new SocketDuplex(socket);
    let first = false;
    let second = false;
    d.write(Buffer.from([1, 2, 3, 4, 5, 6, 7]), () => (first = true));
    await nextTurn();
    expect([written, first]).toEqual([[1, 2, 3], true]); // queued under the limit: acknowledged
    d.write(Buffer.from([8]), () => (second = true));
    await nextTurn();
    expect([written, second]).toEqual([[1, 2, 3], false]); // the kernel is behind: held
    socket.room = 3;
    d.onSocketDrain();
    expect([written, second]).toEqual([[1, 2, 3, 4, 5, 6], false]);
    socket.room = 10;
    d.onSocketDrain();
    expect([written, second]).toEqual([[1, 2, 3, 4, 5, 6, 7, 8], true]);
  });

  test("past QUEUE_LIMIT bytes a write's callback waits until the queue has gone to the socket", async () => {
    const { socket, written } = fakeSocket();
    const d = new SocketDuplex(socket);
    let done = false;
    d.write(Buffer.alloc(QUEUE_LIMIT, 7), () => (done = true));
    expect(done).toBe(false);
    await nextTurn();
    expect([written.length, done]).toEqual([QUEUE_LIMIT, true]);
  });

  test("end() writes what is queued before it ends the socket", async () => {
    const { socket, calls, written } = fakeSocket();
    const d = new SocketDuplex(socket);
    d.write(Buffer.from([1, 2]));
    d.end(Buffer.from([3]));
    await new Promise((r) => d.on("finish", r));
    expect(written).toEqual([1, 2, 3]);
    expect(calls).toEqual(["write", "end"]);
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

  test("close ends the readable side; what waits for the kernel fails and the stream closes", async () => {
    const quiet = new SocketDuplex(fakeSocket().socket);
    const ended = new Promise<void>((r) => quiet.on("end", () => r()));
    quiet.resume();
    quiet.onSocketClose();
    await ended;

    const { socket } = fakeSocket(0);
    const d = new SocketDuplex(socket);
    const closed = new Promise<void>((r) => d.on("close", () => r()));
    const errors: string[] = [];
    d.on("error", (err) => errors.push(err.message));
    d.write(Buffer.from("x"));
    await nextTurn(); // "x" waits for the kernel
    const failed = new Promise<Error | null | undefined>((r) => d.write(Buffer.from("y"), (err) => r(err)));
    d.onSocketClose();
    expect((await failed)?.message).toBe("socket closed");
    await closed;
    expect(errors).toEqual(["socket closed"]);
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

  test("destroy by the owner writes what is queued (HTTP/2's GOAWAY) and ends the socket; a failed socket is terminated", async () => {
    const a = fakeSocket();
    const d = new SocketDuplex(a.socket);
    d.write(Buffer.from([7, 7, 7])); // e.g. a GOAWAY frame, queued for the next turn
    d.destroy(new Error("protocol error"));
    d.on("error", () => {});
    expect(a.written).toEqual([7, 7, 7]);
    expect(a.calls).toEqual(["write", "end"]);
    await nextTurn();
    expect(a.calls).toEqual(["write", "end"]); // nothing written twice

    const b = fakeSocket();
    const e = new SocketDuplex(b.socket);
    e.on("error", () => {});
    e.write(Buffer.from([1]));
    e.onSocketError(new Error("ECONNRESET"));
    expect(b.calls).toEqual(["terminate"]);
    expect(b.written).toEqual([]);
  });
});
