/**
 * One ring, many cursors: a bounded buffer of numbered events with any number
 * of subscribers, each of which is only a cursor plus a wake-up.
 *
 * - Appending is O(events appended) whatever the number of subscribers: it
 *   stores the events and resolves one shared "new data" promise.
 * - A subscriber reads everything from its cursor to the head as one batch,
 *   so a transport writes one frame per batch.
 * - A subscriber's bounded queue *is* the ring: a slow subscriber holds no
 *   copy of anything, never slows `append` or other subscribers, and when its
 *   cursor falls behind the oldest retained event it receives one `lagged`
 *   record with the exact number of events it missed, then jumps forward.
 */
import type { Subscription } from "./subscription.ts";

/** An event with its number; numbers start at 1 and strictly increase. */
export interface Numbered<E> {
  id: number;
  event: E;
}

/** A bounded, numbered event buffer with cursor-based fan-out. */
export interface EventRing<E> {
  /** The id the next appended event will get. */
  readonly nextId: number;
  /** Store events (numbered consecutively) and wake subscribers. O(events). Ignored after `close()`. */
  append(events: readonly E[]): void;
  /**
   * A cursor over the ring. Without `after` it starts at the oldest retained
   * event; with `after` it delivers events with id > `after` (clamped to the
   * head), preceded by a lagged record if some of them are gone. `follow:
   * false` delivers what is there at subscribe time and finishes; `follow:
   * true` then waits for live events until the ring is ended or closed.
   * Records are shared by all subscribers: treat them as read-only.
   */
  subscribe(opts: { after?: number; follow: boolean }): Subscription<Numbered<E>>;
  /** What is still in the ring, oldest first. */
  retained(): Numbered<E>[];
  /** Retained records with id > `id`, oldest first: O(records returned), not O(ring). */
  since(id: number): Numbered<E>[];
  /** Id of the oldest retained record, undefined when the ring is empty. */
  readonly oldestId: number | undefined;
  /**
   * Replace the content with `records` (ids strictly increasing; only the
   * newest that fit are kept), e.g. from the store after a restart. `nextId`
   * continues after the last record. A gap between seeded ids reads as lagged.
   */
  seed(records: readonly Numbered<E>[]): void;
  /**
   * No more events for now: following subscribers drain to the head and
   * finish, new ones deliver what is retained and finish. Events appended
   * while ended are still retained.
   */
  end(): void;
  /** Undo `end()`: new followers wait for live events again (a terminal task restarted). */
  reopen(): void;
  readonly ended: boolean;
  /** Number of attached subscriptions. */
  readonly subscribers: number;
  /** Number of retained events. */
  readonly size: number;
  /** End every subscription at once; later subscriptions finish immediately and appends are ignored. */
  close(): void;
}

export interface EventRingOptions<E> {
  /** Keep the last `capacity` events (integer ≥ 1). */
  capacity: number;
  /** Also keep at most this many bytes as measured by `sizeOf`, evicting oldest first; the newest event always stays. */
  maxBytes?: number;
  /** Size of one event in bytes; required with `maxBytes`. */
  sizeOf?: (event: E) => number;
  /** Build the marker event telling a subscriber it missed exactly `skipped` events. */
  lagged: (skipped: number) => E;
  /** Called once per lagged marker handed out (metrics). */
  onLagged?: (skipped: number) => void;
  /** Called when the last subscriber detaches (not after `close()`). */
  onIdle?: () => void;
}

const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined };

/** Create an event ring; see {@link EventRing}. Starts no timers. */
export function createEventRing<E>(opts: EventRingOptions<E>): EventRing<E> {
  const { capacity, maxBytes, lagged, onLagged, onIdle } = opts;
  if (!Number.isInteger(capacity) || capacity < 1) {
    throw new RangeError(`event ring capacity must be an integer >= 1, got ${capacity}`);
  }
  if (maxBytes !== undefined && !(maxBytes > 0)) {
    throw new RangeError(`event ring maxBytes must be > 0, got ${maxBytes}`);
  }
  const sizeOf = opts.sizeOf;
  if (maxBytes !== undefined && sizeOf === undefined) {
    throw new RangeError("event ring maxBytes needs sizeOf");
  }
  const bounded = maxBytes !== undefined;

  // Grown on demand up to `capacity` (most tasks log far fewer events than they may keep).
  const slots: (Numbered<E> | undefined)[] = [];
  const sizes: number[] = [];
  let start = 0;
  let count = 0;
  let bytes = 0;
  let nextId = 1;
  let ended = false;
  let closed = false;
  let signal: PromiseWithResolvers<void> | undefined;
  const subs = new Set<RingSubscription>();

  /** The k-th retained record, 0 = oldest; caller guarantees k < count. */
  function at(k: number): Numbered<E> {
    return slots[(start + k) % capacity] as Numbered<E>;
  }

  function evictOldest(): void {
    slots[start] = undefined;
    if (bounded) {
      bytes -= sizes[start] ?? 0;
      sizes[start] = 0;
    }
    start = (start + 1) % capacity;
    count--;
  }

  function push(record: Numbered<E>): void {
    if (count === capacity) evictOldest();
    const i = (start + count) % capacity;
    slots[i] = record;
    count++;
    if (bounded && sizeOf !== undefined && maxBytes !== undefined) {
      const size = sizeOf(record.event);
      sizes[i] = size;
      bytes += size;
      while (bytes > maxBytes && count > 1) evictOldest();
    }
  }

  function clear(): void {
    slots.length = 0;
    sizes.length = 0;
    start = 0;
    count = 0;
    bytes = 0;
  }

  /** Wake every waiting subscriber (they re-check their cursor). */
  function wake(): void {
    const s = signal;
    if (s === undefined) return;
    signal = undefined;
    s.resolve();
  }

  function changed(): Promise<void> {
    signal ??= Promise.withResolvers<void>();
    return signal.promise;
  }

  /** Index of the first retained record with id > `last` (count if none). */
  function firstAfter(last: number): number {
    if (count === 0 || at(count - 1).id <= last) return count;
    const oldest = at(0).id;
    if (last < oldest) return 0;
    const guess = last + 1 - oldest;
    if (guess < count && at(guess).id === last + 1) return guess;
    let lo = 0;
    let hi = count - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (at(mid).id > last) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  function lagRecord(id: number, skipped: number): Numbered<E> {
    onLagged?.(skipped);
    return { id, event: lagged(skipped) };
  }

  /** Everything after the cursor up to `limit`, with lagged markers for gaps; advances the cursor. */
  function read(sub: RingSubscription): Numbered<E>[] {
    const out: Numbered<E>[] = [];
    let last = sub.cursor;
    for (let k = firstAfter(last); k < count; k++) {
      const record = at(k);
      if (record.id > sub.limit) break;
      // The lagged record takes the id of the last skipped event, so resuming from it continues here.
      if (record.id > last + 1) out.push(lagRecord(record.id - 1, record.id - 1 - last));
      out.push(record);
      last = record.id;
    }
    const head = Math.min(nextId - 1, sub.limit);
    if (out.length === 0 && count === 0 && last < head) {
      out.push(lagRecord(head, head - last));
      last = head;
    }
    sub.cursor = last;
    return out;
  }

  class RingSubscription implements Subscription<Numbered<E>>, AsyncIterator<Numbered<E>[], undefined> {
    done = false;
    waiting = false;

    constructor(
      /** Id of the last event handed out (or just before the first to hand out). */
      public cursor: number,
      /** Highest id this subscription may deliver (the head at subscribe time unless following). */
      readonly limit: number,
      readonly follow: boolean,
    ) {}

    [Symbol.asyncIterator](): AsyncIterator<Numbered<E>[], undefined> {
      return this;
    }

    async next(): Promise<IteratorResult<Numbered<E>[], undefined>> {
      for (;;) {
        if (this.done) return DONE;
        const batch = read(this);
        if (batch.length > 0) return { done: false, value: batch };
        if (!this.follow || ended || closed) {
          this.close();
          return DONE;
        }
        this.waiting = true;
        await changed();
        this.waiting = false;
      }
    }

    async return(): Promise<IteratorResult<Numbered<E>[], undefined>> {
      this.close();
      return DONE;
    }

    close(): void {
      if (this.done) return;
      this.done = true;
      subs.delete(this);
      // A pending next() waits on the shared signal: wake it so it sees `done`.
      if (this.waiting) wake();
      if (subs.size === 0 && !closed) onIdle?.();
    }

    [Symbol.dispose](): void {
      this.close();
    }
  }

  return {
    get nextId() {
      return nextId;
    },
    get ended() {
      return ended;
    },
    get subscribers() {
      return subs.size;
    },
    get size() {
      return count;
    },

    append(events) {
      if (closed || events.length === 0) return;
      // Events that would be evicted by count within this very call are only numbered.
      const skip = Math.max(0, events.length - capacity);
      nextId += skip;
      for (let i = skip; i < events.length; i++) {
        push({ id: nextId++, event: events[i] as E });
      }
      wake();
    },

    subscribe({ after, follow }) {
      if (after !== undefined && Number.isNaN(after)) throw new RangeError("subscribe: after is NaN");
      const head = nextId - 1;
      const cursor =
        after === undefined ? (count > 0 ? at(0).id - 1 : head) : Math.max(0, Math.min(Math.floor(after), head));
      const sub = new RingSubscription(cursor, follow ? Number.POSITIVE_INFINITY : head, follow);
      if (closed) sub.done = true;
      else subs.add(sub);
      return sub;
    },

    since(id) {
      const out: Numbered<E>[] = [];
      for (let k = firstAfter(id); k < count; k++) out.push(at(k));
      return out;
    },

    get oldestId() {
      return count > 0 ? at(0).id : undefined;
    },

    retained() {
      const out = new Array<Numbered<E>>(count);
      for (let k = 0; k < count; k++) out[k] = at(k);
      return out;
    },

    seed(records) {
      let prev = 0;
      for (const r of records) {
        if (!Number.isInteger(r.id) || r.id <= prev) {
          throw new RangeError(`seed: ids must be strictly increasing positive integers, got ${r.id} after ${prev}`);
        }
        prev = r.id;
      }
      clear();
      for (let i = Math.max(0, records.length - capacity); i < records.length; i++) {
        const r = records[i] as Numbered<E>;
        push({ id: r.id, event: r.event });
      }
      nextId = Math.max(nextId, prev + 1);
      wake();
    },

    end() {
      ended = true;
      wake();
    },

    reopen() {
      ended = false;
    },

    close() {
      if (closed) return;
      closed = true;
      for (const sub of [...subs]) sub.close();
      wake();
    },
  };
}
