import { describe, expect, test } from "bun:test";
import { createLineSplitter, truncationMarker } from "../../src/runner/line-splitter.ts";

const enc = new TextEncoder();

function splitChunks(chunks: Uint8Array[], max: number): string[] {
  const s = createLineSplitter(max);
  const out: string[] = [];
  for (const c of chunks) out.push(...s.push(c));
  out.push(...s.end());
  return out;
}

function oneByteChunks(bytes: Uint8Array): Uint8Array[] {
  return Array.from(bytes, (_, i) => bytes.subarray(i, i + 1));
}

/** Independent reference for valid UTF-8 input: split the whole text, then cut by bytes. */
function reference(text: string, max: number): string[] {
  const parts = text.split("\n");
  const last = parts.pop()!;
  const lines = parts.map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l));
  if (last !== "") lines.push(last);
  return lines.map((line) => {
    const b = enc.encode(line);
    if (b.length <= max) return line;
    let k = max;
    while (k > 0 && (b[k]! & 0xc0) === 0x80) k--;
    return new TextDecoder().decode(b.subarray(0, k)) + truncationMarker(b.length - k);
  });
}

const SAMPLE =
  "plain ascii\r\n" +
  "é and € and 😀 in one line\n" +
  "\n" +
  "\r\n" +
  "a lone \r inside\n" +
  "crlf after multibyte €\r\n" +
  "😀😀😀\n" +
  "partial last line ü€😀";

describe("createLineSplitter", () => {
  test("splits a whole buffer: CRLF stripped, empty lines kept, partial last line from end()", () => {
    const s = createLineSplitter(1024);
    expect(s.push(enc.encode(SAMPLE))).toEqual([
      "plain ascii",
      "é and € and 😀 in one line",
      "",
      "",
      "a lone \r inside",
      "crlf after multibyte €",
      "😀😀😀",
    ]);
    expect(s.end()).toEqual(["partial last line ü€😀"]);
    expect(s.end()).toEqual([]);
  });

  test("split into two chunks at every byte position gives the same lines", () => {
    const bytes = enc.encode(SAMPLE);
    const whole = splitChunks([bytes], 1024);
    expect(whole).toEqual(reference(SAMPLE, 1024));
    for (let i = 0; i <= bytes.length; i++) {
      expect(splitChunks([bytes.subarray(0, i), bytes.subarray(i)], 1024)).toEqual(whole);
    }
  });

  test("1-byte chunks give the same lines", () => {
    const bytes = enc.encode(SAMPLE);
    expect(splitChunks(oneByteChunks(bytes), 1024)).toEqual(splitChunks([bytes], 1024));
  });

  test("CR split from its LF across chunks is stripped", () => {
    const s = createLineSplitter(100);
    expect(s.push(enc.encode("abc\r"))).toEqual([]);
    expect(s.push(enc.encode("\ndef\r"))).toEqual(["abc"]);
    expect(s.push(enc.encode("\n"))).toEqual(["def"]);
    expect(s.end()).toEqual([]);
  });

  test("a trailing CR without LF at EOF is kept", () => {
    expect(splitChunks([enc.encode("abc\r")], 100)).toEqual(["abc\r"]);
  });

  test("no input and a lone newline", () => {
    expect(splitChunks([], 100)).toEqual([]);
    expect(splitChunks([new Uint8Array(0)], 100)).toEqual([]);
    expect(splitChunks([enc.encode("\n")], 100)).toEqual([""]);
  });

  test("invalid UTF-8 is replaced with U+FFFD, also when split across chunks", () => {
    const bytes = new Uint8Array([0x61, 0xff, 0x62, 0x0a, 0xe2, 0x82, 0x0a, 0xc3, 0x28, 0x0a, 0xf0, 0x9f]);
    const expected = ["a\uFFFDb", "\uFFFD", "\uFFFD(", "\uFFFD"];
    expect(splitChunks([bytes], 100)).toEqual(expected);
    for (let i = 0; i <= bytes.length; i++) {
      expect(splitChunks([bytes.subarray(0, i), bytes.subarray(i)], 100)).toEqual(expected);
    }
    expect(splitChunks(oneByteChunks(bytes), 100)).toEqual(expected);
  });

  test("a BOM is kept whatever the chunking", () => {
    const bytes = enc.encode("\uFEFFa\n\uFEFFb\n");
    expect(splitChunks([bytes], 100)).toEqual(["\uFEFFa", "\uFEFFb"]);
    expect(splitChunks(oneByteChunks(bytes), 100)).toEqual(["\uFEFFa", "\uFEFFb"]);
  });

  test("the caller may reuse its chunk buffer after push", () => {
    const s = createLineSplitter(100);
    const buf = enc.encode("hello wor");
    expect(s.push(buf)).toEqual([]);
    buf.fill(0x78); // "xxxxxxxxx"
    expect(s.push(enc.encode("ld\n"))).toEqual(["hello world"]);
  });

  describe("over-long lines", () => {
    test("a line of exactly max bytes is not cut, also with CRLF", () => {
      expect(splitChunks([enc.encode("abcde\nabcde\r\nabcde")], 5)).toEqual(["abcde", "abcde", "abcde"]);
      expect(splitChunks(oneByteChunks(enc.encode("abcde\r\nabcde\r\n")), 5)).toEqual(["abcde", "abcde"]);
    });

    test("cut on a character boundary with the exact dropped count", () => {
      // 9 × "a" then "€" (3 bytes) then "bbb": 15 bytes, max 10 → "€" would straddle byte 10.
      expect(splitChunks([enc.encode("aaaaaaaaa€bbb\n")], 10)).toEqual(["aaaaaaaaa" + truncationMarker(6)]);
      // "😀" is 4 bytes: max 6 keeps one emoji (4 bytes), drops 4.
      expect(splitChunks([enc.encode("😀😀\n")], 6)).toEqual(["😀" + truncationMarker(4)]);
      // A cut exactly on a boundary keeps max bytes.
      expect(splitChunks([enc.encode("ab€cd\n")], 5)).toEqual(["ab€" + truncationMarker(2)]);
      // A dropped CR before LF is not counted.
      expect(splitChunks([enc.encode("abcdefg\r\n")], 5)).toEqual(["abcde" + truncationMarker(2)]);
      expect(splitChunks([enc.encode("partial tail")], 4)).toEqual(["part" + truncationMarker(8)]);
    });

    test("marker format", () => {
      expect(truncationMarker(42)).toBe(" …[truncated 42 bytes]");
    });

    test("only the over-long lines of a chunk are cut", () => {
      const text = "short\n" + "x".repeat(30) + "\nmid€\n" + "é".repeat(20) + "\r\nend\n";
      expect(splitChunks([enc.encode(text)], 12)).toEqual([
        "short",
        "x".repeat(12) + truncationMarker(18),
        "mid€",
        "é".repeat(6) + truncationMarker(28),
        "end",
      ]);
    });

    test("every split position and 1-byte chunks agree with the whole, with truncation", () => {
      const text = SAMPLE + "\n" + "€".repeat(9) + "x\r\n" + SAMPLE;
      const bytes = enc.encode(text);
      for (const max of [0, 1, 2, 3, 4, 7, 10, 16, 1000]) {
        const whole = splitChunks([bytes], max);
        expect(whole).toEqual(reference(text, max));
        for (let i = 0; i <= bytes.length; i++) {
          expect(splitChunks([bytes.subarray(0, i), bytes.subarray(i)], max)).toEqual(whole);
        }
        expect(splitChunks(oneByteChunks(bytes), max)).toEqual(whole);
      }
    });

    test("a long line over many chunks keeps max bytes and counts every dropped byte", () => {
      const max = 16 * 1024;
      const s = createLineSplitter(max);
      const chunk = new Uint8Array(64 * 1024).fill(0x61);
      const total = 1000 * chunk.length; // 64 MB without a newline
      for (let i = 0; i < 1000; i++) expect(s.push(chunk)).toEqual([]);
      expect(s.push(enc.encode("\nnext\n"))).toEqual(["a".repeat(max) + truncationMarker(total - max), "next"]);
      expect(s.end()).toEqual([]);
    });

    test("a long multibyte line fed byte by byte", () => {
      const text = "€".repeat(1000);
      expect(splitChunks(oneByteChunks(enc.encode(text)), 100)).toEqual(["€".repeat(33) + truncationMarker(3000 - 99)]);
    });
  });

  test("randomized chunkings of random input agree with the whole", () => {
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const alphabet = ["a", "b", " ", "\n", "\r", "\r\n", "é", "€", "😀"].map((s) => enc.encode(s));
    const invalid = [new Uint8Array([0xff]), new Uint8Array([0xe2, 0x82]), new Uint8Array([0x80])];
    for (let round = 0; round < 300; round++) {
      const parts: Uint8Array[] = [];
      const len = rand(80);
      const withInvalid = round % 3 === 0;
      for (let i = 0; i < len; i++) {
        parts.push(withInvalid && rand(8) === 0 ? invalid[rand(invalid.length)]! : alphabet[rand(alphabet.length)]!);
      }
      const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let off = 0;
      for (const p of parts) {
        bytes.set(p, off);
        off += p.length;
      }
      const max = rand(12);
      const whole = splitChunks([bytes], max);
      if (!withInvalid) expect(whole).toEqual(reference(new TextDecoder().decode(bytes), max));
      const chunks: Uint8Array[] = [];
      for (let at = 0; at < bytes.length; ) {
        const n = 1 + rand(6);
        chunks.push(bytes.subarray(at, at + n));
        at += n;
      }
      expect(splitChunks(chunks, max)).toEqual(whole);
    }
  });

  test("rejects a negative or fractional limit", () => {
    expect(() => createLineSplitter(-1)).toThrow(RangeError);
    expect(() => createLineSplitter(1.5)).toThrow(RangeError);
  });
});
