/**
 * The one subscription type every stream consumer uses (SSE, WebSocket, gRPC
 * streaming, CLI). Items arrive in *batches*: everything between the
 * subscriber's cursor and the head is handed over at once, so a transport can
 * write one frame per batch.
 */
export interface Subscription<T> extends AsyncIterable<T[]> {
  /** Stop the subscription; a pending iteration ends. Idempotent. */
  close(): void;
  /**
   * True once the iteration ended by reaching the end of what it reads (a
   * followed task log that ended with its task; a read without follow), not
   * because it was closed or its source was shut down first (the agent
   * stops). Absent on sources that never end (watch).
   */
  readonly complete?: boolean;
  /**
   * True while the source has ended and the cursor is at its last item:
   * nothing to deliver now or ever (an ended task's log read from its last
   * event on; the next read ends the iteration, `complete`). Absent on
   * sources that never end (watch).
   */
  readonly exhausted?: boolean;
  [Symbol.dispose](): void;
}
