/**
 * Counting log subscribers for the streaming benchmarks: an SSE reader
 * (fetch) and two gRPC `StreamTaskLogs` readers — grpc-js with raw bytes, and
 * a plain HTTP/2 reader that splits the gRPC length-prefixed messages itself
 * (grpc-js's client spends ≈ 4.5 µs of CPU per message here, more than
 * the server: bench/README.md, benchmark 3). All count events by type without
 * building objects and add up `lagged` markers, so a run can be checked
 * exactly: events received + events skipped = events the task produced.
 */
import { Client, credentials, type ClientReadableStream } from "@grpc/grpc-js";
import { connect as http2Connect } from "node:http2";

export interface StreamCount {
  /** `chunk` events received (output lines). */
  chunks: number;
  /** Other events received (runStarted, runFinished). */
  markers: number;
  /** Sum of `skipped` over `lagged` markers. */
  skipped: number;
  /** `lagged` markers received. */
  laggedMarkers: number;
  /** ms from the start of the call to the end of the stream. */
  ms: number;
}

function count(block: string, needle: string): number {
  let n = 0;
  for (let p = block.indexOf(needle); p !== -1; p = block.indexOf(needle, p + needle.length)) n++;
  return n;
}

/** Read an SSE log stream to its end, counting. */
export async function readSse(url: string, signal?: AbortSignal): Promise<StreamCount> {
  const t0 = performance.now();
  const res = await fetch(url, { signal });
  if (res.status !== 200 || !res.body) throw new Error(`SSE ${url} answered ${res.status}`);
  return readSseBody(res.body, t0);
}

/** Count an already opened SSE body. */
export async function readSseBody(body: ReadableStream<Uint8Array>, t0 = performance.now()): Promise<StreamCount> {
  const out: StreamCount = { chunks: 0, markers: 0, skipped: 0, laggedMarkers: 0, ms: 0 };
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let carry = "";
  const consume = (block: string) => {
    out.chunks += count(block, "event: chunk\n");
    out.markers += count(block, "event: run-started\n") + count(block, "event: run-finished\n");
    const lag = "event: lagged\ndata: ";
    for (let p = block.indexOf(lag); p !== -1; p = block.indexOf(lag, p + lag.length)) {
      const end = block.indexOf("\n", p + lag.length);
      out.skipped += (JSON.parse(block.slice(p + lag.length, end === -1 ? undefined : end)) as { skipped: number }).skipped;
      out.laggedMarkers++;
    }
  };
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const text = carry + decoder.decode(value, { stream: true });
    const end = text.lastIndexOf("\n\n");
    if (end === -1) {
      carry = text;
      continue;
    }
    consume(text.slice(0, end + 1));
    carry = text.slice(end + 2);
  }
  consume(carry + decoder.decode());
  out.ms = performance.now() - t0;
  return out;
}

const identity = (b: Buffer) => b;

/** A raw-bytes grpc-js client (4 MiB messages, like the agent). */
export function rawGrpcClient(addr: string): Client {
  return new Client(addr, credentials.createInsecure(), { "grpc.max_receive_message_length": 4 * 1024 * 1024 });
}

/** `StreamTaskLogsRequest{task_id}` / `GetTaskStatusRequest{task_id}`: field 1, string. */
export function taskIdRequest(taskId: string): Buffer {
  const id = Buffer.from(taskId, "utf8");
  return Buffer.concat([Buffer.from([0x0a, id.length]), id]);
}

function varint(buf: Uint8Array, pos: number): [number, number] {
  let value = 0;
  let mul = 1;
  for (;;) {
    const b = buf[pos++] as number;
    value += (b & 0x7f) * mul;
    if (b < 0x80) return [value, pos];
    mul *= 128;
  }
}

/** Count one `OutputEventProto` by its oneof tag: chunk (1), lagged (4, with its `skipped`), or a run marker. */
function countMessage(out: StreamCount, msg: Uint8Array): void {
  const tag = msg[0];
  if (tag === 0x0a) out.chunks++;
  else if (tag === 0x22) {
    // lagged: field 4 (len) → LaggedProto { skipped = 1 varint }
    const [, inner] = varint(msg, 1);
    out.skipped += msg[inner] === 0x08 ? varint(msg, inner + 1)[0] : 0;
    out.laggedMarkers++;
  } else out.markers++;
}

/** Stream and connection receive window of the plain HTTP/2 reader. */
const H2_WINDOW = 8 * 1024 * 1024;

/**
 * A server-streaming gRPC call whose messages are `OutputEventProto`s (as
 * `StreamTaskLogs` answers `taskIdRequest(id)`) over a plain HTTP/2 stream
 * (`node:http2`): the request framed by hand, the response's DATA split into
 * gRPC messages (5-byte prefix: flag, big-endian length) and counted; rejects
 * unless the call ends with `grpc-status: 0`.
 */
export function readGrpcH2(addr: string, path: string, body: Uint8Array): Promise<StreamCount> {
  const t0 = performance.now();
  const out: StreamCount = { chunks: 0, markers: 0, skipped: 0, laggedMarkers: 0, ms: 0 };
  const framed = Buffer.alloc(5 + body.length);
  framed.writeUInt32BE(body.length, 1);
  framed.set(body, 5);
  // Wide flow-control windows, as high-throughput clients open them (Go's gRPC grows its window to
  // 16 MiB by bandwidth-delay probes): with 64 KiB ones the server sends a few frames per round trip.
  const session = http2Connect(`http://${addr}`, { settings: { initialWindowSize: H2_WINDOW } });
  session.on("connect", () => session.setLocalWindowSize(H2_WINDOW));
  return new Promise<StreamCount>((resolve, reject) => {
    session.on("error", reject);
    const req = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
    let carry: Buffer | undefined;
    let status: string | undefined;
    req.on("response", (headers) => {
      // A call that fails at once answers headers-only, grpc-status among them.
      if (headers["grpc-status"] !== undefined) status = String(headers["grpc-status"]);
    });
    req.on("trailers", (trailers) => {
      status = String(trailers["grpc-status"]);
    });
    req.on("data", (data: Buffer) => {
      let buf = carry ? Buffer.concat([carry, data]) : data;
      let p = 0;
      while (buf.length - p >= 5) {
        const len = buf.readUInt32BE(p + 1);
        if (buf.length - p - 5 < len) break;
        countMessage(out, buf.subarray(p + 5, p + 5 + len));
        p += 5 + len;
      }
      carry = p < buf.length ? buf.subarray(p) : undefined;
    });
    req.on("error", reject);
    req.on("end", () => {
      session.close();
      out.ms = performance.now() - t0;
      if (status !== "0") reject(new Error(`${path} ended with grpc-status ${status}`));
      else if (carry) reject(new Error(`${path} ended inside a message (${carry.length} bytes left)`));
      else resolve(out);
    });
    req.end(framed);
  });
}

/** Start `StreamTaskLogs` and count its `OutputEventProto` messages by oneof tag until the stream ends. */
export function readGrpcLogs(client: Client, taskId: string): { done: Promise<StreamCount>; call: ClientReadableStream<Buffer> } {
  const t0 = performance.now();
  const out: StreamCount = { chunks: 0, markers: 0, skipped: 0, laggedMarkers: 0, ms: 0 };
  const call = client.makeServerStreamRequest<Buffer, Buffer>("/solti.v1.SoltiApi/StreamTaskLogs", identity, identity, taskIdRequest(taskId));
  const done = new Promise<StreamCount>((resolve, reject) => {
    call.on("data", (msg: Buffer) => countMessage(out, msg));
    call.on("error", reject);
    call.on("end", () => {
      out.ms = performance.now() - t0;
      resolve(out);
    });
  });
  return { done, call };
}
