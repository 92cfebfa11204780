/**
 * A Node `Duplex` over a TCP socket accepted by `Bun.listen`, so that grpc-js's
 * HTTP/2 server (through its connection injector) can serve it. The agent's
 * gRPC port is a `Bun.listen` listener rather than a `net.Server`: loading
 * node:net and its stream machinery at start-up costs ≈ 2–3 ms, more than a
 * tenth of the agent's start (bench/README.md, benchmark 10). This module is
 * loaded with the services, on the first connection.
 *
 * Reads: bytes are pushed as they arrive; when the readable side's buffer is
 * full the socket is paused until the consumer reads again.
 *
 * Writes are coalesced per event-loop turn: HTTP/2 writes every frame on its
 * own (a streamed gRPC message is a DATA frame), and one `write(2)` per frame
 * was a quarter of the agent's CPU while it streamed a million log lines
 * (bench/README.md, benchmark 3). A write is queued and acknowledged at once
 * while less than {@link QUEUE_LIMIT} bytes wait; the queue goes to the kernel
 * in one call on the next turn (`setImmediate`). Past the limit, or while the
 * kernel has not taken an earlier buffer, the write's callback waits — the
 * backpressure HTTP/2 sees. What the kernel does not take at once is written
 * on the socket's `drain`; `end()` writes what is queued before it ends the
 * socket, and so does `destroy()` unless the socket itself failed.
 *
 * Once a turn's writes are all with the kernel, the Duplex emits `'drain'`:
 * Bun's HTTP/2 session (1.4.5) over a JS socket can keep frames in its own
 * queue with no flush scheduled, and flushes that queue on its socket's
 * `'drain'`. Without it, a stream's reply could wait for ever on a connection
 * that had served thousands of streams, with or without TLS
 * (test/grpc/fuzz.test.ts, finding 3, both ways).
 */
import { Duplex } from "node:stream";

/** Bytes queued for the next turn's write before a write's callback waits for the socket. */
export const QUEUE_LIMIT = 256 * 1024;

type Done = (err?: Error | null) => void;

/** What the adapter needs of a Bun TCP socket. */
export interface RawSocket {
  write(data: Uint8Array, byteOffset?: number, byteLength?: number): number;
  end(): void;
  terminate(): void;
  pause(): void;
  resume(): void;
  /** Undefined once the connection was reset (Bun clears it). */
  readonly remoteAddress: string | undefined;
  readonly remotePort?: number;
  readonly localAddress?: string;
  readonly localPort?: number;
}

/** The Duplex; the listener forwards the socket's events to the `onSocket…` methods. */
export class SocketDuplex extends Duplex {
  readonly remoteAddress: string;
  readonly remotePort: number | undefined;
  readonly localAddress: string | undefined;
  readonly localPort: number | undefined;
  readonly remoteFamily: "IPv4" | "IPv6";
  #socket: RawSocket;
  /** A buffer the kernel has taken in part; the rest goes on `drain`. */
  #pending: { bytes: Uint8Array; offset: number; done: Done } | undefined;
  #ended = false;
  /** The socket itself failed: nothing more can be written to it. */
  #socketFailed = false;
  /** Writes acknowledged but not yet given to the kernel, in order. */
  #queue: Uint8Array[] = [];
  #queuedBytes = 0;
  #flushScheduled = false;
  /** The callback of a write made past the limit: called once the queue has gone to the kernel. */
  #held: Done | undefined;
  /** `_final`'s continuation, once the queue has gone to the kernel. */
  #finishing: (() => void) | undefined;

  constructor(socket: RawSocket) {
    super({ allowHalfOpen: false });
    this.#socket = socket;
    this.remoteAddress = socket.remoteAddress ?? "";
    this.remotePort = socket.remotePort;
    this.localAddress = socket.localAddress;
    this.localPort = socket.localPort;
    this.remoteFamily = this.remoteAddress.includes(":") ? "IPv6" : "IPv4";
  }

  /** Bytes from the peer. */
  onSocketData(chunk: Uint8Array): void {
    if (!this.push(chunk)) this.#socket.pause();
  }

  /** The kernel takes more: write what is left of the pending buffer. */
  onSocketDrain(): void {
    const p = this.#pending;
    if (p) this.#send(p.bytes, p.offset, p.done);
  }

  /** The socket closed (peer or us): end of the readable side; a pending write fails. */
  onSocketClose(): void {
    this.#ended = true;
    this.#dropQueue(new Error("socket closed"));
    this.push(null);
  }

  /** A socket error. */
  onSocketError(err: Error): void {
    this.#socketFailed = true;
    this.destroy(err);
  }

  override _read(): void {
    if (!this.#ended) this.#socket.resume();
  }

  override _write(chunk: Uint8Array, _encoding: BufferEncoding, done: Done): void {
    this.#enqueue(chunk);
    this.#acknowledge(done);
  }

  override _writev(chunks: { chunk: Uint8Array }[], done: Done): void {
    for (const c of chunks) this.#enqueue(c.chunk);
    this.#acknowledge(done);
  }

  override _final(done: Done): void {
    const end = () => {
      this.#socket.end();
      done();
    };
    if (this.#queue.length === 0 && !this.#pending) end();
    else {
      this.#finishing = end;
      this.#flush();
    }
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    if (!this.#ended) {
      this.#ended = true;
      if (!this.#socketFailed && !this.#pending && this.#queue.length > 0) {
        // Destroyed by its owner with frames still queued for the next turn — HTTP/2's GOAWAY
        // after a protocol error, or at a forced close — which tell the peer why: they go to the
        // kernel (what it takes at once) and the socket ends, instead of a bare close.
        const bytes = Buffer.concat(this.#queue, this.#queuedBytes);
        try {
          this.#socket.write(bytes, 0, bytes.byteLength);
        } catch {
          // gone meanwhile
        }
        this.#socket.end();
      } else this.#socket.terminate();
    }
    this.#dropQueue(err ?? new Error("socket destroyed"));
    done(err);
  }

  #enqueue(chunk: Uint8Array): void {
    this.#queue.push(chunk);
    this.#queuedBytes += chunk.byteLength;
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => {
        this.#flushScheduled = false;
        this.#flush();
      });
    }
  }

  /** Acknowledge a write now, or hold its callback while the queue is full or the kernel is behind. */
  #acknowledge(done: Done): void {
    if (this.#queuedBytes < QUEUE_LIMIT && !this.#pending) done();
    else this.#held = done;
  }

  /** Hand the queue to the kernel in one call (unless an earlier buffer is still going out). */
  #flush(): void {
    if (this.#pending || this.#ended) return;
    if (this.#queue.length === 0) {
      this.#settled();
      return;
    }
    const bytes = this.#queue.length === 1 ? (this.#queue[0] as Uint8Array) : Buffer.concat(this.#queue, this.#queuedBytes);
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#send(bytes, 0, (err) => {
      if (err) {
        this.#dropQueue(err);
        if (!this.destroyed) this.destroy(err);
        return;
      }
      // Written (now, or on drain): what was queued meanwhile goes next, else a held write is released.
      this.#flush();
      // Bun's node:http2 session over a JS socket can leave DATA frames queued in its parser with
      // no flush scheduled (frames queued by write callbacks run while it flushed): they would
      // wait for ever. The session flushes its parser on the socket's 'drain', so once a turn's
      // writes are out, say so (a flush with nothing queued writes nothing, so this stops).
      if (!this.#pending && this.#queue.length === 0 && !this.destroyed) this.emit("drain");
    });
  }

  /**
   * Nothing is left to write — the queue went to the kernel, or (`err`) the
   * socket is gone: release a held write (failing it with `err`), then
   * finish a waiting `end()`.
   */
  #settled(err?: Error): void {
    const held = this.#held;
    this.#held = undefined;
    held?.(err);
    const finishing = this.#finishing;
    this.#finishing = undefined;
    finishing?.();
  }

  /** Fail what waits for the socket: the write in flight and a held callback. Queued bytes are dropped. */
  #dropQueue(err: Error): void {
    const p = this.#pending;
    this.#pending = undefined;
    p?.done(err);
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#settled(err);
  }

  #send(bytes: Uint8Array, offset: number, done: Done): void {
    const n = this.#socket.write(bytes, offset, bytes.byteLength - offset);
    if (n < 0) {
      this.#pending = undefined;
      done(new Error("socket closed"));
    } else if (offset + n >= bytes.byteLength) {
      this.#pending = undefined;
      done();
    } else {
      this.#pending = { bytes, offset: offset + n, done };
    }
  }

  // net.Socket methods HTTP/2 servers call; the agent does not tune these per connection.
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  setTimeout(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
}
