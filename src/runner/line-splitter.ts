/**
 * Byte-level line splitter for process output (the log hot path).
 *
 * Works on raw bytes: newlines are found with `Uint8Array.indexOf(10)`, the
 * partial last line is kept as bytes (so a UTF-8 sequence split between two
 * chunks is decoded whole), and the complete lines of a chunk are decoded with
 * ONE `TextDecoder` call and split on "\n" — decoding once per line measured
 * about 4× slower. Invalid UTF-8 becomes U+FFFD; a "\r" before "\n" is dropped.
 *
 * Memory is bounded by `maxLineBytes`: a longer line keeps only its first
 * `maxLineBytes` bytes (cut on a character boundary) plus a counter of dropped
 * bytes, and is emitted with {@link truncationMarker} appended.
 */

/** Splits a byte stream into lines; `push` per chunk, `end` once at EOF. */
export interface LineSplitter {
  /** Feeds one chunk; returns the lines it completed (possibly none). The chunk is not retained. */
  push(chunk: Uint8Array): string[];
  /** Flushes the partial last line (a line without a trailing newline), if any. */
  end(): string[];
}

/** The suffix appended to a line that was cut because it exceeded the byte limit. */
export function truncationMarker(droppedBytes: number): string {
  return ` …[truncated ${droppedBytes} bytes]`;
}

const LF = 10;
const CR = 13;
const INITIAL_TAIL_CAPACITY = 256;

/**
 * Where to cut a line of `length` bytes so that at most `max` bytes remain and
 * no UTF-8 character is split. `byteAt(i)` reads byte i of the line; it is only
 * called for indexes in [max-3, max], so invalid input cannot make it wander.
 */
function cutPoint(byteAt: (i: number) => number, max: number): number {
  let lead = max;
  for (let back = 0; back < 3 && lead > 0 && (byteAt(lead) & 0xc0) === 0x80; back++) lead--;
  if (lead === max) return max; // the first dropped byte starts a character
  const b = byteAt(lead);
  const seqLen = b >= 0xf0 && b <= 0xf7 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
  // Cut before the lead byte only if its (well-formed) sequence straddles `max`.
  return b >= 0xc0 && lead + seqLen > max ? lead : max;
}

/** Creates a splitter that cuts lines longer than `maxLineBytes` bytes (CRLF's "\r" excluded). */
export function createLineSplitter(maxLineBytes: number): LineSplitter {
  if (!Number.isSafeInteger(maxLineBytes) || maxLineBytes < 0) {
    throw new RangeError(`maxLineBytes must be a non-negative integer, got ${maxLineBytes}`);
  }
  const max = maxLineBytes;
  const decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

  // The line in progress: its kept bytes, how many bytes were dropped after them,
  // and its last byte seen (to strip a "\r" whose "\n" arrives in the next chunk).
  let tail = new Uint8Array(0);
  let tailLen = 0;
  let dropped = 0;
  let lastByte = -1;

  function appendPartial(chunk: Uint8Array, from: number, to: number): void {
    const n = to - from;
    if (n === 0) return;
    lastByte = chunk[to - 1]!;
    if (dropped > 0) {
      dropped += n;
      return;
    }
    if (tailLen + n <= max) {
      ensureCapacity(tailLen + n);
      tail.set(chunk.subarray(from, to), tailLen);
      tailLen += n;
      return;
    }
    // Crossing the limit: keep up to `max` bytes of (tail ++ segment), drop the rest for good.
    const before = tailLen;
    const cut = cutPoint((i) => (i < before ? tail[i]! : chunk[from + i - before]!), max);
    if (cut >= before) {
      ensureCapacity(cut);
      tail.set(chunk.subarray(from, from + cut - before), before);
    }
    tailLen = cut;
    dropped = before + n - cut;
  }

  function ensureCapacity(needed: number): void {
    if (needed <= tail.length) return;
    let cap = Math.max(tail.length * 2, INITIAL_TAIL_CAPACITY);
    while (cap < needed) cap *= 2;
    const grown = new Uint8Array(Math.min(cap, Math.max(max, needed)));
    grown.set(tail.subarray(0, tailLen));
    tail = grown;
  }

  function finishPartial(newlineTerminated: boolean): string {
    let len = tailLen;
    let d = dropped;
    if (newlineTerminated && lastByte === CR) {
      // The "\r" is the line's last byte: either among the dropped bytes or the last kept one.
      if (d > 0) d--;
      else len--;
    }
    const text = decoder.decode(tail.subarray(0, len));
    tailLen = 0;
    dropped = 0;
    lastByte = -1;
    return d > 0 ? text + truncationMarker(d) : text;
  }

  /** Decodes the lines in chunk[from, to) — `to` is a newline index — with one decode call. */
  function decodeRun(chunk: Uint8Array, from: number, to: number): string[] {
    const region = chunk.subarray(from, to);
    const lines = decoder.decode(region).split("\n");
    if (region.indexOf(CR) !== -1) {
      for (let i = 0; i < lines.length; i++) {
        const line = lines[i]!;
        if (line.charCodeAt(line.length - 1) === CR) lines[i] = line.slice(0, -1);
      }
    }
    return lines;
  }

  /**
   * Whether chunk[from, lastNl] may hold a line longer than `max` bytes: hop
   * from newline to newline at most `max` bytes apart with lastIndexOf, so a
   * 64 KiB chunk costs a handful of native scans, not one per line.
   */
  function mayHoldLongLine(chunk: Uint8Array, from: number, lastNl: number): boolean {
    let p = from;
    while (lastNl - p > max) {
      const nl = chunk.lastIndexOf(LF, p + max);
      if (nl < p) return true;
      p = nl + 1;
    }
    return false;
  }

  /** All complete lines of chunk[from, lastNl], lastNl being the chunk's last newline. */
  function completeLines(chunk: Uint8Array, from: number, lastNl: number, out: string[]): string[] {
    // Fast path: no line in the region can be over-long.
    if (!mayHoldLongLine(chunk, from, lastNl)) return append(out, decodeRun(chunk, from, lastNl));
    let runStart = from;
    let start = from;
    while (start <= lastNl) {
      const nl = chunk.indexOf(LF, start);
      const end = nl > start && chunk[nl - 1] === CR ? nl - 1 : nl;
      if (end - start > max) {
        if (start > runStart) out = append(out, decodeRun(chunk, runStart, start - 1));
        const base = start;
        const cut = cutPoint((i) => chunk[base + i]!, max);
        out.push(decoder.decode(chunk.subarray(start, start + cut)) + truncationMarker(end - start - cut));
        runStart = nl + 1;
      }
      start = nl + 1;
    }
    return runStart <= lastNl ? append(out, decodeRun(chunk, runStart, lastNl)) : out;
  }

  return {
    push(chunk) {
      let out: string[] = [];
      const n = chunk.length;
      let pos = 0;
      if (tailLen > 0 || dropped > 0) {
        const nl = chunk.indexOf(LF);
        if (nl === -1) {
          appendPartial(chunk, 0, n);
          return out;
        }
        appendPartial(chunk, 0, nl);
        out.push(finishPartial(true));
        pos = nl + 1;
      }
      const lastNl = chunk.lastIndexOf(LF);
      if (lastNl >= pos) {
        out = completeLines(chunk, pos, lastNl, out);
        pos = lastNl + 1;
      }
      if (pos < n) appendPartial(chunk, pos, n); // copied: the caller may reuse its buffer
      return out;
    },
    end() {
      return tailLen > 0 || dropped > 0 ? [finishPartial(false)] : [];
    },
  };
}

/** Appends `more` to `out` without spreading (a chunk can hold tens of thousands of lines). */
function append(out: string[], more: string[]): string[] {
  if (out.length === 0) return more;
  // Usually `out` is the one line completed from the previous chunk's tail: move it in front natively.
  if (out.length <= 8 && more.length > out.length) {
    more.unshift(...out);
    return more;
  }
  for (const line of more) out.push(line);
  return out;
}
