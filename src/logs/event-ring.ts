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
 * - Numbering may jump (`skipTo`), e.g. above ids a crashed agent may have
 *   handed out without storing them; a *marker* event then stands for the
 *   gap (see `isMarker`), so a reader passing over it is told with one
 *   `lagged` record whose `skipped` counts the ids it passes over.
 * - A cursor past the head is not from this ring's numbering (another agent
 *   life, a restored store, a client's mistake): the reader starts over from
 *   0 and is told with a `lagged` record first.
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
   * event (after a marker that is the oldest); with `after` it delivers events
   * with id > `after`, preceded by a lagged record if some of them are gone.
   * An `after` past the head cannot be served: the subscriber starts over from
   * 0 and its first record is a lagged one (the one that says what is gone
   * below the oldest retained event, or `skipped` 0 with id 0). `follow:
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
   * The next appended event gets an id of at least `id`: the ids passed over
   * are never used. A reader crossing them gets a lagged record counting them;
   * append a marker event (`isMarker`) right after to make that record one
   * that `onLagged` does not count (the gap is no slow reader's loss).
   */
  skipTo(id: number): void;
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
  /**
   * No more events, ever: appends are ignored, later subscriptions finish at
   * once, and attached subscribers deliver what they have not read yet, then
   * finish — cut short (`complete` false) unless the ring had ended.
   */
  close(): void;
}

export interface EventRingOptions<E> {
  /** Keep the last `capacity` events (integer ≥ 1). */
  capacity: number;
  /** Also keep at most this many bytes as measured by `sizeOf`, evicting oldest first; the newest event always stays. */
  maxBytes?: number;
  /** Size of one event in bytes; required with `maxBytes` and `batchBytes`. */
  sizeOf?: (event: E) => number;
  /**
   * With `sizeOf`: a read hands out about this many bytes at most (always at
   * least one record), the rest on the next read. A transport writes a batch
   * at once, so a client that stops reading holds one batch, not the whole
   * backlog. Default: no limit (everything from the cursor to the head).
   */
  batchBytes?: number;
  /**
   * A bound kept by the owner (e.g. bytes of objects that several events
   * share, which `sizeOf` per event would count many times): after an
   * append, the oldest events are evicted while it answers true (the newest
   * always stays). Use with `onEvict` to keep the owner's account.
   */
  full?: () => boolean;
  /** Called with every event that leaves the ring (evicted, or replaced by `seed`). */
  onEvict?: (event: E) => void;
  /**
   * Build the event telling a subscriber it missed `skipped` events: the exact
   * number, except across a marker's gap (the ids passed over, see `isMarker`).
   */
  lagged: (skipped: number) => E;
  /** Called once per lagged marker handed out (metrics), except those standing for a marker (`isMarker`). */
  onLagged?: (skipped: number) => void;
  /**
   * Recognizes a marker: an appended (or seeded) event that stands for a gap in
   * the numbering before it, e.g. ids a crashed agent may have handed out
   * without storing them. A reader passing over the gap receives, instead of
   * the marker, one lagged record with the marker's id and `skipped` = the ids
   * it passes over; a reader whose cursor is just before the marker receives
   * the marker itself. Only looked at where a reader crosses a gap and at
   * subscribe, never per delivered event.
   */
  isMarker?: (event: E) => boolean;
  /** Called when the last subscriber detaches (not after `close()`). */
  onIdle?: () => void;
}

const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined };

/**
 * A cursor over a ring (see `EventRing.subscribe`). One class for all rings:
 * a class declared per ring cost every task a constructor, a prototype and
 * its methods (bench/README.md, benchmark 1).
 */
class RingSubscription<E> implements Subscription<Numbered<E>>, AsyncIterator<Numbered<E>[], undefined> {
  done = false;
  complete = false;
  waiting = false;

  constructor(
    private readonly ring: Ring<E>,
    /** Id of the last event handed out (or just before the first to hand out). */
    public cursor: number,
    /** Highest id this subscription may deliver (the head at subscribe time unless following). */
    readonly limit: number,
    readonly follow: boolean,
    /** The cursor asked for was past the head: the first read starts with a lagged record. */
    public resync: boolean,
  ) {}

  [Symbol.asyncIterator](): AsyncIterator<Numbered<E>[], undefined> {
    return this;
  }

  get exhausted(): boolean {
    if (this.done || this.resync) return false;
    return this.ring.ended && this.cursor >= this.ring.nextId - 1;
  }

  async next(): Promise<IteratorResult<Numbered<E>[], undefined>> {
    for (;;) {
      if (this.done) return DONE;
      const batch = this.ring.read(this);
      if (batch.length > 0) return { done: false, value: batch };
      if (!this.follow || this.ring.ended || this.ring.isClosed) {
        this.complete = !this.follow || this.ring.ended;
        this.close();
        return DONE;
      }
      this.waiting = true;
      await this.ring.changed();
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
    this.ring.detach(this);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** The ring itself; see {@link EventRing}. */
class Ring<E> implements EventRing<E> {
  private readonly capacity: number;
  private readonly maxBytes: number | undefined;
  private readonly sizeOf: ((event: E) => number) | undefined;
  private readonly lagged: (skipped: number) => E;
  private readonly onLagged: ((skipped: number) => void) | undefined;
  private readonly isMarker: ((event: E) => boolean) | undefined;
  private readonly onIdle: (() => void) | undefined;
  /** Sizes are kept per slot (`sizeOf` given): for `maxBytes` and for `batchBytes`. */
  private readonly sized: boolean;
  private readonly batchBytes: number;
  private readonly full: (() => boolean) | undefined;
  private readonly onEvict: ((event: E) => void) | undefined;
  // Grown on demand up to `capacity` (most tasks log far fewer events than they may keep).
  private readonly slots: (Numbered<E> | undefined)[] = [];
  private readonly sizes: number[] = [];
  private start = 0;
  private count = 0;
  private bytes = 0;
  private next = 1;
  private isEnded = false;
  isClosed = false;
  private signal: PromiseWithResolvers<void> | undefined;
  private readonly subs = new Set<RingSubscription<E>>();

  constructor(opts: EventRingOptions<E>) {
    const { capacity, maxBytes, sizeOf } = opts;
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`event ring capacity must be an integer >= 1, got ${capacity}`);
    }
    if (maxBytes !== undefined && !(maxBytes > 0)) {
      throw new RangeError(`event ring maxBytes must be > 0, got ${maxBytes}`);
    }
    if (maxBytes !== undefined && sizeOf === undefined) {
      throw new RangeError("event ring maxBytes needs sizeOf");
    }
    this.capacity = capacity;
    this.maxBytes = maxBytes;
    this.sizeOf = sizeOf;
    this.lagged = opts.lagged;
    this.onLagged = opts.onLagged;
    this.isMarker = opts.isMarker;
    this.onIdle = opts.onIdle;
    this.sized = sizeOf !== undefined;
    if (opts.batchBytes !== undefined && !(opts.batchBytes > 0 && this.sized)) {
      throw new RangeError(`event ring batchBytes must be > 0 and needs sizeOf, got ${opts.batchBytes}`);
    }
    this.full = opts.full;
    this.onEvict = opts.onEvict;
    this.batchBytes = opts.batchBytes ?? Number.POSITIVE_INFINITY;
  }

  get nextId(): number {
    return this.next;
  }

  get ended(): boolean {
    return this.isEnded;
  }

  get subscribers(): number {
    return this.subs.size;
  }

  get size(): number {
    return this.count;
  }

  get oldestId(): number | undefined {
    return this.count > 0 ? this.at(0).id : undefined;
  }

  /** The k-th retained record, 0 = oldest; caller guarantees k < count. */
  private at(k: number): Numbered<E> {
    return this.slots[(this.start + k) % this.capacity] as Numbered<E>;
  }

  private evictOldest(): void {
    if (this.onEvict !== undefined) this.onEvict(this.at(0).event);
    this.slots[this.start] = undefined;
    if (this.sized) {
      this.bytes -= this.sizes[this.start] ?? 0;
      this.sizes[this.start] = 0;
    }
    this.start = (this.start + 1) % this.capacity;
    this.count--;
  }

  private push(record: Numbered<E>): void {
    if (this.count === this.capacity) this.evictOldest();
    const i = (this.start + this.count) % this.capacity;
    this.slots[i] = record;
    this.count++;
    if (this.sizeOf !== undefined) {
      const size = this.sizeOf(record.event);
      this.sizes[i] = size;
      this.bytes += size;
      if (this.maxBytes !== undefined) while (this.bytes > this.maxBytes && this.count > 1) this.evictOldest();
    }
    if (this.full !== undefined) while (this.count > 1 && this.full()) this.evictOldest();
  }

  private clear(): void {
    if (this.onEvict !== undefined) for (let k = 0; k < this.count; k++) this.onEvict(this.at(k).event);
    this.slots.length = 0;
    this.sizes.length = 0;
    this.start = 0;
    this.count = 0;
    this.bytes = 0;
  }

  /** Wake every waiting subscriber (they re-check their cursor). */
  private wake(): void {
    const s = this.signal;
    if (s === undefined) return;
    this.signal = undefined;
    s.resolve();
  }

  /** Resolves at the next append, end or close. */
  changed(): Promise<void> {
    this.signal ??= Promise.withResolvers<void>();
    return this.signal.promise;
  }

  /** Index of the first retained record with id > `last` (count if none). */
  private firstAfter(last: number): number {
    const count = this.count;
    if (count === 0 || this.at(count - 1).id <= last) return count;
    const oldest = this.at(0).id;
    if (last < oldest) return 0;
    const guess = last + 1 - oldest;
    if (guess < count && this.at(guess).id === last + 1) return guess;
    let lo = 0;
    let hi = count - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.at(mid).id > last) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  private lagRecord(id: number, skipped: number): Numbered<E> {
    this.onLagged?.(skipped);
    return { id, event: this.lagged(skipped) };
  }

  /** Everything after the cursor up to `limit`, with lagged markers for gaps; advances the cursor. */
  read(sub: RingSubscription<E>): Numbered<E>[] {
    const out: Numbered<E>[] = [];
    let last = sub.cursor;
    if (sub.resync) {
      // Starting over from 0 (see `subscribe`): a lagged record first, also when nothing is gone.
      sub.resync = false;
      if (this.count > 0 ? this.at(0).id === 1 : this.next === 1) out.push(this.lagRecord(0, 0));
    }
    // Sizes are added up only for a ring with a batch limit: log rings have none, and a thousand
    // followers each reading every record made the lookup measurable (benchmark 7).
    const limited = this.batchBytes !== Number.POSITIVE_INFINITY;
    let batch = 0;
    let cut = false;
    for (let k = this.firstAfter(last); k < this.count; k++) {
      const record = this.at(k);
      if (record.id > sub.limit) break;
      if (limited) {
        if (batch >= this.batchBytes) {
          cut = true; // the rest on the next read
          break;
        }
        batch += this.sizes[(this.start + k) % this.capacity] ?? 0;
      }
      if (record.id > last + 1) {
        if (this.isMarker?.(record.event)) {
          // A gap in the numbering: one lagged record in the marker's place, counting every id passed over.
          out.push({ id: record.id, event: this.lagged(record.id - last) });
          last = record.id;
          continue;
        }
        // The lagged record takes the id of the last skipped event, so resuming from it continues here.
        out.push(this.lagRecord(record.id - 1, record.id - 1 - last));
      }
      out.push(record);
      last = record.id;
    }
    // Ids up to the reader's head left that it was not given: evicted before this read (an emptied
    // ring, or a follow:false snapshot overtaken by newer events). One lagged record says how many.
    const head = Math.min(this.next - 1, sub.limit);
    if (!cut && last < head) {
      out.push(this.lagRecord(head, head - last));
      last = head;
    }
    sub.cursor = last;
    return out;
  }

  /** A subscription closed itself. */
  detach(sub: RingSubscription<E>): void {
    this.subs.delete(sub);
    // A pending next() waits on the shared signal: wake it so it sees `done`.
    if (sub.waiting) this.wake();
    if (this.subs.size === 0 && !this.isClosed) this.onIdle?.();
  }

  append(events: readonly E[]): void {
    if (this.isClosed || events.length === 0) return;
    // Events that would be evicted by count within this very call are only numbered.
    const skip = Math.max(0, events.length - this.capacity);
    this.next += skip;
    for (let i = skip; i < events.length; i++) {
      this.push({ id: this.next++, event: events[i] as E });
    }
    this.wake();
  }

  subscribe({ after, follow }: { after?: number; follow: boolean }): Subscription<Numbered<E>> {
    if (after !== undefined && Number.isNaN(after)) throw new RangeError("subscribe: after is NaN");
    const head = this.next - 1;
    let cursor: number;
    let resync = false;
    if (after === undefined) {
      // From the oldest retained event; a marker there stands for what is before it: start after it.
      const oldest = this.count > 0 ? this.at(0) : undefined;
      cursor = oldest === undefined ? head : this.isMarker?.(oldest.event) ? oldest.id : oldest.id - 1;
    } else if (after > head) {
      // Not a cursor of this ring's numbering: start over from 0, told with a lagged record (see `read`).
      cursor = 0;
      resync = true;
    } else {
      cursor = Math.max(0, Math.floor(after));
    }
    const sub = new RingSubscription<E>(this, cursor, follow ? Number.POSITIVE_INFINITY : head, follow, resync);
    if (this.isClosed) sub.done = true;
    else this.subs.add(sub);
    return sub;
  }

  since(id: number): Numbered<E>[] {
    const out: Numbered<E>[] = [];
    for (let k = this.firstAfter(id); k < this.count; k++) out.push(this.at(k));
    return out;
  }

  retained(): Numbered<E>[] {
    const out = new Array<Numbered<E>>(this.count);
    for (let k = 0; k < this.count; k++) out[k] = this.at(k);
    return out;
  }

  seed(records: readonly Numbered<E>[]): void {
    let prev = 0;
    for (const r of records) {
      if (!Number.isInteger(r.id) || r.id <= prev) {
        throw new RangeError(`seed: ids must be strictly increasing positive integers, got ${r.id} after ${prev}`);
      }
      prev = r.id;
    }
    this.clear();
    for (let i = Math.max(0, records.length - this.capacity); i < records.length; i++) {
      const r = records[i] as Numbered<E>;
      this.push({ id: r.id, event: r.event });
    }
    this.next = Math.max(this.next, prev + 1);
    this.wake();
  }

  skipTo(id: number): void {
    if (!Number.isSafeInteger(id)) throw new RangeError(`skipTo: id must be a safe integer, got ${id}`);
    if (id > this.next) this.next = id;
  }

  end(): void {
    this.isEnded = true;
    this.wake();
  }

  reopen(): void {
    this.isEnded = false;
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.wake();
  }
}

/** Create an event ring; see {@link EventRing}. Starts no timers. */
export function createEventRing<E>(opts: EventRingOptions<E>): EventRing<E> {
  return new Ring(opts);
}
