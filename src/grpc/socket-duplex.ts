/**
 * A Node `Duplex` over a TCP socket accepted by `Bun.listen`, so that grpc-js's
 * HTTP/2 server (through its connection injector) can serve it. The agent's
 * gRPC port is a `Bun.listen` listener rather than a `net.Server`: loading
 * node:net and its stream machinery at start-up costs ≈ 2–3 ms, more than a
 * tenth of the agent's start (bench/README.md, benchmark 10). This module is
 * loaded with the services, on the first connection.
 *
 * Reads: bytes are pushed as they arrive; when the readable side's buffer is
 * full the socket is paused until the consumer reads again. Writes: one
 * buffer in flight at a time (as `Writable` guarantees); what the kernel does
 * not take at once is written on the socket's `drain`.
 */
import { Duplex } from "node:stream";

/** What the adapter needs of a Bun TCP socket. */
export interface RawSocket {
  write(data: Uint8Array, byteOffset?: number, byteLength?: number): number;
  end(): void;
  terminate(): void;
  pause(): void;
  resume(): void;
  readonly remoteAddress: string;
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
  #pending: { bytes: Uint8Array; offset: number; done: (err?: Error | null) => void } | undefined;
  #ended = false;

  constructor(socket: RawSocket) {
    super({ allowHalfOpen: false });
    this.#socket = socket;
    this.remoteAddress = socket.remoteAddress;
    this.remotePort = socket.remotePort;
    this.localAddress = socket.localAddress;
    this.localPort = socket.localPort;
    this.remoteFamily = socket.remoteAddress.includes(":") ? "IPv6" : "IPv4";
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
    const p = this.#pending;
    this.#pending = undefined;
    p?.done(new Error("socket closed"));
    this.push(null);
  }

  /** A socket error. */
  onSocketError(err: Error): void {
    this.destroy(err);
  }

  override _read(): void {
    if (!this.#ended) this.#socket.resume();
  }

  override _write(chunk: Uint8Array, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    this.#send(chunk, 0, done);
  }

  override _writev(chunks: { chunk: Uint8Array }[], done: (err?: Error | null) => void): void {
    // HTTP/2 writes many small frames: one syscall for all of them.
    this.#send(Buffer.concat(chunks.map((c) => c.chunk)), 0, done);
  }

  override _final(done: (err?: Error | null) => void): void {
    this.#socket.end();
    done();
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    if (!this.#ended) {
      this.#ended = true;
      this.#socket.terminate();
    }
    const p = this.#pending;
    this.#pending = undefined;
    p?.done(err ?? new Error("socket destroyed"));
    done(err);
  }

  #send(bytes: Uint8Array, offset: number, done: (err?: Error | null) => void): void {
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
