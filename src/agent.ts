/**
 * `createAgent(config)`: wires store, log hub, supervisor, service, metrics,
 * the HTTP and gRPC servers. `start()` opens the store, recovers interrupted
 * work and listens; `stop()` reverses it: not ready → stop accepting → stop
 * runs (TERM → grace → KILL) → flush → close servers.
 */
import { accessSync, constants, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { loadSecurity, type Security } from "./auth/load-security.ts";
import type { Config } from "./config.ts";
import { ipVersion, showAddress } from "./auth/listen-policy.ts";
import type { FleetLink } from "./fleet/fleet-link.ts";
import { createGrpcServer, PEER_METADATA_KEY } from "./grpc/grpc-server.ts";
import { looksLikeProtoJson } from "./grpc/proto-json-shape.ts";
import { createHttpApp } from "./http/http-app.ts";
import { MAX_BODY_BYTES } from "./http/read-body.ts";
import { createLogHub, type LogHub } from "./logs/log-hub.ts";
import { createLogger, type Logger } from "./observability/logger.ts";
import { createMetrics, type Metrics } from "./observability/metrics.ts";
import { logTransitions } from "./observability/transition-log.ts";
import { createCommandResolver } from "./runner/command-line.ts";
import { createResourceLimiter, type ResourceLimiter } from "./runner/resource-limits.ts";
import { createThreadRunner, type ThreadRunner } from "./runner/run-thread.ts";
import { openStore, type OpenStoreOptions } from "./store/open-store.ts";
import type { Store } from "./store/store.ts";
import { PHASES, isTerminal, type Phase } from "./tasks/model.ts";
import { createCapSweeps } from "./tasks/cap-sweeps.ts";
import { createSupervisor, type Supervisor } from "./tasks/supervisor.ts";
import { createTaskEvents } from "./tasks/task-events.ts";
import { createTaskService, type TaskService } from "./tasks/task-service.ts";
import { MAX_SCRIPT_BYTES } from "./tasks/validate-spec.ts";
import { archName } from "./platform.ts";
import { VERSION } from "./version.ts";

/** A running (or startable) agent. */
export interface Agent {
  readonly config: Readonly<Config>;
  /** Bound ports, known after `start()`. */
  readonly httpPort: number;
  readonly grpcPort: number;
  readonly service: TaskService;
  /** Started, not stopping, and the store has not failed: what /readyz and gRPC health say. */
  readonly ready: boolean;
  start(): Promise<void>;
  /**
   * Settles once the writes of the start (recovery) are committed; rejects when
   * the store could not take them (a full disk): the agent can do no work, and
   * its owner should stop it and exit with an error. Call after `start()`.
   */
  startupWrites(): Promise<void>;
  /** Graceful stop; idempotent. */
  stop(): Promise<void>;
  /**
   * Cut a `stop()` in progress short: the tasks' processes are killed now
   * instead of after their kill grace (a second SIGTERM or Ctrl-C). A no-op
   * when no stop is in progress.
   */
  hurry(): void;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface AgentOptions {
  logger?: Logger;
  clock?: () => number;
  random?: () => number;
  /** Tuning and test seams of the SQLite store (e.g. a `syncWal` that fails); its `onFailure` is the agent's. */
  storeOptions?: Omit<OpenStoreOptions, "onFailure">;
}

const HUB_FLUSH_MS = 100;
/** The TTL is checked every tenth of it, at most a minute and at least a second apart. */
const SWEEP_MS = 60_000;
const SWEEP_MIN_MS = 1_000;
/** The first retention sweep after start (bench/README.md, benchmark 10: not before the first request is answered). */
const FIRST_SWEEP_DELAY_MS = 250;
/**
 * One sweep batch: at most 256 tasks (≈ 16 ms when each has only a few log
 * rows: read, delete with its runs and logs, listeners ≈ 64 µs) and at most
 * ≈ 20 ms (a task with 1 000 stored log lines takes ≈ 3 ms to delete).
 * 100 000 small tasks swept in one call held the loop for ≈ 6 s, 256 tasks
 * of 1 000 lines each for ≈ 1.3 s.
 */
const SWEEP_BATCH = { limit: 256, budgetMs: 20 };
/** How long shutdown waits for the answers given during shutdown (waits, ends of SSE and gRPC streams) to go out. */
const HTTP_DRAIN_MS = 1000;

/**
 * The error of a listen that failed: `message`, unless the host is a name
 * that does not resolve (the runtime then reports a misleading code such as
 * EEXIST or EINVAL): "cannot resolve host …" instead.
 */
async function unresolvable(flag: string, addr: { host: string; port: number }, cause: unknown, message: string): Promise<Error> {
  if (ipVersion(addr.host) === 0) {
    try {
      const { lookup } = await import("node:dns/promises");
      await lookup(addr.host);
    } catch (err) {
      const code = (err as { code?: string }).code ?? "not found";
      return new Error(`${flag} cannot listen on ${showAddress(addr)}: cannot resolve host ${JSON.stringify(addr.host)} (${code}); give an IP address of this host`, { cause });
    }
  }
  return new Error(message, { cause });
}

/** Create an agent from a parsed config. Nothing happens until `start()`. */
export function createAgent(config: Readonly<Config>, opts: AgentOptions = {}): Agent {
  const logger = opts.logger ?? createLogger({ level: config.logLevel, format: config.logFormat });
  const clock = opts.clock ?? Date.now;
  const startedAt = clock();
  let store: Store | undefined;
  let hub: LogHub | undefined;
  let supervisor: Supervisor | undefined;
  let service: (TaskService & { close(): void }) | undefined;
  let metrics: Metrics | undefined;
  let http: { stop(closeActive?: boolean): Promise<void> | void; port: number } | undefined;
  let grpc: ReturnType<typeof createGrpcServer> | undefined;
  let grpcPort = 0;
  let fleet: FleetLink | undefined;
  /** The script files' directory of an agent without a store (`--data-dir :memory:`): removed at the stop. */
  let memoryScriptDir: string | undefined;
  let ready = false;
  let storeOpen = false;
  let security: Security | undefined;
  let limiter: ResourceLimiter | undefined;
  let runner: ThreadRunner | undefined;
  let stopping: Promise<void> | undefined;
  const timers: ReturnType<typeof setInterval>[] = [];
  /** The next batch of a sweep that had more to delete. */
  let nextBatch: ReturnType<typeof setImmediate> | undefined;
  let startupWrites: Promise<void> = Promise.resolve();
  const toEvict = new Set<string>();

  function info() {
    const s = supervisor?.stats();
    return {
      name: "tasklane",
      version: VERSION,
      apiVersion: 1,
      startedAt,
      uptimeMs: clock() - startedAt,
      hostname: hostname(),
      os: process.platform,
      arch: archName(),
      pid: process.pid,
      dataDir: config.dataDir === ":memory:" ? config.dataDir : resolve(config.dataDir), // where the data is, as `store` shows
      store: store?.kind,
      auth: security?.info() ?? { enabled: false },
      resourceLimits: limiter
        ? { mode: limiter.mode, memory: limiter.support.memory, cpu: limiter.support.cpu, pids: limiter.support.pids, notes: limiter.notes }
        : undefined,
      limits: {
        maxConcurrent: config.maxConcurrent,
        maxQueuePerSlot: config.maxQueuePerSlot,
        maxBodyBytes: MAX_BODY_BYTES,
        maxScriptBytes: MAX_SCRIPT_BYTES,
        maxLineBytes: config.maxLineBytes,
        logRetain: config.logRetain,
        logRetainBytes: config.logRetainBytes,
        killGraceMs: config.killGraceMs,
        taskTtlMs: config.taskTtlMs,
        maxTasks: config.maxTasks,
        maxRuns: config.maxRuns,
      },
      capabilities: [
        "task_runs", "task_delete", "cancel", "wait", "watch", "hold", "restart", "submit_and_wait",
        ...(security?.authenticator.enabled ? ["auth", "rate_limits"] : []),
        ...(security?.tls ? ["tls"] : []),
        ...(limiter ? (["memory", "cpu", "pids"] as const).filter((r) => limiter?.support[r] !== "none").map((r) => `resource_limits.${r}`) : []),
      ],
      running: s?.running ?? 0,
      ...(fleet ? { controlPlane: fleet.info() } : {}),
    };
  }

  /** Ready (started, not stopping) and the store can still make writes durable: /readyz and gRPC health. */
  function serving(): boolean {
    return ready && store?.failure === undefined;
  }

  function countByPhase(): Record<Phase, number> {
    const out = {} as Record<Phase, number>;
    for (const p of PHASES) out[p] = store ? store.listTasks({ status: p, order: "asc", limit: 1, offset: 0 }).total : 0;
    return out;
  }

  const agent: Agent = {
    config,
    get httpPort() {
      return http?.port ?? 0;
    },
    get grpcPort() {
      return grpcPort;
    },
    get service(): TaskService {
      if (!service) throw new Error("agent not started");
      return service;
    },
    get ready() {
      return serving();
    },

    startupWrites() {
      return startupWrites;
    },

    async start() {
      // Config mistakes (principals, TLS files, non-loopback without auth) fail before anything is opened.
      security = loadSecurity(config, { clock });
      const sec = security;
      // Auth off is a warning, so that --log-level warn still says so.
      if (sec.policy.mode === "on") logger.info(sec.policy.line);
      else logger.warn(sec.policy.line);
      for (const w of sec.policy.warnings) logger.warn(w);
      limiter = createResourceLimiter({ mode: config.resourceLimits });
      logger.info("resource limits", { mode: limiter.mode, ...limiter.support });
      store = openStore(config.dataDir, {
        ...opts.storeOptions,
        // Sticky: no later write can be made durable. Not ready from now on, so traffic goes elsewhere;
        // submits get 503 and no new run starts (supervisor.ts). A restart reopens the store.
        onFailure: (err) => {
          logger.error("store failed: not ready, no new work until the agent is restarted", { err });
          grpc?.setServing(serving());
        },
      });
      storeOpen = true;
      // Loaded only with --control-plane: its transports bring a gRPC client and the discovery descriptors.
      if (config.controlPlane) {
        const { createFleetLink } = await import("./fleet/fleet-link.ts");
        fleet = createFleetLink({ config, store, grpcPort: () => grpcPort, startedAt, clock, random: opts.random, logger, labels: sec.agentLabels });
      }
      // Without a store: a fresh private dir (mkdtemp: a random name, 0700, never one somebody else made).
      const scriptDir =
        config.dataDir === ":memory:" ? mkdtempSync(join(tmpdir(), `tasklane-scripts-${process.pid}-`)) : resolve(config.dataDir, "scripts");
      try {
        mkdirSync(scriptDir, { recursive: true, mode: 0o700 });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        throw new Error(`cannot use the script dir ${scriptDir}: ${code === "EEXIST" ? "a file of that name is in the way" : (err as Error).message}`);
      }
      // One that exists but is not ours to write (a non-recursive chown of the data dir) would fail every script task.
      try {
        accessSync(scriptDir, constants.W_OK | constants.X_OK);
      } catch (err) {
        throw new Error(`cannot use the script dir ${scriptDir}: not writable (${(err as NodeJS.ErrnoException).code ?? "access denied"})`);
      }
      // Without a store every task ends with the agent: so do their script files (bodies may hold secrets).
      if (config.dataDir === ":memory:") memoryScriptDir = scriptDir;
      const events = createTaskEvents((err) => logger.error("task listener failed", { err: String(err) }));
      const st = store;
      hub = createLogHub({
        retain: config.logRetain,
        retainBytes: config.logRetainBytes,
        sink: { append: (id, recs) => st.appendLogs(id, recs), load: (id, n) => st.loadLogs(id, n), trim: (id, before) => st.trimLogs(id, before) },
        onLagged: (n) => metrics?.lagged("logs", n),
      });
      if (config.spawnOn === "thread") runner = createThreadRunner({ onError: (err) => logger.error("runner thread", { err }) });
      supervisor = createSupervisor({
        store,
        hub,
        events,
        resolver: createCommandResolver(),
        scriptDir,
        limits: {
          maxConcurrent: config.maxConcurrent,
          maxQueuePerSlot: config.maxQueuePerSlot,
          killGraceMs: config.killGraceMs,
          maxLineBytes: config.maxLineBytes,
          maxRuns: config.maxRuns,
        },
        baseEnv: config.taskEnv,
        clock,
        random: opts.random,
        limiter,
        ...(runner ? { run: runner.run } : {}),
      });
      service = createTaskService({
        supervisor,
        store,
        hub,
        events,
        onWatchLagged: (n) => metrics?.lagged("watch", n),
        onSubmitted: () => metrics?.submitted(),
        maxRuns: config.maxRuns,
      });
      const sup = supervisor;
      metrics = createMetrics({ events, stats: () => sup.stats(), countByPhase, activeSlots: () => st.activeTasks().map((t) => t.spec.slot), clock });
      logTransitions(events, logger);
      events.add({
        transition(task, prev) {
          if (task.status.phase !== prev && isTerminal(task.status.phase)) toEvict.add(task.metadata.id);
        },
      });

      sup.recover();
      // Recovery's writes are committed; their fsync is not waited for: they are idempotent (a
      // second crash recovers the same way), and every later flush (a 201) waits for an fsync
      // that covers them too. A failing store is reported here and fails the writes after it.
      // A store that cannot take recovery's writes fails the start: `startupWrites` rejects, and
      // the caller stops the agent with an error (the start-up line has gone out by then).
      startupWrites = store.flush().catch((err: unknown) => {
        logger.error("store flush after recovery failed", { err });
        throw err;
      });
      startupWrites.catch(() => {});
      /** Housekeeping that failed (the store has, and said so once): logged, at most once a minute. */
      let housekeepingLogged = Number.NEGATIVE_INFINITY;
      const housekeepingFailed = (what: string, err: unknown) => {
        const now = performance.now();
        if (now - housekeepingLogged < 60_000) return;
        housekeepingLogged = now;
        logger.error(`${what} failed`, { err: err instanceof Error ? err.message : String(err) });
      };
      const capSweeps = createCapSweeps(config.maxTasks);
      const sweep = () => {
        clearImmediate(nextBatch);
        nextBatch = undefined;
        // A failed store rolls every batch back: sweeping would find the same tasks for ever (and tell
        // watchers they were deleted).
        if (st.failure !== undefined) return;
        try {
          const { swept, terminal, more } = sup.sweep(clock() - config.taskTtlMs, config.maxTasks, SWEEP_BATCH);
          capSweeps.swept(terminal, performance.now());
          if (swept > 0) logger.debug("swept terminal tasks", { count: swept });
          // A backlog (a lowered --max-tasks, a day of tasks expiring together) goes in batches,
          // with the event loop turning between them: requests and runs are served meanwhile.
          if (more) nextBatch = setImmediate(sweep);
        } catch (err) {
          housekeepingFailed("retention sweep", err);
        }
      };
      const h = hub;
      timers.push(
        setInterval(() => {
          try {
            h.flush();
          } catch (err) {
            housekeepingFailed("log flush", err);
          }
          capSweeps.finished(toEvict.size);
          for (const id of toEvict) {
            try {
              h.evict(id);
            } catch (err) {
              housekeepingFailed("log flush", err); // its events stay in memory
            }
          }
          toEvict.clear();
          // Enforce --max-tasks promptly when tasks finish, not only on the TTL timer (cap-sweeps.ts).
          if (capSweeps.due(performance.now())) sweep();
        }, HUB_FLUSH_MS),
      );
      // The first sweep runs a moment after the agent is ready: a sweep at once (a timer of 0) ran before the
      // first request was answered and delayed readiness by what it took (≈ 2 ms over 10 000 stored tasks).
      timers.push(setTimeout(sweep, FIRST_SWEEP_DELAY_MS), setInterval(sweep, Math.min(SWEEP_MS, Math.max(SWEEP_MIN_MS, config.taskTtlMs / 10))));

      const svc = service;
      // The HTTP server's view of the peer (for the unauthenticated rate limit), known once it listens.
      let remoteAddress: (request: Request) => string | undefined = () => undefined;
      const m = metrics;
      const app = createHttpApp({
        service: svc,
        tls: sec.tls !== undefined,
        // The proto3-JSON decoder (protobuf-es) loads with the first such body.
        decodeProtoSubmit: (body) =>
          looksLikeProtoJson(body) ? import("./grpc/convert.ts").then((c) => ({ spec: c.specFromProtoJson(body), inProtoTerms: c.inProtoTerms })) : undefined,
        info,
        metricsJson: () => m.summary(),
        metricsText: () => m.exposition(),
        health: () => ({
          live: true,
          ready: serving(),
          checks: {
            storeOpen,
            storeWritable: st.failure === undefined,
            httpListening: http !== undefined,
            grpcListening: grpcPort > 0,
            accepting: stopping === undefined,
          },
        }),
        onInternal: (id, err, requestId) => logger.error("internal error", { correlationId: id, requestId, err }),
        logger,
        onHttpRequest: (route, method, status, seconds) => m.httpRequest(route, method, status, seconds),
        onStreamOpen: (transport) => m.streamOpened(transport),
        authenticate: (request) => sec.authenticator.http(request, () => remoteAddress(request)),
      });
      try {
        app.listen({
          hostname: config.httpAddr.host,
          port: config.httpAddr.port,
          // Elysia asks for SO_REUSEPORT by default: a second agent on the same address would then
          // start and share the port with this one (each request to either store). Refuse instead.
          reusePort: false,
          // The app enforces MAX_BODY_BYTES itself (by Content-Length, or while reading a
          // chunked body) so every rejection gets the PayloadTooLarge envelope: Bun's own limit
          // answers an empty 413 for any declared length above it.
          maxRequestBodySize: Number.MAX_SAFE_INTEGER,
          ...(sec.tls ? { tls: { cert: sec.tls.cert, key: sec.tls.key } } : {}),
        });
      } catch (err) {
        const code = (err as { code?: string }).code;
        throw await unresolvable("--http-addr", config.httpAddr, err, `--http-addr cannot listen on ${showAddress(config.httpAddr)}: ${code ?? (err as Error).message}`);
      }
      const server = app.server;
      remoteAddress = (request) => server?.requestIP(request)?.address;
      if (!server) throw new Error(`--http-addr cannot listen on ${showAddress(config.httpAddr)}`);
      http = { port: server.port ?? 0, stop: (closeActive) => server.stop(closeActive) };

      grpc = createGrpcServer({
        service: svc,
        version: VERSION,
        info,
        onInternal: (id, err) => logger.error("internal error", { correlationId: id, err }),
        onError: (err) => logger.error("grpc port failed", { err }),
        instrument: {
          onCall: (method, code, seconds) => m.grpcRequest(method, code, seconds),
          // Subscribers are log and watch streams; health Watch and reflection streams are plumbing.
          onStreamOpen: (method) => (method.startsWith("grpc.") ? () => {} : m.streamOpened("grpc")),
        },
        authenticate: (metadata) => sec.authenticator.grpc(metadata, metadata[PEER_METADATA_KEY]),
        ...(sec.tls ? { tls: sec.tls } : {}),
      });
      grpcPort = await grpc.listen(showAddress(config.grpcAddr)).catch(async (err: Error) => {
        throw await unresolvable("--grpc-addr", config.grpcAddr, err, `--grpc-addr ${err.message}`);
      });
      // Both ports are ours: the recovered work may start (a start that failed above left it as stored).
      sup.resume();
      ready = true;
      grpc.setServing(serving()); // not when the store already failed (its recovery flush)
      fleet?.start();
      logger.info("tasklane ready", {
        version: VERSION,
        http: showAddress({ host: config.httpAddr.host, port: http.port }),
        grpc: showAddress({ host: config.grpcAddr.host, port: grpcPort }),
        store: store.kind,
        auth: sec.policy.mode,
        tls: sec.tls !== undefined,
      });
    },

    stop() {
      stopping ??= (async () => {
        // Not ready first (HTTP /readyz 503, gRPC health NOT_SERVING), then stop work.
        ready = false;
        grpc?.setServing(false);
        // A start refused before the store opened (a config mistake) has its one-line error and nothing to report.
        const opened = store !== undefined;
        if (opened) logger.info("tasklane stopping");
        await fleet?.close();
        for (const t of timers) clearInterval(t);
        clearImmediate(nextBatch);
        await supervisor?.shutdown();
        await runner?.close();
        // Streams and waits of both transports answer once the work has stopped: log streams deliver the
        // tasks' last lines, then end (gRPC: OK for a terminal task, UNAVAILABLE otherwise).
        hub?.close(); // log streams end
        service?.close(); // waits answer, watch streams end (gRPC: UNAVAILABLE)
        metrics?.close();
        storeOpen = false;
        // A failed store throws here (its failure): the stop goes on, and rejects with it at the end.
        const storeError = await store?.close().then(
          () => undefined,
          (err: unknown) => ({ err }),
        );
        // Let the answers above go out (≤ 1 s) — HTTP answers and the gRPC streams' last events —, then
        // close what is left open.
        const drained = Promise.all([http?.stop(false), grpc?.idle()]);
        await Promise.race([drained, Bun.sleep(HTTP_DRAIN_MS)]);
        await http?.stop(true);
        await grpc?.close(1000);
        if (memoryScriptDir !== undefined) rmSync(memoryScriptDir, { recursive: true, force: true });
        if (opened) logger.info("tasklane stopped");
        if (storeError) throw storeError.err;
      })();
      return stopping;
    },

    hurry() {
      if (stopping === undefined || supervisor === undefined) return;
      logger.warn("stop signal again: killing the tasks' processes now, without waiting out their kill grace");
      supervisor.hurry();
    },

    [Symbol.asyncDispose]() {
      return agent.stop();
    },
  };
  return agent;
}
