/**
 * The heartbeat loop alone, driven by a manual scheduler and a scripted
 * transport: exact delays (interval, backoff, retry-after), link states and
 * log lines, with no real time involved.
 */
import { create } from "@bufbuild/protobuf";
import { describe, expect, test } from "bun:test";
import { SyncRequestSchema, SyncResponseSchema, type SyncRequest, type SyncResponse } from "../../src/gen/solti/discover/v1/discovery_pb.ts";
import { createHeartbeat, defaultSyncBackoff, MAX_RETRY_AFTER_MS, MAX_TIMER_MS, type LinkState, type Timers } from "../../src/fleet/heartbeat.ts";
import { SyncFailure, type SyncTransport } from "../../src/fleet/sync-transport.ts";
import { backoffDelay } from "../../src/tasks/backoff.ts";
import { captureLogs } from "./capture-logger.ts";

/** Timers that only fire when the test says so; records every delay asked for. */
function manualTimers() {
  let next = 1;
  const pending = new Map<number, { fn: () => void; ms: number }>();
  const timers: Timers = {
    setTimeout(fn, ms) {
      const id = next++;
      pending.set(id, { fn, ms });
      return id;
    },
    clearTimeout(h) {
      pending.delete(h as number);
    },
  };
  return {
    timers,
    /** Delays of the pending timers, oldest first. */
    delays: () => [...pending.values()].map((t) => t.ms),
    /** Fire the pending timer with delay `ms` (the heartbeat's, not a request deadline). */
    fire(ms: number) {
      const entry = [...pending.entries()].find(([, t]) => t.ms === ms);
      if (!entry) throw new Error(`no timer of ${ms} ms; pending: ${[...pending.values()].map((t) => t.ms).join(", ")}`);
      pending.delete(entry[0]);
      entry[1].fn();
    },
  };
}

type Outcome = Partial<Omit<SyncResponse, "$typeName">> | SyncFailure;

/** A transport answering from a script, one outcome per call. */
function scriptedTransport(script: Outcome[], during: () => void = () => {}) {
  const calls: { req: SyncRequest; signal: AbortSignal }[] = [];
  let closed = false;
  const transport: SyncTransport = {
    kind: "http",
    async sync(req, signal) {
      calls.push({ req, signal });
      during();
      const outcome = script.shift() ?? { success: true };
      if (outcome instanceof SyncFailure) throw outcome;
      return create(SyncResponseSchema, outcome);
    },
    close() {
      closed = true;
    },
  };
  return { transport, calls, closed: () => closed };
}

const INTERVAL = 30_000;
const TIMEOUT = 10_000;

function setup(script: Outcome[], intervalMs = INTERVAL) {
  const t = manualTimers();
  let now = 1_000_000;
  /** How far the clock moves while the control plane answers (set by a test). */
  const call = { ms: 0 };
  const tr = scriptedTransport(script, () => (now += call.ms));
  const logs = captureLogs();
  const attempts: LinkState[] = [];
  let waiter: (() => void) | undefined;
  const hb = createHeartbeat({
    transport: tr.transport,
    request: () => create(SyncRequestSchema, { id: "a1" }),
    url: "http://cp.example",
    intervalMs,
    clock: () => now,
    random: () => 0.5,
    timers: t.timers,
    logger: logs.logger,
    onAttempt: (s) => {
      attempts.push(s);
      waiter?.();
    },
  });
  /** Fire the timer of `ms` and wait until that attempt was processed. */
  const beat = async (ms: number): Promise<LinkState> => {
    const done = new Promise<void>((resolve) => (waiter = resolve));
    t.fire(ms);
    await done;
    return attempts.at(-1)!;
  };
  return { hb, t, tr, logs, attempts, beat, call };
}

describe("heartbeat loop", () => {
  test("first beat at once, then one per interval; state connecting → up", async () => {
    const s = setup([]);
    expect(s.hb.state()).toEqual({ url: "http://cp.example", transport: "http", state: "connecting", consecutiveFailures: 0 });
    s.hb.start();
    s.hb.start(); // idempotent
    expect(s.t.delays()).toEqual([0]);
    expect(await s.beat(0)).toEqual({ url: "http://cp.example", transport: "http", state: "up", lastSuccessAt: expect.any(Number), consecutiveFailures: 0 });
    expect(s.t.delays()).toEqual([INTERVAL]);
    await s.beat(INTERVAL);
    expect(s.t.delays()).toEqual([INTERVAL]);
    expect(s.tr.calls).toHaveLength(2);
    expect(s.logs.matching("control plane link")).toEqual([{ ts: expect.any(String), level: "info", msg: "control plane link up", url: "http://cp.example", transport: "http" }]);
    await s.hb.close();
    expect(s.t.delays()).toEqual([]);
    expect(s.tr.closed()).toBe(true);
  });

  test("failures back off with full jitter (firstMs 1 s, doubling, max 60 s) and log once; success resets", async () => {
    const fail = () => new SyncFailure("unreachable: connection refused");
    const s = setup([{ success: true }, fail(), fail(), fail(), fail(), { success: true }]);
    const policy = defaultSyncBackoff(INTERVAL);
    expect(policy).toEqual({ jitter: "full", firstMs: 1000, maxMs: 60_000, factor: 2 });
    s.hb.start();
    await s.beat(0);
    let wait = INTERVAL;
    for (let n = 0; n < 4; n++) {
      const st = await s.beat(wait);
      expect(st).toMatchObject({ state: "down", consecutiveFailures: n + 1, lastError: "unreachable: connection refused" });
      wait = backoffDelay(policy, n, () => 0.5);
      expect(s.t.delays()).toEqual([wait]);
    }
    expect(s.t.delays()).toEqual([4000]); // 0.5 × min(1000 × 2^3, 60000)
    expect(await s.beat(4000)).toMatchObject({ state: "up", consecutiveFailures: 0 });
    expect(s.t.delays()).toEqual([INTERVAL]);
    expect(s.logs.matching("control plane link").map((l) => [l.level, l.msg, l.failedAttempts])).toEqual([
      ["info", "control plane link up", undefined],
      ["warn", "control plane link down; retrying with backoff, local work continues", undefined],
      ["info", "control plane link up", 4],
    ]);
    await s.hb.close();
  });

  test("success:false is a failure; retryAfterS is honoured when longer than the backoff", async () => {
    const s = setup([{ success: false, reason: "maintenance", retryAfterS: 7 }, { success: false }, { success: true, retryAfterS: 45 }]);
    s.hb.start();
    expect(await s.beat(0)).toMatchObject({ state: "down", lastError: "refused: maintenance", consecutiveFailures: 1 });
    expect(s.t.delays()).toEqual([7000]);
    expect(await s.beat(7000)).toMatchObject({ state: "down", lastError: "refused: no reason given", consecutiveFailures: 2 });
    expect(s.t.delays()).toEqual([1000]); // backoff 0.5 × 2000, nothing asked
    expect(await s.beat(1000)).toMatchObject({ state: "up" });
    expect(s.t.delays()).toEqual([45_000]); // an accepted beat may also ask for a later next one
    await s.hb.close();
  });

  test("a transport's retry-after (HTTP Retry-After) is honoured", async () => {
    const s = setup([new SyncFailure("HTTP 429", 120_000)]);
    s.hb.start();
    expect(await s.beat(0)).toMatchObject({ state: "down", lastError: "HTTP 429" });
    expect(s.t.delays()).toEqual([120_000]);
    await s.hb.close();
  });

  test("the interval counts from the start of a beat: a slow answer does not stretch the cadence, one slower than the interval is followed at once", async () => {
    const ok = { success: true };
    const s = setup([ok, ok, ok, { success: true, retryAfterS: 40 }, new SyncFailure("down")]);
    s.hb.start();
    s.call.ms = 700;
    await s.beat(0);
    expect(s.t.delays()).toEqual([INTERVAL - 700]);
    s.call.ms = INTERVAL + 5000; // the answer took longer than the interval: the next beat goes now
    await s.beat(INTERVAL - 700);
    expect(s.t.delays()).toEqual([0]);
    s.call.ms = -60_000; // the clock stepped back during the call: counted as no time
    await s.beat(0);
    expect(s.t.delays()).toEqual([INTERVAL]);
    s.call.ms = 700; // an ask for longer than the interval counts from the answer
    await s.beat(INTERVAL);
    expect(s.t.delays()).toEqual([40_000]);
    s.call.ms = 700; // a failure's backoff also counts from the answer: 1 s first, full jitter (0.5)
    await s.beat(40_000);
    expect(s.t.delays()).toEqual([backoffDelay(defaultSyncBackoff(INTERVAL), 0, () => 0.5)]);
  });

  test("an accepted beat asking for less than the interval does not speed the heartbeat up", async () => {
    const s = setup([{ success: true, retryAfterS: 1 }, { success: true, retryAfterS: 30 }]);
    s.hb.start();
    await s.beat(0);
    expect(s.t.delays()).toEqual([INTERVAL]); // at least the interval, not 1 s
    await s.beat(INTERVAL);
    expect(s.t.delays()).toEqual([INTERVAL]);
    await s.hb.close();
  });

  test("retry-after asks are honoured up to 1 h; longer ones (up to int32 seconds) wait 1 h, never overflow the timer", async () => {
    const INT32_MAX = 2 ** 31 - 1;
    expect(MAX_RETRY_AFTER_MS).toBe(3_600_000);
    const s = setup([
      { success: true, retryAfterS: 2_147_484 }, // 24.9 days: past the timer limit
      { success: false, reason: "come back next month", retryAfterS: INT32_MAX },
      new SyncFailure("HTTP 503", 3_000_000_000), // Retry-After: 3000000
      new SyncFailure("HTTP 503", 2_400_000), // 40 min: honoured as asked
      { success: true, retryAfterS: 3599 },
    ]);
    s.hb.start();
    await s.beat(0);
    expect(s.t.delays()).toEqual([MAX_RETRY_AFTER_MS]);
    expect(await s.beat(MAX_RETRY_AFTER_MS)).toMatchObject({ state: "down", lastError: "refused: come back next month" });
    expect(s.t.delays()).toEqual([MAX_RETRY_AFTER_MS]);
    await s.beat(MAX_RETRY_AFTER_MS);
    expect(s.t.delays()).toEqual([MAX_RETRY_AFTER_MS]);
    await s.beat(MAX_RETRY_AFTER_MS);
    expect(s.t.delays()).toEqual([2_400_000]);
    expect(await s.beat(2_400_000)).toMatchObject({ state: "up" });
    expect(s.t.delays()).toEqual([3_599_000]);
    await s.hb.close();
  });

  test("an interval past the timer limit is clamped by the scheduler, for the beat and the backoff", async () => {
    const huge = 60 * 86_400_000; // 60 days: setTimeout would fire after 1 ms; the backoff cap (max(60 s, interval)) too
    const failures = Array.from({ length: 30 }, () => new SyncFailure("unreachable: down"));
    const s = setup([{ success: true }, ...failures], huge);
    s.hb.start();
    await s.beat(0);
    expect(s.t.delays()).toEqual([MAX_TIMER_MS]);
    let wait = MAX_TIMER_MS;
    for (let n = 0; n < failures.length; n++) {
      await s.beat(wait);
      wait = s.t.delays()[0]!;
      expect(wait).toBeLessThanOrEqual(MAX_TIMER_MS);
    }
    // Backoff 0.5 × min(1 s × 2^29, 60 d) = 30 days, clamped.
    expect(s.t.delays()).toEqual([MAX_TIMER_MS]);
    await s.hb.close();
  });

  test("a long refusal reason is cut to 200 characters in lastError and in the log line", async () => {
    const reason = `maintenance ${"x".repeat(5_000_000)}`;
    const s = setup([{ success: false, reason }]);
    s.hb.start();
    const st = await s.beat(0);
    const cut = `refused: ${`maintenance ${"x".repeat(188)}`}…`;
    expect(st).toMatchObject({ state: "down", lastError: cut });
    expect(s.logs.matching("control plane link down")).toEqual([
      { ts: expect.any(String), level: "warn", msg: "control plane link down; retrying with backoff, local work continues", url: "http://cp.example", transport: "http", error: cut },
    ]);
    await s.hb.close();
  });

  test("a call with no answer is aborted at its deadline; close() aborts the call in flight", async () => {
    const t = manualTimers();
    const signals: AbortSignal[] = [];
    const transport: SyncTransport = {
      kind: "grpc",
      sync: (_req, signal) =>
        new Promise((_resolve, reject) => {
          signals.push(signal);
          signal.addEventListener("abort", () => reject(new SyncFailure(String((signal.reason as Error).message))));
        }),
      close() {},
    };
    const states: LinkState[] = [];
    let attempted: (() => void) | undefined;
    const hb = createHeartbeat({
      transport,
      request: () => create(SyncRequestSchema, {}),
      url: "grpc://cp:9000",
      intervalMs: INTERVAL,
      random: () => 0,
      timers: t.timers,
      onAttempt: (st) => {
        states.push(st);
        attempted?.();
      },
    });
    hb.start();
    t.fire(0);
    expect(t.delays()).toEqual([TIMEOUT]);
    const done = new Promise<void>((r) => (attempted = r));
    t.fire(TIMEOUT);
    await done;
    expect(states.at(-1)).toMatchObject({ state: "down", lastError: `no answer within ${TIMEOUT} ms` });
    expect(t.delays()).toEqual([0]); // full jitter with random 0
    t.fire(0);
    await hb.close();
    expect(signals[1]!.aborted).toBe(true);
    expect(states).toHaveLength(1); // a stopped heartbeat records nothing more
    expect(t.delays()).toEqual([]);
  });
});
