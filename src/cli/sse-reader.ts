/**
 * A Server-Sent Events reader for the client: turns a response body into
 * frames. Handles LF / CRLF / CR line ends, frames split across chunks,
 * multi-line `data:` and comment (keep-alive) lines.
 */

/** One SSE frame; `data` is the joined `data:` lines. */
export interface SseFrame {
  id: string | undefined;
  event: string;
  data: string;
}

/** Iterate the frames of an event stream until it ends. */
export async function* readSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseFrame> {
  const decoder = new TextDecoder();
  let buf = "";
  let id: string | undefined;
  let event = "";
  let data: string[] = [];
  let sawField = false;
  const line = (text: string): SseFrame | undefined => {
    if (text === "") {
      const frame = sawField && data.length > 0 ? { id, event: event || "message", data: data.join("\n") } : undefined;
      event = "";
      data = [];
      sawField = false;
      return frame;
    }
    if (text.startsWith(":")) return undefined;
    const colon = text.indexOf(":");
    const field = colon >= 0 ? text.slice(0, colon) : text;
    let value = colon >= 0 ? text.slice(colon + 1) : "";
    if (value.startsWith(" ")) value = value.slice(1);
    sawField = true;
    if (field === "data") data.push(value);
    else if (field === "event") event = value;
    else if (field === "id") id = value;
    return undefined;
  };
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      buf += done ? decoder.decode() : decoder.decode(value, { stream: true });
      for (let m = /\r\n|\r|\n/.exec(buf); m; m = /\r\n|\r|\n/.exec(buf)) {
        // A lone CR at the very end may be the first half of CRLF: wait for more.
        if (m[0] === "\r" && m.index === buf.length - 1 && !done) break;
        const frame = line(buf.slice(0, m.index));
        buf = buf.slice(m.index + m[0].length);
        if (frame) yield frame;
      }
      if (done) {
        if (buf !== "") {
          line(buf);
          buf = "";
        }
        return;
      }
    }
  } finally {
    reader.releaseLock();
    await body.cancel().catch(() => {});
  }
}
