/**
 * Per-call gRPC metrics from what went out on the wire: every HTTP/2 stream
 * of the gRPC server reports its method (`package.Service/Method`), the
 * `grpc-status` the server sent and its duration when it closes; streaming
 * calls count as open stream subscribers until then. Reading the status off
 * the stream, not off the handler's callback, counts what clients saw: calls
 * grpc-js refuses before any handler runs (a request over the size limit,
 * an unknown method), and responses it fails to send (too large to send),
 * which a handler's callback reports as OK. A stream that closes without a
 * status (the client cancelled, the connection broke) counts as CANCELLED.
 */
import { status as GrpcStatus } from "@grpc/grpc-js";
import type { EventEmitter } from "node:events";

/** What the instrument reports. */
export interface GrpcCallHooks {
  /** One finished call: `method` is `package.Service/Method` (or {@link UNKNOWN_METHOD}), `code` a status name such as `OK`. */
  onCall(method: string, code: string, seconds: number): void;
  /** A call of streaming `method` opened; the returned function is called once when it ends. */
  onStreamOpen?(method: string): () => void;
}

/** The `method` label of a call to a path the server does not serve (one label value, whatever the path). */
export const UNKNOWN_METHOD = "unknown";

/** A served method: its HTTP/2 path (`/package.Service/Method`) and whether the server streams its answer. */
export interface ServedMethod {
  path: string;
  responseStream: boolean;
}

/** Status code → its name (`5` → `NOT_FOUND`); unknown numbers → `UNKNOWN`. */
export function grpcCodeName(code: unknown): string {
  const name = typeof code === "number" ? (GrpcStatus as unknown as Record<number, string | undefined>)[code] : undefined;
  return name ?? "UNKNOWN";
}

/** The part of a node:http2 server stream the instrument reads. */
interface WireStream extends EventEmitter {
  readonly sentHeaders?: Record<string, unknown>;
  readonly sentTrailers?: Record<string, unknown>;
}

/** The status a closed stream sent: in its trailers, or in its headers (a trailers-only answer); none → CANCELLED. */
function sentStatus(stream: WireStream): string {
  const raw = stream.sentTrailers?.["grpc-status"] ?? stream.sentHeaders?.["grpc-status"];
  return raw === undefined ? "CANCELLED" : grpcCodeName(Number(raw));
}

/**
 * Report every call of the HTTP/2 server `h2` (grpc-js's server for a port)
 * to `hooks`. `methods` are the served ones: any other path is reported as
 * {@link UNKNOWN_METHOD}, so a client cannot grow the label set.
 */
export function instrumentCalls(h2: EventEmitter, methods: readonly ServedMethod[], hooks: GrpcCallHooks, now: () => number = () => performance.now()): void {
  const served = new Map(methods.map((m) => [m.path, { name: m.path.replace(/^\//, ""), streaming: m.responseStream }]));
  // Before grpc-js's own listener, which may answer (and close) a call at once.
  h2.prependListener("stream", (stream: WireStream, headers: Record<string, unknown>) => {
    const start = now();
    const method = served.get(String(headers[":path"]));
    const ended = method?.streaming ? hooks.onStreamOpen?.(method.name) : undefined;
    stream.once("close", () => {
      ended?.();
      hooks.onCall(method?.name ?? UNKNOWN_METHOD, sentStatus(stream), (now() - start) / 1000);
    });
  });
}
