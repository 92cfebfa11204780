/**
 * Several server-stream messages in one HTTP/2 write.
 *
 * A gRPC response body is a byte stream of length-prefixed messages (a flag
 * byte, a 4-byte big-endian length, the message); where DATA frames split it
 * is not part of the protocol. grpc-js writes each message on its own (one
 * `stream.write`, one DATA frame: ≈ 0.4 µs of server CPU per message here),
 * which bounds a log stream of one message per line. The agent's grpc-js
 * patch (`patches/`) lets a value carrying already framed messages through
 * `serializeMessage` unchanged: a client still reads one `OutputEventProto`
 * per line, but many go out in one write. Without the patch (`framingSupported`
 * false) every message is written on its own, as before.
 */
import { BaseServerInterceptingCall } from "@grpc/grpc-js/build/src/server-interceptors";

/** The key grpc-js's (patched) `serializeMessage` looks for: its value is written as it is. */
const FRAMED = Symbol.for("grpc-js.framedMessages");

/** A value grpc-js writes unchanged: length-prefixed messages back to back. */
export interface FramedMessages {
  readonly [FRAMED]: Buffer;
}

/** Wrap already framed bytes so grpc-js writes them unchanged. */
function framed(bytes: Buffer): FramedMessages {
  return { [FRAMED]: bytes };
}

/**
 * Whether this grpc-js writes a `FramedMessages` value unchanged: its own
 * `serializeMessage`, asked to serialize one, must return the bytes without
 * calling the method's serializer.
 */
export const framingSupported: boolean = (() => {
  const bytes = Buffer.from([0, 0, 0, 0, 0]);
  const probe = {
    handler: {
      serialize(): never {
        throw new Error("not patched");
      },
    },
  };
  try {
    return (BaseServerInterceptingCall.prototype as unknown as { serializeMessage(v: unknown): unknown }).serializeMessage.call(probe, framed(bytes)) === bytes;
  } catch {
    return false;
  }
})();

/** Bytes framed together at most; a larger message is written on its own. */
export const MAX_FRAMED_BYTES = 64 * 1024;

/** The gRPC message prefix: compressed flag (0) + length. */
const PREFIX = 5;

/**
 * Collects encoded messages and frames them into one buffer. `add` refuses a
 * message when the batch would pass `MAX_FRAMED_BYTES` (take the batch first)
 * or when the message alone is too large to share a write (write it alone,
 * through the normal path, which also applies the send-size limit).
 */
export class MessageFramer {
  private readonly parts: Uint8Array[] = [];
  private bytes = 0;

  /** Messages waiting to be taken. */
  get size(): number {
    return this.parts.length;
  }

  /** Whether `message` may ever be framed with others. */
  static fits(message: Uint8Array): boolean {
    return message.byteLength + PREFIX <= MAX_FRAMED_BYTES;
  }

  /** Add one encoded message; false when it does not fit in this batch. */
  add(message: Uint8Array): boolean {
    const next = this.bytes + PREFIX + message.byteLength;
    if (next > MAX_FRAMED_BYTES) return false;
    this.parts.push(message);
    this.bytes = next;
    return true;
  }

  /** The waiting messages as one framed value, and start a new batch. */
  take(): FramedMessages {
    const out = Buffer.allocUnsafe(this.bytes);
    let at = 0;
    for (const m of this.parts) {
      out[at] = 0;
      out.writeUInt32BE(m.byteLength, at + 1);
      out.set(m, at + PREFIX);
      at += PREFIX + m.byteLength;
    }
    this.parts.length = 0;
    this.bytes = 0;
    return framed(out);
  }
}
