/**
 * Writing to stdout / stderr without losing output: writes respect
 * backpressure and `flush()` resolves once everything reached the pipe, so
 * exiting right after never truncates. A closed pipe (`tasklane ls | head`)
 * turns further writes into no-ops.
 */

/** The part of a Node write stream the CLI uses. */
export interface WritableLike {
  write(chunk: string, cb?: (err?: Error | null) => void): boolean;
  once(event: "drain" | "close", listener: () => void): unknown;
  once(event: "error", listener: (err: Error) => void): unknown;
  off(event: "drain" | "close", listener: () => void): unknown;
  off(event: "error", listener: (err: Error) => void): unknown;
  on(event: "error", listener: (err: Error) => void): unknown;
  isTTY?: boolean;
}

/** One output stream of the CLI. */
export interface Output {
  /** Whether the stream is a terminal (colour, spinner). */
  readonly isTTY: boolean;
  /** Write text; resolves when the stream can take more. */
  write(text: string): Promise<void>;
  /** Write `text` plus a newline. */
  line(text?: string): Promise<void>;
  /** Resolve once everything written so far has been handed to the OS. */
  flush(): Promise<void>;
  /** Whether the reader went away (EPIPE). */
  readonly closed: boolean;
}

/** Wrap a Node write stream (process.stdout / process.stderr). */
export function createOutput(stream: WritableLike): Output {
  let closed = false;
  stream.on("error", () => {
    closed = true;
  });
  // Resolves on drain, or when the reader goes away (then nothing will ever drain).
  const drained = () =>
    new Promise<void>((resolve) => {
      const done = () => {
        stream.off("drain", done);
        stream.off("close", done);
        stream.off("error", done);
        resolve();
      };
      stream.once("drain", done);
      stream.once("close", done);
      stream.once("error", done);
    });
  const out: Output = {
    isTTY: stream.isTTY === true,
    get closed() {
      return closed;
    },
    async write(text) {
      if (closed || text === "") return;
      if (!stream.write(text)) await drained();
    },
    line(text = "") {
      return out.write(`${text}\n`);
    },
    async flush() {
      if (closed) return;
      await Promise.race([new Promise<void>((resolve) => stream.write("", () => resolve())), drained()]);
    },
  };
  return out;
}

/** An in-memory output (tests, capturing). */
export function createBufferOutput(isTTY = false): Output & { text(): string } {
  let buf = "";
  const out: Output & { text(): string } = {
    isTTY,
    closed: false,
    async write(t) {
      buf += t;
    },
    line(t = "") {
      return out.write(`${t}\n`);
    },
    async flush() {},
    text: () => buf,
  };
  return out;
}
