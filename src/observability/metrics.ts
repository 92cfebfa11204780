/**
 * Prometheus metrics (prom-client) and the JSON summary of /api/v1/metrics.
 *
 * Names follow the Prometheus conventions: one `tasklane_` prefix, base units
 * (`_seconds`, `_bytes`), `_total` on counters and only on counters. Labels are
 * bounded: phase, outcome, stream, reason, route *template*, method, status,
 * gRPC method and code, transport — never a task id, slot or concrete path, so
 * the number of series does not grow with the number of tasks.
 * Process metrics (`process_*`, `nodejs_*`) keep their standard names.
 */
import { Type, type Static } from "@sinclair/typebox";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { Phase } from "../tasks/model.ts";
import { PHASES } from "../tasks/model.ts";
import type { SupervisorStats } from "../tasks/supervisor.ts";
import type { TaskEvents } from "../tasks/task-events.ts";

/** Streaming transports whose open subscribers are counted. */
export type StreamTransport = "sse" | "websocket" | "grpc";

/** The JSON document of `GET /api/v1/metrics`. */
export const MetricsSummarySchema = Type.Object(
  {
    timestamp: Type.Integer({ description: "when the summary was taken, Unix ms" }),
    tasksByPhase: Type.Record(Type.String(), Type.Integer(), { description: "stored tasks per phase (every phase present)" }),
    activeBySlot: Type.Record(Type.String(), Type.Integer(), { description: "non-terminal tasks per slot (slots without any are absent)" }),
    running: Type.Integer({ description: "runs in progress" }),
    queued: Type.Integer({ description: "tasks waiting for their slot or for global capacity" }),
    backoff: Type.Integer({ description: "tasks waiting for a backoff or restart interval" }),
    held: Type.Integer({ description: "tasks submitted with hold: true, not yet started" }),
    submittedTotal: Type.Integer({ description: "tasks accepted since the agent started" }),
    submittedPerSecond: Type.Number({ description: "tasks accepted per second, averaged over the last 60 s" }),
  },
  { additionalProperties: false },
);
/** The JSON document of `GET /api/v1/metrics`. */
export type MetricsSummary = Static<typeof MetricsSummarySchema>;

/** The agent's metric set. */
export interface Metrics {
  /** The agent's own metrics (the process metrics live in a shared registry and are added by `exposition`). */
  readonly registry: Registry;
  /** Prometheus text exposition: [content type, text]. */
  exposition(): Promise<[contentType: string, text: string]>;
  /** The JSON summary of `/api/v1/metrics`. */
  summary(): MetricsSummary;
  /** One finished HTTP request; `route` is the route template (`/api/v1/tasks/:id`), never the concrete path. */
  httpRequest(route: string, method: string, status: number, seconds: number): void;
  /** One finished gRPC call; `method` is `package.Service/Method`, `code` the status name (`OK`, `NOT_FOUND`…). */
  grpcRequest(method: string, code: string, seconds: number): void;
  /** A streaming subscriber opened; call the returned function (idempotent) when it closes. */
  streamOpened(transport: StreamTransport): () => void;
  /** Events skipped for a slow subscriber of the live logs or of the task watch. */
  lagged(kind: "logs" | "watch", skipped: number): void;
  /** Stop listening to task events. */
  close(): void;
}

/** What the metrics read at scrape time. */
export interface MetricsDeps {
  events: TaskEvents;
  stats: () => SupervisorStats;
  /** Count of stored tasks per phase (read at scrape time). */
  countByPhase: () => Record<Phase, number>;
  /** Slots of the non-terminal tasks, one entry per task (for the JSON summary). */
  activeSlots?: () => Iterable<string>;
  clock?: () => number;
}

/** Label values used for methods outside this set are folded into `OTHER`. */
const HTTP_METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/** Default process metrics whose names break the conventions (gauges ending in `_total`); their labelled siblings stay. */
const NONCONFORMING_DEFAULTS = ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"];

const RATE_WINDOW_S = 60;

let processRegistry: Registry | undefined;

/**
 * prom-client's process metrics, registered once per process (they describe
 * the process, and each registration starts an event-loop monitor and a GC
 * observer that are never stopped), on first use rather than at import.
 */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
    for (const name of NONCONFORMING_DEFAULTS) processRegistry.removeSingleMetric(name);
  }
  return processRegistry;
}

/** Events per second over a sliding window of one-second buckets. */
function createRateWindow(clock: () => number, seconds: number) {
  const buckets = new Float64Array(seconds);
  let head = Math.floor(clock() / 1000);
  const advance = () => {
    const now = Math.floor(clock() / 1000);
    if (now - head >= seconds) buckets.fill(0);
    else for (let s = head + 1; s <= now; s++) buckets[s % seconds] = 0;
    head = Math.max(head, now);
  };
  return {
    add(n = 1) {
      advance();
      buckets[head % seconds] = (buckets[head % seconds] ?? 0) + n;
    },
    perSecond() {
      advance();
      let sum = 0;
      for (const b of buckets) sum += b;
      return sum / seconds;
    },
  };
}

/** Create the metric set and hook it to the task events. */
export function createMetrics(deps: MetricsDeps): Metrics {
  const clock = deps.clock ?? Date.now;
  const registry = new Registry();
  const procRegistry = processMetrics();

  new Gauge({
    name: "tasklane_tasks",
    help: "Stored tasks by phase.",
    labelNames: ["phase"],
    registers: [registry],
    collect() {
      const counts = deps.countByPhase();
      for (const p of PHASES) this.set({ phase: p }, counts[p]);
    },
  });
  new Gauge({
    name: "tasklane_tasks_running",
    help: "Runs in progress.",
    registers: [registry],
    collect() {
      this.set(deps.stats().running);
    },
  });
  new Gauge({
    name: "tasklane_queue_depth",
    help: "Tasks waiting: behind another task of their slot (slot), for global capacity (capacity), for a backoff or restart interval (backoff), held (held).",
    labelNames: ["reason"],
    registers: [registry],
    collect() {
      const s = deps.stats();
      this.set({ reason: "slot" }, s.queued);
      this.set({ reason: "capacity" }, s.waitingCapacity);
      this.set({ reason: "backoff" }, s.backoff);
      this.set({ reason: "held" }, s.held);
    },
  });
  const submitted = new Counter({ name: "tasklane_tasks_submitted_total", help: "Tasks accepted.", registers: [registry] });
  const runsStarted = new Counter({ name: "tasklane_runs_started_total", help: "Runs (attempts) started.", registers: [registry] });
  const runsFinished = new Counter({
    name: "tasklane_runs_finished_total",
    help: "Runs finished, by outcome (the run's phase).",
    labelNames: ["outcome"],
    registers: [registry],
  });
  const runDuration = new Histogram({
    name: "tasklane_run_duration_seconds",
    help: "Duration of finished runs, by outcome.",
    labelNames: ["outcome"],
    buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 1800, 3600],
    registers: [registry],
  });
  const startLatency = new Histogram({
    name: "tasklane_submit_to_start_seconds",
    help: "Time from submission to the start of the first run.",
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 30, 300],
    registers: [registry],
  });
  const logLines = new Counter({ name: "tasklane_log_lines_total", help: "Output lines read from runs, by stream.", labelNames: ["stream"], registers: [registry] });
  const logBytes = new Counter({ name: "tasklane_log_bytes_total", help: "Output bytes read from runs, by stream.", labelNames: ["stream"], registers: [registry] });
  const laggedTotal = new Counter({
    name: "tasklane_lagged_events_total",
    help: "Events dropped for slow subscribers (reported to them as lagged), by kind: live logs or task watch.",
    labelNames: ["kind"],
    registers: [registry],
  });
  const subscribers = new Gauge({
    name: "tasklane_stream_subscribers",
    help: "Open streaming subscribers, by transport.",
    labelNames: ["transport"],
    registers: [registry],
  });
  const httpRequests = new Counter({
    name: "tasklane_http_requests_total",
    help: "HTTP requests by route template, method and status.",
    labelNames: ["route", "method", "status"],
    registers: [registry],
  });
  const httpDuration = new Histogram({
    name: "tasklane_http_request_duration_seconds",
    help: "HTTP request duration (to the response head; streams are not timed to their end), by route template and method.",
    labelNames: ["route", "method"],
    buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    registers: [registry],
  });
  const grpcRequests = new Counter({
    name: "tasklane_grpc_requests_total",
    help: "gRPC calls by method and status code.",
    labelNames: ["method", "code"],
    registers: [registry],
  });
  const grpcDuration = new Histogram({
    name: "tasklane_grpc_request_duration_seconds",
    help: "gRPC call duration (streams: until the stream ends), by method.",
    labelNames: ["method"],
    buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 300],
    registers: [registry],
  });
  for (const t of ["sse", "websocket", "grpc"] satisfies StreamTransport[]) subscribers.set({ transport: t }, 0);
  for (const s of ["stdout", "stderr"]) {
    logLines.inc({ stream: s }, 0);
    logBytes.inc({ stream: s }, 0);
  }
  for (const k of ["logs", "watch"]) laggedTotal.inc({ kind: k }, 0);

  const submitRate = createRateWindow(clock, RATE_WINDOW_S);
  let submittedTotal = 0;

  const unlisten = deps.events.add({
    transition(task, prev) {
      if (prev === undefined) {
        submitted.inc();
        submittedTotal++;
        submitRate.add();
      }
      if (task.status.phase === "running" && prev !== "running" && task.status.attempt === 1) {
        startLatency.observe(Math.max(0, clock() - task.metadata.createdAt) / 1000);
      }
    },
    runStarted() {
      runsStarted.inc();
    },
    runFinished(_task, run) {
      runsFinished.inc({ outcome: run.phase });
      if (run.finishedAt !== undefined) runDuration.observe({ outcome: run.phase }, Math.max(0, run.finishedAt - run.startedAt) / 1000);
    },
    output(stream, lines, bytes) {
      logLines.inc({ stream }, lines);
      logBytes.inc({ stream }, bytes);
    },
  });

  return {
    registry,
    async exposition() {
      const [own, proc] = await Promise.all([registry.metrics(), procRegistry.metrics()]);
      return [registry.contentType, `${own}\n${proc}`];
    },
    summary() {
      const s = deps.stats();
      const activeBySlot: Record<string, number> = {};
      for (const slot of deps.activeSlots?.() ?? []) activeBySlot[slot] = (activeBySlot[slot] ?? 0) + 1;
      return {
        timestamp: clock(),
        tasksByPhase: deps.countByPhase(),
        activeBySlot,
        running: s.running,
        queued: s.queued + s.waitingCapacity,
        backoff: s.backoff,
        held: s.held,
        submittedTotal,
        submittedPerSecond: submitRate.perSecond(),
      };
    },
    httpRequest(route, method, status, seconds) {
      const m = HTTP_METHODS.has(method) ? method : "OTHER";
      httpRequests.inc({ route, method: m, status: String(status) });
      httpDuration.observe({ route, method: m }, seconds);
    },
    grpcRequest(method, code, seconds) {
      grpcRequests.inc({ method, code });
      grpcDuration.observe({ method }, seconds);
    },
    streamOpened(transport) {
      subscribers.inc({ transport });
      let open = true;
      return () => {
        if (open) subscribers.dec({ transport });
        open = false;
      };
    },
    lagged(kind, skipped) {
      laggedTotal.inc({ kind }, skipped);
    },
    close() {
      unlisten();
    },
  };
}
