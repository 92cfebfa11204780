/**
 * A minimal protobuf wire writer for the hand-written encoders of hot
 * responses (`encode-task.ts`). It writes into one reusable scratch buffer,
 * so an encode allocates only its result. Writers are not re-entrant: one
 * encode runs to completion before the next starts (they are synchronous).
 */

/** Protobuf wire types used by the hand-written encoders. */
export const WireType = { Varint: 0, Bit64: 1, LengthDelimited: 2 } as const;
/** One of `WireType`. */
export type WireType = (typeof WireType)[keyof typeof WireType];

/** Scratch buffers that grew past this are dropped after use, so one huge task does not pin memory. */
const KEEP_BYTES = 64 * 1024;
const INITIAL_BYTES = 1024;
const TWO_POW_64 = 2n ** 64n;

/**
 * Appends `v` (a non-negative safe integer) as a varint at `at`; returns the
 * next offset. 32-bit arithmetic only: below 2^31 directly, above as low and
 * high words.
 */
export function putVarint(buf: Uint8Array, at: number, v: number): number {
  let o = at;
  if (v < 0x80000000) {
    while (v > 0x7f) {
      buf[o++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[o++] = v;
    return o;
  }
  let lo = v >>> 0;
  let hi = Math.floor(v / 0x100000000) >>> 0;
  for (let i = 0; i < 4; i++) {
    buf[o++] = (lo & 0x7f) | 0x80;
    lo >>>= 7;
  }
  // The fifth byte holds the low word's last 4 bits and the high word's first 3.
  const fifth = lo | ((hi & 0x07) << 4);
  hi >>>= 3;
  if (hi === 0) {
    buf[o++] = fifth;
    return o;
  }
  buf[o++] = fifth | 0x80;
  while (hi > 0x7f) {
    buf[o++] = (hi & 0x7f) | 0x80;
    hi >>>= 7;
  }
  buf[o++] = hi;
  return o;
}

/** Bytes of `v` (a non-negative safe integer) as a varint. */
export function varintSize(v: number): number {
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  return 4 + varintSize(Math.floor(v / 0x10000000));
}

/**
 * Writes protobuf fields into a growing scratch buffer. Nested messages use
 * `fork()` / `join()`, which reserve one byte for the length and move the
 * payload only when it is 128 bytes or longer. Callers check value ranges;
 * the writer encodes what it is given.
 *
 * Every method keeps its common case (short ASCII text, 31-bit numbers,
 * payloads under 128 bytes, room in the buffer) small and moves the rest to
 * a separate method, so the common case stays cheap once the JIT inlines it
 * into an encoder.
 */
export class ProtoWriter {
  private buf = Buffer.allocUnsafe(INITIAL_BYTES);
  private pos = 0;

  /** Start a new message (discards anything written before). */
  reset(): this {
    this.pos = 0;
    return this;
  }

  /** Make room for `n` more bytes. */
  private reserve(n: number): void {
    if (this.pos + n > this.buf.length) this.grow(n);
  }

  private grow(n: number): void {
    const next = Buffer.allocUnsafe(Math.max(this.pos + n, this.buf.length * 2));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** Field tag: `(fieldNo << 3) | wireType`, for field numbers below 2048. */
  tag(fieldNo: number, wireType: WireType): this {
    this.reserve(2);
    const t = fieldNo * 8 + wireType;
    if (t < 0x80) {
      this.buf[this.pos++] = t;
    } else {
      this.buf[this.pos++] = (t & 0x7f) | 0x80;
      this.buf[this.pos++] = t >>> 7;
    }
    return this;
  }

  /** A non-negative safe integer (uint32, uint64, enum and bool values). */
  varint(v: number): this {
    this.reserve(10);
    if (v < 0x80) this.buf[this.pos++] = v;
    else this.pos = putVarint(this.buf, this.pos, v);
    return this;
  }

  /** An int32 or int64 value: negative numbers are written as ten-byte two's complement varints. */
  signed(v: number): this {
    return v >= 0 ? this.varint(v) : this.negative(v);
  }

  private negative(v: number): this {
    this.reserve(10);
    let u = BigInt(v) + TWO_POW_64;
    while (u >= 0x80n) {
      this.buf[this.pos++] = Number(u & 0x7fn) | 0x80;
      u >>= 7n;
    }
    this.buf[this.pos++] = Number(u);
    return this;
  }

  /** A double, little-endian (wire type `Bit64`). */
  double(v: number): this {
    this.reserve(8);
    this.pos = this.buf.writeDoubleLE(v, this.pos);
    return this;
  }

  /** A length-prefixed UTF-8 string (lone surrogates become U+FFFD, as with `TextEncoder`). */
  string(value: string): this {
    const s = typeof value === "string" ? value : String(value);
    const n = s.length;
    if (n >= 0x80) return this.utf8(s);
    // Short ASCII (ids, slots, labels): copied code by code behind a one-byte length.
    this.reserve(1 + n);
    const buf = this.buf;
    const at = this.pos + 1;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) return this.utf8(s);
      buf[at + i] = c;
    }
    buf[this.pos] = n;
    this.pos = at + n;
    return this;
  }

  private utf8(s: string): this {
    const bytes = Buffer.byteLength(s, "utf8");
    this.reserve(10 + bytes);
    this.pos = putVarint(this.buf, this.pos, bytes);
    this.pos += this.buf.write(s, this.pos, bytes, "utf8");
    return this;
  }

  /** Start a length-delimited payload (after its tag); returns the mark to pass to `join`. */
  fork(): number {
    this.reserve(1);
    return this.pos++;
  }

  /** End the payload started at `mark`: write its length in front of it. */
  join(mark: number): this {
    const len = this.pos - mark - 1;
    if (len < 0x80) this.buf[mark] = len;
    else this.joinLong(mark, len);
    return this;
  }

  private joinLong(mark: number, len: number): void {
    const extra = varintSize(len) - 1;
    this.reserve(extra);
    this.buf.copyWithin(mark + 1 + extra, mark + 1, this.pos);
    this.pos += extra;
    putVarint(this.buf, mark, len);
  }

  /** A copy of the bytes written since `reset`. */
  finish(): Uint8Array {
    const out = new Uint8Array(this.pos);
    out.set(this.buf.subarray(0, this.pos));
    if (this.buf.length > KEEP_BYTES) this.buf = Buffer.allocUnsafe(INITIAL_BYTES);
    this.pos = 0;
    return out;
  }
}
