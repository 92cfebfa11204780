/**
 * A raw HTTP/2 client for header blocks a client library will not send (an
 * oversized value, a header field given twice): the connection preface, one
 * request on stream 1 and the types of the frames the server sends back.
 */
import * as net from "node:net";

const utf8 = new TextEncoder();

function concat(parts: readonly Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(parts));
}

/** HPACK (RFC 7541 §6.2.2): a literal header field without indexing, new name, no Huffman coding. */
function hpackLiteral(name: string, value: string): Uint8Array {
  const int7 = (v: number) => {
    if (v < 127) return Uint8Array.of(v);
    const out = [127];
    for (v -= 127; v >= 128; v = Math.floor(v / 128)) out.push((v % 128) | 0x80);
    out.push(v);
    return Uint8Array.from(out);
  };
  const [n, v] = [utf8.encode(name), utf8.encode(value)];
  return concat([Uint8Array.of(0), int7(n.length), n, int7(v.length), v]);
}

function h2Frame(type: number, flags: number, stream: number, payload: Uint8Array): Uint8Array {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return concat([head, payload]);
}

/** HTTP/2 frame types seen in answers. */
export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, GOAWAY: 7 } as const;

/**
 * POST `body` (already gRPC-framed) to `path` on `addr` ("host:port", plain
 * text) with the gRPC request headers and `extra` fields, in order and as
 * given (repeats included; a long block goes out in CONTINUATION frames).
 * Resolves with the types of the frames the server sent, whether it closed
 * the connection and whether it ended the stream (END_STREAM or RST_STREAM):
 * once it closed, once `until(frames, ended)` holds, or after `ms`.
 */
export async function rawGrpcRequest(
  addr: string,
  path: string,
  extra: readonly (readonly [string, string])[],
  body: Uint8Array,
  until: (frames: number[], ended: boolean) => boolean = () => false,
  ms = 2000,
): Promise<{ closed: boolean; frames: number[]; ended: boolean }> {
  const [host, port] = [addr.slice(0, addr.lastIndexOf(":")), Number(addr.slice(addr.lastIndexOf(":") + 1))];
  const sock = net.connect(port, host);
  const frames: number[] = [];
  let ended = false;
  let pending = Buffer.alloc(0);
  const { promise: closed, resolve } = Promise.withResolvers<boolean>();
  const timer = setTimeout(() => resolve(false), ms);
  sock.on("close", () => resolve(true));
  sock.on("error", () => {});
  sock.on("data", (d: Buffer) => {
    pending = Buffer.concat([pending, d]);
    while (pending.length >= 9 && pending.length >= 9 + pending.readUIntBE(0, 3)) {
      const type = pending[3] as number;
      frames.push(type);
      const onStream = pending.readUInt32BE(5) === 1;
      if (onStream && (type === FRAME.RST_STREAM || ((type === FRAME.DATA || type === FRAME.HEADERS) && ((pending[4] as number) & 1) === 1))) ended = true;
      if (type === FRAME.SETTINGS && ((pending[4] as number) & 1) === 0) sock.write(h2Frame(FRAME.SETTINGS, 1, 0, new Uint8Array())); // ack
      pending = pending.subarray(9 + pending.readUIntBE(0, 3));
    }
    if (until(frames, ended)) resolve(false);
  });
  await new Promise((resolve) => sock.once("connect", resolve));
  sock.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
  sock.write(h2Frame(FRAME.SETTINGS, 0, 0, new Uint8Array()));
  const fields: [string, string][] = [
    [":method", "POST"],
    [":scheme", "http"],
    [":path", path],
    [":authority", "raw"],
    ["content-type", "application/grpc"],
    ["te", "trailers"],
    ...extra.map(([k, v]) => [k, v] as [string, string]),
  ];
  const block = concat(fields.map(([k, v]) => hpackLiteral(k, v)));
  const MAX_FRAME = 16_384;
  for (let i = 0; i < block.length; i += MAX_FRAME) {
    const last = i + MAX_FRAME >= block.length;
    sock.write(h2Frame(i === 0 ? FRAME.HEADERS : 9, last ? 4 : 0, 1, block.subarray(i, i + MAX_FRAME)));
  }
  sock.write(h2Frame(FRAME.DATA, 1, 1, body)); // END_STREAM
  const wasClosed = await closed;
  clearTimeout(timer);
  sock.destroy();
  return { closed: wasClosed, frames, ended };
}
