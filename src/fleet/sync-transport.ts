/**
 * The seam between the heartbeat loop and the wire: one `sync` call per
 * heartbeat, over HTTP (proto3-JSON) or gRPC (binary protobuf).
 */
import type { SyncRequest, SyncResponse } from "../gen/solti/discover/v1/discovery_pb.ts";
import { clipLine } from "../errors.ts";

/** Sends one heartbeat. */
export interface SyncTransport {
  readonly kind: "http" | "grpc";
  /**
   * Deliver `req` and resolve with the control plane's answer (which may say
   * `success: false`). Rejects with `SyncFailure` when there is no answer:
   * unreachable, timed out, non-2xx, malformed reply. Aborting `signal`
   * cancels the call.
   */
  sync(req: SyncRequest, signal: AbortSignal): Promise<SyncResponse>;
  /** Release connections; idempotent. */
  close(): void;
}

/** A heartbeat that got no usable answer. */
export class SyncFailure extends Error {
  override name = "SyncFailure";
  constructor(
    message: string,
    /** The control plane asked to wait this long (Retry-After / retry_after_s). */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** Longest piece of control-plane text (a refusal reason, an error body) kept in `lastError` and logs. */
export const MAX_DETAIL = 200;

/**
 * Control-plane text fit for one log line: whitespace runs collapsed to one
 * space, cut to `MAX_DETAIL` characters with "…". A control plane's answer
 * must not flood the journal or `/api/v1/info`.
 */
export function clipDetail(text: string): string {
  return clipLine(text, MAX_DETAIL);
}
