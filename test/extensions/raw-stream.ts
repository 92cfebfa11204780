/**
 * Streaming HTTP clients on a raw TCP socket, for watch tests that need what
 * fetch and WebSocket do not give: a reader that stops reading (the kernel
 * buffers fill and the agent sees backpressure), and more concurrent streams
 * than fetch allows at once.
 *
 * - `rawSse`: GET an SSE route; de-chunks the body and parses SSE frames.
 * - `rawWs`: open a WebSocket by hand (RFC 6455 client handshake), parse the
 *   server's frames.
 * Both can `pause()` (stop reading the socket) and `resume()`.
 */
import { connect, type Socket } from "node:net";
import { parseSseText, type SseEvent } from "../helpers/sse.ts";

/** A byte stream from a socket, pausable, with a line-oriented head reader. */
class RawConn {
  private chunks: Buffer[] = [];
  private buffered = Buffer.alloc(0);
  private ended = false;
  private error: Error | undefined;
  private wake: (() => void) | undefined;

  constructor(readonly socket: Socket) {
    socket.on("data", (b: Buffer) => {
      this.chunks.push(b);
      this.poke();
    });
    socket.on("end", () => {
      this.ended = true;
      this.poke();
    });
    socket.on("close", () => {
      this.ended = true;
      this.poke();
    });
    socket.on("error", (e) => {
      this.error = e;
      this.poke();
    });
  }

  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** Wait until at least `n` bytes are buffered (false: the stream ended first). */
  async need(n: number): Promise<boolean> {
    for (;;) {
      if (this.chunks.length > 0) {
        this.buffered = Buffer.concat([this.buffered, ...this.chunks]);
        this.chunks = [];
      }
      if (this.buffered.length >= n) return true;
      if (this.error) throw this.error;
      if (this.ended) return false;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  /** Take `n` bytes (after `need(n)`). */
  take(n: number): Buffer {
    const out = this.buffered.subarray(0, n);
    this.buffered = this.buffered.subarray(n);
    return out;
  }

  /** Read up to and including `delim`; undefined if the stream ended first. */
  async until(delim: string): Promise<string | undefined> {
    for (let want = 1; ; ) {
      if (!(await this.need(want))) return undefined;
      const i = this.buffered.indexOf(delim);
      if (i >= 0) return this.take(i + delim.length).toString("latin1");
      want = this.buffered.length + 1;
    }
  }

  /** Whatever is buffered now, or the next chunk; undefined at the end. */
  async some(): Promise<Buffer | undefined> {
    if (!(await this.need(1))) return undefined;
    return this.take(this.buffered.length);
  }
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port }, () => resolve(s));
    s.once("error", reject);
  });
}

/** Pause/resume/close of a raw stream. */
export interface RawControl {
  /** Stop reading from the socket: the kernel buffers fill, then the server sees backpressure. */
  pause(): void;
  resume(): void;
  close(): void;
}

export interface RawSse extends RawControl, AsyncIterable<SseEvent> {
  /** The HTTP status line and headers. */
  head: string;
}

/** GET `path` as an SSE stream over a raw socket; resolves once the response head arrived. */
export async function rawSse(port: number, path: string): Promise<RawSse> {
  const socket = await open(port);
  const conn = new RawConn(socket);
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n\r\n`);
  const head = await conn.until("\r\n\r\n");
  if (head === undefined || !head.startsWith("HTTP/1.1 200")) {
    socket.destroy();
    throw new Error(`SSE ${path}: ${head ?? "no response"}`);
  }
  const chunked = /^transfer-encoding:\s*chunked/im.test(head);

  async function* body(): AsyncGenerator<string> {
    const decoder = new TextDecoder();
    if (!chunked) {
      for (let b = await conn.some(); b; b = await conn.some()) yield decoder.decode(b, { stream: true });
      return;
    }
    for (;;) {
      const sizeLine = await conn.until("\r\n");
      if (sizeLine === undefined) return;
      const size = Number.parseInt(sizeLine, 16);
      if (size === 0) return;
      if (!(await conn.need(size + 2))) return;
      yield decoder.decode(conn.take(size), { stream: true });
      conn.take(2);
    }
  }

  function events(): AsyncGenerator<SseEvent> {
    return parseSseText(body());
  }

  return {
    head,
    pause: () => socket.pause(),
    resume: () => socket.resume(),
    close: () => socket.destroy(),
    [Symbol.asyncIterator]: () => events(),
  };
}

export interface RawWs extends RawControl, AsyncIterable<any> {}

/** Open a WebSocket to `path` by hand; iterates the parsed JSON of text messages until the close frame. */
export async function rawWs(port: number, path: string): Promise<RawWs> {
  const socket = await open(port);
  const conn = new RawConn(socket);
  const key = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64");
  socket.write(
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  const head = await conn.until("\r\n\r\n");
  if (head === undefined || !head.startsWith("HTTP/1.1 101")) {
    socket.destroy();
    throw new Error(`WebSocket ${path}: ${head ?? "no response"}`);
  }

  async function* messages(): AsyncGenerator<any> {
    let parts: Buffer[] = [];
    for (;;) {
      if (!(await conn.need(2))) return;
      const h = conn.take(2);
      const b0 = h[0] ?? 0;
      const b1 = h[1] ?? 0;
      const fin = (b0 & 0x80) !== 0;
      const opcode = b0 & 0x0f;
      let len = b1 & 0x7f;
      if (b1 & 0x80) throw new Error("server frames must not be masked");
      if (len === 126) {
        if (!(await conn.need(2))) return;
        len = conn.take(2).readUInt16BE(0);
      } else if (len === 127) {
        if (!(await conn.need(8))) return;
        len = Number(conn.take(8).readBigUInt64BE(0));
      }
      if (!(await conn.need(len))) return;
      const payload = Buffer.from(conn.take(len));
      if (opcode === 0x8) return; // close
      if (opcode === 0x9 || opcode === 0xa) continue; // ping / pong
      parts.push(payload);
      if (!fin) continue;
      const text = Buffer.concat(parts).toString("utf8");
      parts = [];
      yield JSON.parse(text);
    }
  }

  return {
    pause: () => socket.pause(),
    resume: () => socket.resume(),
    close: () => socket.destroy(),
    [Symbol.asyncIterator]: () => messages(),
  };
}
