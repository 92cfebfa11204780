/**
 * The heartbeat loop: sync now, then every interval; on failure retry with
 * backoff and jitter (honouring the control plane's retry-after), and keep a
 * link state for `/api/v1/info`. Logs once per state change, not per attempt.
 * The loop never throws: a control plane outage must not touch local work.
 *
 * After a success the next heartbeat starts one interval after this one
 * started (a slow answer does not stretch the cadence the control plane was
 * told, `heartbeatIntervalS`), and never before the answer arrived; after a
 * failure the retry waits its backoff from the failure.
 */
import type { SyncRequest, SyncResponse } from "../gen/solti/discover/v1/discovery_pb.ts";
import type { Logger } from "../observability/logger.ts";
import { backoffDelay } from "../tasks/backoff.ts";
import type { Backoff } from "../tasks/model.ts";
import { clipDetail, SyncFailure, type SyncTransport } from "./sync-transport.ts";

/**
 * Longest wait a control plane can ask for (`retryAfterS`, HTTP
 * `Retry-After`): 1 h. Longer asks are cut to it, so a control plane cannot
 * silence an agent for days, and no delay nears the timer limit.
 */
export const MAX_RETRY_AFTER_MS = 3_600_000;

/** `setTimeout` fires at once for a delay of 2^31 ms or more; no delay may reach it. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A control plane's ask (seconds) in ms, cut to `MAX_RETRY_AFTER_MS`; 0 when it asked nothing. */
function asked(retryAfterS: number): number {
  return retryAfterS > 0 ? Math.min(retryAfterS * 1000, MAX_RETRY_AFTER_MS) : 0;
}

/** `connecting` until the first answer; then `up` after a success, `down` after a failure. */
export type LinkStateName = "connecting" | "up" | "down";

/** The control-plane link as shown in `/api/v1/info` (times in Unix ms). */
export interface LinkState {
  url: string;
  transport: "http" | "grpc";
  state: LinkStateName;
  lastSuccessAt?: number;
  lastError?: string;
  lastErrorAt?: number;
  consecutiveFailures: number;
}

/** The timer functions the loop uses; tests inject a manual scheduler. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** `globalThis` timers. */
export const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export interface HeartbeatOptions {
  transport: SyncTransport;
  /** The message of one heartbeat (built fresh per attempt). */
  request: () => SyncRequest;
  /** Shown in the link state and logs; must not carry credentials. */
  url: string;
  intervalMs: number;
  /** Retry policy after failures; default `defaultSyncBackoff(intervalMs)`. */
  backoff?: Backoff;
  /** Give up on one attempt after this long; default `clamp(intervalMs, 1 s, 10 s)`. */
  requestTimeoutMs?: number;
  clock?: () => number;
  random?: () => number;
  timers?: Timers;
  logger?: Logger;
  /** Called after every attempt with the new state (tests, metrics). */
  onAttempt?: (state: Readonly<LinkState>) => void;
}

/** A running heartbeat. */
export interface Heartbeat {
  /** Send the first heartbeat now and keep going; idempotent. */
  start(): void;
  /** A snapshot of the link. */
  state(): LinkState;
  /** Stop: cancel the timer and any call in flight, close the transport. Idempotent. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Full-jitter exponential backoff from `min(1 s, interval)` doubling up to
 * `max(60 s, interval)`: a short heartbeat retries quickly, a long one is
 * never retried less often than it beats.
 */
export function defaultSyncBackoff(intervalMs: number): Backoff {
  return { jitter: "full", firstMs: Math.min(1000, intervalMs), maxMs: Math.max(60_000, intervalMs), factor: 2 };
}

/** Create the loop; nothing is sent until `start()`. */
export function createHeartbeat(opts: HeartbeatOptions): Heartbeat {
  const clock = opts.clock ?? Date.now;
  const random = opts.random ?? Math.random;
  const timers = opts.timers ?? realTimers;
  const policy = opts.backoff ?? defaultSyncBackoff(opts.intervalMs);
  const requestTimeoutMs = opts.requestTimeoutMs ?? Math.min(Math.max(opts.intervalMs, 1000), 10_000);
  const link: LinkState = { url: opts.url, transport: opts.transport.kind, state: "connecting", consecutiveFailures: 0 };

  let started = false;
  let closed = false;
  let timer: unknown;
  let inFlight: Promise<void> | undefined;
  let abort: AbortController | undefined;

  const schedule = (ms: number) => {
    if (closed) return;
    timer = timers.setTimeout(
      () => {
        timer = undefined;
        inFlight = beat().finally(() => {
          inFlight = undefined;
        });
      },
      Math.min(Math.max(0, ms), MAX_TIMER_MS),
    );
  };

  const succeeded = (res: SyncResponse, startedAt: number): number => {
    const prev = link.state;
    link.state = "up";
    const now = clock();
    link.lastSuccessAt = now;
    const after = link.consecutiveFailures;
    link.consecutiveFailures = 0;
    if (prev !== "up") opts.logger?.info("control plane link up", { url: link.url, transport: link.transport, ...(after > 0 ? { failedAttempts: after } : {}) });
    // The interval counts from the attempt's start; a clock step back counts as no time.
    const elapsed = Math.min(Math.max(0, now - startedAt), opts.intervalMs);
    // "At least that long" from the answer: an ask shorter than the interval does not speed the heartbeat up.
    return Math.max(opts.intervalMs - elapsed, asked(res.retryAfterS));
  };

  const failed = (err: unknown): number => {
    const prev = link.state;
    const message = err instanceof Error ? err.message : String(err);
    link.state = "down";
    link.lastError = message;
    link.lastErrorAt = clock();
    link.consecutiveFailures++;
    if (prev !== "down") opts.logger?.warn("control plane link down; retrying with backoff, local work continues", { url: link.url, transport: link.transport, error: message });
    const wait = backoffDelay(policy, link.consecutiveFailures - 1, random);
    const retryAfterMs = err instanceof SyncFailure ? Math.min(err.retryAfterMs ?? 0, MAX_RETRY_AFTER_MS) : 0;
    return Math.max(wait, retryAfterMs);
  };

  async function beat(): Promise<void> {
    const startedAt = clock();
    const ac = new AbortController();
    abort = ac;
    const deadline = timers.setTimeout(() => ac.abort(new SyncFailure(`no answer within ${requestTimeoutMs} ms`)), requestTimeoutMs);
    let next: number;
    try {
      const res = await opts.transport.sync(opts.request(), ac.signal);
      if (closed) return;
      next = res.success
        ? succeeded(res, startedAt)
        : failed(new SyncFailure(`refused: ${clipDetail(res.reason) || "no reason given"}`, asked(res.retryAfterS) || undefined));
    } catch (err) {
      if (closed) return;
      next = failed(err);
    } finally {
      timers.clearTimeout(deadline);
      abort = undefined;
    }
    opts.onAttempt?.({ ...link });
    schedule(next);
  }

  const close = async () => {
    if (closed) return;
    closed = true;
    if (timer !== undefined) timers.clearTimeout(timer);
    timer = undefined;
    abort?.abort(new SyncFailure("heartbeat stopped"));
    await inFlight;
    opts.transport.close();
  };

  return {
    start() {
      if (started || closed) return;
      started = true;
      schedule(0);
    },
    state: () => ({ ...link }),
    close,
    [Symbol.asyncDispose]: close,
  };
}
