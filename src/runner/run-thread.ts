/**
 * Runs tasks from a runner thread: `startRun` itself runs on a worker
 * (`run-thread-worker.ts`), and this module hands out {@link RunHandle}s on the
 * calling thread that mirror the worker's runs.
 *
 * Used with `--spawn-on thread`. Why: `Bun.spawn` blocks its thread until
 * the child has exec'd (vfork), and the pipes, timers and group handling of
 * every run cost the thread that owns them. Under a stream of short tasks the
 * agent's main thread is the bottleneck (bench/README.md, benchmark 1); on
 * the runner thread that work no longer delays requests, the store or the log
 * hub, for more CPU in all (docs/operations.md, "Tuning").
 *
 * What crosses the threads, each way batched per microtask checkpoint:
 * - to the worker: `start` (the run's spec without its callback) and `stop`;
 * - back: `process` (the identity, or none when the spawn failed), `lines`
 *   (one read chunk's lines, in order per stream) and `result`.
 * The handle's `process` is therefore known a little later than the spawn:
 * `identified` settles with it.
 *
 * The worker starts with the first run, is referenced only while runs are in
 * flight (an idle runner thread does not keep the process alive) and ends with
 * `close()`. If it fails, its runs end as failed (their process groups and
 * the rest of their sessions are killed) and the next run starts a new one;
 * a worker that cannot start at all makes the runner fall back to spawning
 * on the calling thread.
 */
import { dirname, join } from "node:path";
import type { RunProcess, StreamKind } from "../tasks/model.ts";
import { microtaskBatch } from "./microtask-batch.ts";
import { killRunSession } from "./proc-stat.ts";
import { startRun, type RunHandle, type RunResult, type RunSpec, type StopReason } from "./run-process.ts";

/** A run's spec as it crosses to the worker. */
export type ThreadRunSpec = Omit<RunSpec, "onLines">;

/** Messages to the runner thread (posted as arrays). */
export type ToRunner = { t: "start"; id: number; spec: ThreadRunSpec } | { t: "stop"; id: number; reason: StopReason };

/** Messages from the runner thread (posted as arrays). */
export type FromRunner =
  | { t: "ready"; id: 0 }
  | { t: "process"; id: number; process: RunProcess | undefined }
  | { t: "lines"; id: number; stream: StreamKind; lines: string[]; ts: number; bytes: number }
  | { t: "result"; id: number; result: RunResult };

/** Starts runs on a runner thread; `run` has the signature of `startRun`. */
export interface ThreadRunner {
  run(spec: RunSpec): RunHandle;
  /** Runs in flight (started, result not yet delivered). */
  readonly inFlight: number;
  /** Ends the worker. Call after every run has settled (a run still in flight ends as failed). */
  close(): Promise<void>;
}

export interface ThreadRunnerOptions {
  /** Where the worker's module is; default: `run-thread-worker.ts` beside this one. */
  workerUrl?: string | URL;
  /** Told when the worker fails or cannot start (the runner goes on as described above). */
  onError?(message: string): void;
}

/**
 * Where the worker's module is. From source: beside this file. In the
 * executable every module is in Bun's embedded file system: this one bundled
 * into a chunk at its root, the worker an entry of its own (build.ts) that
 * keeps its path under `src/`, beside the main entry, as `.js`.
 */
function workerModule(): string {
  const here = new URL("./run-thread-worker.ts", import.meta.url);
  if (!here.pathname.includes("/$bunfs/")) return here.href;
  return join(dirname(Bun.main), "runner", "run-thread-worker.js");
}

/**
 * The error of a worker's error event. Its message may be Bun's report with a
 * source excerpt: then the line `error: …` (or `SomeError: …`) of it.
 */
function errorText(message: string | undefined): string {
  const lines = (message ?? "").split("\n").map((l) => l.trim()).filter((l) => l !== "");
  const reported = lines.find((l) => /^(error|[A-Za-z]*Error): /.test(l));
  return reported?.replace(/^error: /, "") ?? lines[0] ?? "error";
}

/** One run mirrored from the worker. */
class ThreadRun implements RunHandle {
  process: RunProcess | undefined = undefined;
  readonly identified: Promise<RunProcess | undefined>;
  readonly result: Promise<RunResult>;
  settled = false;
  known = false;
  private readonly resolveIdentity: (p: RunProcess | undefined) => void;
  private readonly resolveResult: (r: RunResult) => void;

  constructor(
    readonly id: number,
    readonly spec: RunSpec,
    private readonly post: (m: ToRunner) => void,
  ) {
    const identity = Promise.withResolvers<RunProcess | undefined>();
    const result = Promise.withResolvers<RunResult>();
    this.identified = identity.promise;
    this.result = result.promise;
    this.resolveIdentity = identity.resolve;
    this.resolveResult = result.resolve;
  }

  identify(p: RunProcess | undefined): void {
    if (this.known) return;
    this.known = true;
    this.process = p;
    this.resolveIdentity(p);
  }

  lines(stream: StreamKind, lines: string[], ts: number, bytes: number): void {
    try {
      this.spec.onLines(stream, lines, ts, bytes);
    } catch {
      // see RunSpec.onLines
    }
  }

  settle(r: RunResult): void {
    if (this.settled) return;
    this.settled = true;
    this.identify(undefined);
    this.resolveResult(r);
  }

  stop(reason: StopReason): Promise<RunResult> {
    if (!this.settled) this.post({ t: "stop", id: this.id, reason });
    return this.result;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop("shutdown");
  }
}

/** Create a runner whose runs are spawned and watched on a runner thread. */
export function createThreadRunner(opts: ThreadRunnerOptions = {}): ThreadRunner {
  const runs = new Map<number, ThreadRun>();
  let worker: Worker | undefined;
  /** The worker said `ready` (its module loaded; it posts that before it handles any start). */
  let alive = false;
  /** The worker could not start: spawn on this thread from now on. */
  let fallback = false;
  let referenced = false;
  let nextId = 1;
  const outbox = microtaskBatch<ToRunner>((batch) => worker?.postMessage(batch));
  const post = (m: ToRunner) => outbox.push(m);
  const reference = () => {
    const want = runs.size > 0;
    if (want === referenced || !worker) return;
    referenced = want;
    if (want) worker.ref();
    else worker.unref();
  };

  const receive = (batch: FromRunner[]) => {
    for (const m of batch) {
      if (m.t === "ready") {
        alive = true;
        continue;
      }
      const r = runs.get(m.id);
      if (!r) continue;
      if (m.t === "lines") r.lines(m.stream, m.lines, m.ts, m.bytes);
      else if (m.t === "process") r.identify(m.process);
      else {
        runs.delete(m.id);
        r.settle(m.result);
      }
    }
    reference();
  };

  /** The worker failed: end its runs (kill what was started), forget it. */
  const fail = (message: string) => {
    const w = worker;
    if (!w) return;
    worker = undefined;
    referenced = false;
    outbox.clear();
    w.terminate();
    const neverLoaded = !alive;
    alive = false;
    if (neverLoaded) fallback = true;
    opts.onError?.(neverLoaded ? `runner thread could not start (${message}); spawning on the main thread` : `runner thread failed: ${message}`);
    const orphans = [...runs.values()];
    runs.clear();
    for (const r of orphans) {
      if (neverLoaded) {
        // Nothing was spawned: start it here instead.
        adopt(r, startRun(r.spec));
        continue;
      }
      abandon(r, `runner thread failed: ${message}`);
    }
  };

  /** End a run the worker can no longer report on: kill its group and the rest of its session, fail it. */
  const abandon = (r: ThreadRun, error: string) => {
    if (r.process) killRunSession(r.process);
    const now = Date.now();
    r.settle({ spawnError: error, startedAt: now, finishedAt: now });
  };

  /** Mirror a run started on this thread into `r` (fallback). */
  const adopt = (r: ThreadRun, local: RunHandle) => {
    r.identify(local.process);
    r.stop = (reason) => local.stop(reason);
    void local.result.then((res) => r.settle(res));
  };

  const spawnWorker = (): Worker => {
    const w = new Worker(opts.workerUrl ?? workerModule());
    w.onmessage = (e: MessageEvent<FromRunner[]>) => {
      if (w === worker) receive(e.data);
    };
    w.addEventListener("error", (e: ErrorEvent) => {
      if (w === worker) fail(e.error instanceof Error ? e.error.message : errorText(e.message));
    });
    w.addEventListener("close", () => {
      if (w === worker) fail("exited");
    });
    w.unref();
    return w;
  };

  return {
    run(spec) {
      const id = nextId++;
      const r = new ThreadRun(id, spec, post);
      if (fallback) {
        adopt(r, startRun(spec));
        return r;
      }
      try {
        worker ??= spawnWorker();
      } catch (err) {
        fallback = true;
        opts.onError?.(`runner thread could not start (${err instanceof Error ? err.message : String(err)}); spawning on the main thread`);
        adopt(r, startRun(spec));
        return r;
      }
      const { onLines: _onLines, ...wire } = spec;
      runs.set(id, r);
      reference();
      post({ t: "start", id, spec: wire });
      return r;
    },

    get inFlight() {
      return runs.size;
    },

    async close() {
      const w = worker;
      worker = undefined;
      if (!w) return;
      const orphans = [...runs.values()];
      runs.clear();
      const closed = new Promise<void>((resolve) => w.addEventListener("close", () => resolve(), { once: true }));
      w.terminate();
      await closed;
      for (const r of orphans) abandon(r, "runner thread closed");
    },
  };
}
