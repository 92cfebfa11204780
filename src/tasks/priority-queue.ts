/**
 * Binary heap of tasks waiting for global capacity: higher priority first,
 * then lower sequence (submission order). Removal by id is lazy.
 */
export interface WaitingEntry {
  id: string;
  priority: number;
  seq: number;
}

export interface PriorityQueue {
  readonly size: number;
  push(entry: WaitingEntry): void;
  /** Highest-priority entry still present, or undefined. */
  pop(): WaitingEntry | undefined;
  remove(id: string): boolean;
  has(id: string): boolean;
}

function before(a: WaitingEntry, b: WaitingEntry): boolean {
  return a.priority !== b.priority ? a.priority > b.priority : a.seq < b.seq;
}

export function createPriorityQueue(): PriorityQueue {
  const heap: WaitingEntry[] = [];
  const live = new Map<string, WaitingEntry>();

  function up(i: number): void {
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(heap[i]!, heap[p]!)) break;
      [heap[i], heap[p]] = [heap[p]!, heap[i]!];
      i = p;
    }
  }
  function down(i: number): void {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && before(heap[l]!, heap[m]!)) m = l;
      if (r < heap.length && before(heap[r]!, heap[m]!)) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  }
  function popRaw(): WaitingEntry | undefined {
    const top = heap[0];
    const last = heap.pop();
    if (heap.length > 0 && last) {
      heap[0] = last;
      down(0);
    }
    return top;
  }

  return {
    get size() {
      return live.size;
    },
    push(entry) {
      live.set(entry.id, entry);
      heap.push(entry);
      up(heap.length - 1);
    },
    pop() {
      for (;;) {
        const e = popRaw();
        if (!e) return undefined;
        if (live.get(e.id) === e) {
          live.delete(e.id);
          return e;
        }
      }
    },
    remove(id) {
      return live.delete(id);
    },
    has(id) {
      return live.has(id);
    },
  };
}
