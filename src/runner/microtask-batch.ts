/**
 * Messages gathered until the current microtask checkpoint, then handed to
 * `deliver` as one array: the runner thread and its owner post one message
 * per batch each way (run-thread.ts, run-thread-worker.ts).
 */
export interface MicrotaskBatch<T> {
  push(message: T): void;
  /** Drop what is gathered and not yet delivered. */
  clear(): void;
}

export function microtaskBatch<T>(deliver: (batch: T[]) => void): MicrotaskBatch<T> {
  let outbox: T[] = [];
  const flush = () => {
    const batch = outbox;
    outbox = [];
    deliver(batch);
  };
  return {
    push(message) {
      if (outbox.length === 0) queueMicrotask(flush);
      outbox.push(message);
    },
    clear() {
      outbox = [];
    },
  };
}
