/**
 * A gRPC client on gRPC's C core (Python `grpcio`, Debian's python3-grpcio;
 * `.ci/run` installs it), used as a transport only: requests are encoded and
 * answers decoded by the caller with the generated protobuf code. It shares
 * no code with the agent's grpc-js, as a Go, Rust or C++ client would.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";

const PYTHON = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
const CLIENT = join(import.meta.dir, "../fixtures/grpc-c-core-client.py");

/** Whether grpcio is importable; CI installs it, so tests skip without it only outside CI. */
export const hasGrpcio = Bun.spawnSync([PYTHON, "-c", "import grpc"], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;

/** gRPC status codes (as numbers: the C core reports them so). */
export const Code = { OK: 0, CANCELLED: 1, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, UNIMPLEMENTED: 12, UNAUTHENTICATED: 16 } as const;

export interface CCoreCall {
  path: string;
  kind: "unary" | "stream" | "bidi";
  request: Uint8Array;
  metadata?: [string, string][];
  /** Deadline in seconds. */
  timeout?: number;
  /** stream: cancel once this many messages are in */
  cancelAfter?: number;
  /** stream: create the file once this many messages are in */
  touchAfter?: [number, string];
  /** stream: once this many messages are in, read no more until the file exists */
  waitAfter?: [number, string];
}
export interface CCoreAnswer {
  code: number;
  details: string;
  messages: Uint8Array[];
}

/** Run `calls` in order on one grpcio channel to `target` (`host:port`). */
export async function cCore(target: string, calls: CCoreCall[]): Promise<CCoreAnswer[]> {
  const p = Bun.spawn([PYTHON, CLIENT], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  p.stdin.write(JSON.stringify({ target, calls: calls.map((c) => ({ ...c, request: Buffer.from(c.request).toString("hex") })) }));
  await p.stdin.end();
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`grpcio client exited ${code}: ${err}`);
  return (JSON.parse(out) as { code: number; details: string; messages: string[] }[]).map((a) => ({
    ...a,
    messages: a.messages.map((h) => new Uint8Array(Buffer.from(h, "hex"))),
  }));
}
