/** Minimal SSE reader for tests: parses frames from a fetch Response body. */
export interface SseEvent {
  id?: number;
  event: string;
  data: any;
}

/** Parse SSE frames from decoded text chunks (comments are skipped). */
export async function* parseSseText(chunks: AsyncIterable<string>): AsyncGenerator<SseEvent> {
  let buf = "";
  for await (const text of chunks) {
    buf += text;
    for (let end = buf.indexOf("\n\n"); end >= 0; end = buf.indexOf("\n\n")) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const ev: SseEvent = { event: "message", data: undefined };
      let data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const i = line.indexOf(": ");
        const k = i >= 0 ? line.slice(0, i) : line;
        const v = i >= 0 ? line.slice(i + 2) : "";
        if (k === "id") ev.id = Number(v);
        else if (k === "event") ev.event = v;
        else if (k === "data") data += v;
      }
      if (data === "" && ev.id === undefined) continue;
      ev.data = data ? JSON.parse(data) : undefined;
      yield ev;
    }
  }
}

/** Iterate SSE events of a response. */
export async function* readSse(res: Response): AsyncGenerator<SseEvent> {
  if (!res.body) return;
  const body = res.body;
  const decoder = new TextDecoder();
  async function* text(): AsyncGenerator<string> {
    for await (const chunk of body) yield decoder.decode(chunk as Uint8Array, { stream: true });
  }
  yield* parseSseText(text());
}

/** Collect every event until the stream ends. */
export async function collectSse(res: Response): Promise<SseEvent[]> {
  const out: SseEvent[] = [];
  for await (const e of readSse(res)) out.push(e);
  return out;
}
