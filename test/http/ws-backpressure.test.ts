/**
 * A WebSocket watcher that stops reading: it must get every change or an
 * exact `lagged` when it reads again, never a silent gap (Bun drops a message
 * sent past its buffer limit and says so only in `send`'s return value).
 */
import { describe, expect, test } from "bun:test";
import { startAgent } from "../helpers/start-agent.ts";

/** Text messages of server frames (unmasked, FIN set, no fragmentation) from `buf` on; the rest stays. */
function takeFrames(buf: Buffer): { messages: string[]; rest: Buffer } {
  const messages: string[] = [];
  let at = 0;
  for (;;) {
    if (buf.length - at < 2) break;
    const opcode = buf[at]! & 0x0f;
    let len = buf[at + 1]! & 0x7f;
    let head = 2;
    if (len === 126) {
      if (buf.length - at < 4) break;
      len = buf.readUInt16BE(at + 2);
      head = 4;
    } else if (len === 127) {
      if (buf.length - at < 10) break;
      len = Number(buf.readBigUInt64BE(at + 2));
      head = 10;
    }
    if (buf.length - at < head + len) break;
    if (opcode === 1) messages.push(buf.subarray(at + head, at + head + len).toString("utf8"));
    at += head + len;
  }
  return { messages, rest: buf.subarray(at) };
}

/**
 * A raw `/ws/tasks` client on a Bun socket that can stop reading from the
 * kernel (`pause`), so the server meets real backpressure.
 */
async function rawWatcher(port: number) {
  let buf: Buffer = Buffer.alloc(0);
  let wake: (() => void) | undefined;
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(_s, chunk) {
        buf = Buffer.concat([buf, chunk]);
        wake?.();
      },
    },
  });
  const more = () => new Promise<void>((resolve) => (wake = resolve));
  socket.write(
    "GET /ws/tasks?after=0 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
  );
  while (buf.indexOf("\r\n\r\n") < 0) await more();
  const end = buf.indexOf("\r\n\r\n");
  expect(buf.subarray(0, 12).toString()).toBe("HTTP/1.1 101");
  buf = buf.subarray(end + 4);
  socket.pause();
  return {
    /** Read again; text messages until `until` says stop. */
    async readUntil(until: (messages: string[]) => boolean): Promise<string[]> {
      const out: string[] = [];
      socket.resume();
      for (;;) {
        const { messages, rest } = takeFrames(buf);
        buf = rest;
        out.push(...messages);
        if (until(out)) return out;
        await more();
      }
    },
    close: () => socket.terminate(),
  };
}

describe("WebSocket watch under backpressure", () => {
  test("a watcher that stopped reading gets every change or an exact lagged, never a gap", async () => {
    await using a = await startAgent();
    const port = Number(new URL(a.url).port);
    const watcher = await rawWatcher(port);
    // ~60 MB of changes while the watcher reads nothing: past the socket buffers, Bun's 16 MiB and the 32 MiB the watch keeps.
    const big = "v".repeat(600_000);
    let lastId = "";
    for (let i = 0; i < 100; i++) {
      const r = await a.json("POST", "/api/v1/tasks", {
        spec: { slot: `big-${i}`, hold: true, kind: { subprocess: { mode: { command: { command: "true", args: [] } }, env: [{ key: "BIG", value: big }] } } },
      });
      expect(r.status).toBe(201);
      lastId = r.body.task_id;
    }
    // Read again until the last task's change arrives.
    type Message = { event: string; id: number; skipped?: number; task?: { metadata: { id: string } } };
    const texts = await watcher.readUntil((got) => got.length > 0 && got.at(-1)!.includes(lastId));
    watcher.close();
    const messages = texts.map((t) => JSON.parse(t) as Message);
    // Ids continue one by one; a lagged record accounts exactly for what it stands for.
    let prev = 0;
    let lagged = 0;
    for (const m of messages) {
      if (m.event === "lagged") {
        expect(m.skipped).toBe(m.id - prev);
        lagged++;
      } else {
        expect(m.event).toBe("task_update");
        expect(m.id).toBe(prev + 1);
      }
      prev = m.id;
    }
    expect(messages.filter((m) => m.event === "task_update").length).toBeGreaterThan(0);
    expect(lagged).toBeGreaterThan(0); // the stalled watcher did fall behind
  });
});
