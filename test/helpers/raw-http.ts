/** Raw HTTP/1.x exchanges over TCP, for requests fetch() cannot send (no Host, HTTP/1.0, odd framing). */
import { connect } from "node:net";

/** Send raw bytes over TCP and read the whole answer (the server closes: Connection: close). */
export async function rawExchange(port: number, parts: Uint8Array[]): Promise<{ head: string; body: string }> {
  const sock = connect({ host: "127.0.0.1", port });
  await new Promise<void>((resolve, reject) => {
    sock.once("connect", () => resolve());
    sock.once("error", reject);
  });
  const got: Buffer[] = [];
  sock.on("data", (d: Buffer) => got.push(d));
  const closed = new Promise<void>((resolve) => sock.once("close", () => resolve()));
  sock.on("error", () => {});
  for (const p of parts) sock.write(p);
  const timer = setTimeout(() => sock.destroy(), 5000);
  await closed;
  clearTimeout(timer);
  const text = Buffer.concat(got).toString();
  const split = text.indexOf("\r\n\r\n");
  return { head: text.slice(0, split), body: text.slice(split + 4) };
}
