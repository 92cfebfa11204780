/**
 * The one subscription type every stream consumer uses (SSE, WebSocket, gRPC
 * streaming, CLI). Items arrive in *batches*: everything between the
 * subscriber's cursor and the head is handed over at once, so a transport can
 * write one frame per batch.
 */
export interface Subscription<T> extends AsyncIterable<T[]> {
  /** Stop the subscription; a pending iteration ends. Idempotent. */
  close(): void;
  [Symbol.dispose](): void;
}
