/**
 * A lean HTTP/1.1 load client: one keep-alive TCP connection, one request in
 * flight, responses framed by `Content-Length` only (what the agent sends for
 * every JSON answer). Bun's `fetch` spends ≈ 60–80 µs of CPU per request on
 * the same 2 cores the agent and its tasks share (measured in benchmark 1);
 * this client spends a fraction of it, like wrk does for benchmark 5, so a
 * benchmark's figure is the agent's, not its load generator's.
 */
import type { Socket } from "bun";

/** One answer: status code and body text. */
export interface Http1Response {
  status: number;
  body: string;
}

const HEADER_END = Buffer.from("\r\n\r\n");
const decoder = new TextDecoder();

interface Pending {
  resolve: (res: Http1Response) => void;
  reject: (err: Error) => void;
}

/** A keep-alive connection to `host:port`; `request` sends one request and resolves with its answer. */
export class Http1Connection {
  private buf: Buffer = Buffer.alloc(0);
  private pending: Pending | undefined;
  private closedError: Error | undefined;

  private constructor(
    private readonly socket: Socket<undefined>,
    private readonly host: string,
  ) {}

  /** Connect to `url`'s host and port (http only). */
  static async open(url: string): Promise<Http1Connection> {
    const u = new URL(url);
    let conn: Http1Connection | undefined;
    const socket = await Bun.connect({
      hostname: u.hostname,
      port: Number(u.port),
      socket: {
        data: (_s, chunk) => conn?.onData(chunk),
        close: () => conn?.fail(new Error("connection closed by the server")),
        error: (_s, err) => conn?.fail(err),
      },
    });
    socket.setNoDelay(true);
    conn = new Http1Connection(socket, u.host);
    return conn;
  }

  /** Send `method path` with an optional JSON body; one request at a time per connection. */
  request(method: string, path: string, jsonBody?: string): Promise<Http1Response> {
    if (this.closedError) return Promise.reject(this.closedError);
    if (this.pending) return Promise.reject(new Error("Http1Connection: one request at a time"));
    const head =
      jsonBody === undefined
        ? `${method} ${path} HTTP/1.1\r\nHost: ${this.host}\r\n\r\n`
        : `${method} ${path} HTTP/1.1\r\nHost: ${this.host}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(jsonBody)}\r\n\r\n${jsonBody}`;
    return new Promise<Http1Response>((resolve, reject) => {
      this.pending = { resolve, reject };
      this.socket.write(head);
    });
  }

  close(): void {
    this.closedError ??= new Error("connection closed");
    this.socket.end();
  }

  private fail(err: Error): void {
    this.closedError ??= err;
    const p = this.pending;
    this.pending = undefined;
    p?.reject(err);
  }

  private onData(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const end = this.buf.indexOf(HEADER_END);
    if (end < 0) return;
    const head = this.buf.toString("latin1", 0, end);
    const status = Number(head.slice(9, 12));
    const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (!m) {
      this.fail(new Error(`Http1Connection: an answer without Content-Length: ${head.split("\r\n")[0]}`));
      return;
    }
    const start = end + HEADER_END.length;
    const stop = start + Number(m[1]);
    if (this.buf.length < stop) return;
    const body = decoder.decode(this.buf.subarray(start, stop));
    this.buf = this.buf.subarray(stop);
    const p = this.pending;
    this.pending = undefined;
    p?.resolve({ status, body });
  }
}
