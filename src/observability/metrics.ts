/**
 * Prometheus metrics (prom-client) and the JSON summary of /api/v1/metrics.
 * Labels are bounded: phase, outcome, stream, route template, method, status,
 * transport — never a task id or slot.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { Phase } from "../tasks/model.ts";
import { PHASES, isTerminal } from "../tasks/model.ts";
import type { SupervisorStats } from "../tasks/supervisor.ts";
import type { TaskEvents } from "../tasks/task-events.ts";

export interface Metrics {
  readonly registry: Registry;
  /** Prometheus text exposition. */
  exposition(): Promise<[contentType: string, text: string]>;
  httpRequest(route: string, method: string, status: number, seconds: number): void;
  grpcRequest(method: string, code: string): void;
  streamOpened(transport: "sse" | "websocket" | "grpc"): () => void;
  lagged(kind: "logs" | "watch", skipped: number): void;
  /** Stop listening to task events. */
  close(): void;
}

export interface MetricsDeps {
  events: TaskEvents;
  stats: () => SupervisorStats;
  /** Count of stored tasks per phase (for the gauge; read at scrape time). */
  countByPhase: () => Record<Phase, number>;
  clock?: () => number;
}

/** Create the metric set and hook it to the task events. */
export function createMetrics(deps: MetricsDeps): Metrics {
  const clock = deps.clock ?? Date.now;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "tasklane_" });

  new Gauge({
    name: "tasklane_tasks",
    help: "Tasks by phase.",
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
  const runsStarted = new Counter({ name: "tasklane_runs_started_total", help: "Runs started.", registers: [registry] });
  const runsFinished = new Counter({
    name: "tasklane_runs_finished_total",
    help: "Runs finished by outcome (run phase).",
    labelNames: ["outcome"],
    registers: [registry],
  });
  const runDuration = new Histogram({
    name: "tasklane_run_duration_seconds",
    help: "Run duration.",
    labelNames: ["outcome"],
    buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 1800, 3600],
    registers: [registry],
  });
  const startLatency = new Histogram({
    name: "tasklane_submit_to_start_seconds",
    help: "Time from submission to the first run's start.",
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 30, 300],
    registers: [registry],
  });
  const logLines = new Counter({ name: "tasklane_log_lines_total", help: "Output lines read.", labelNames: ["stream"], registers: [registry] });
  const logBytes = new Counter({ name: "tasklane_log_bytes_total", help: "Output bytes read.", labelNames: ["stream"], registers: [registry] });
  const laggedTotal = new Counter({
    name: "tasklane_lagged_events_total",
    help: "Events skipped for slow subscribers.",
    labelNames: ["kind"],
    registers: [registry],
  });
  const subscribers = new Gauge({
    name: "tasklane_stream_subscribers",
    help: "Open streaming subscribers.",
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
    help: "HTTP request duration by route template.",
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
  for (const t of ["sse", "websocket", "grpc"]) subscribers.set({ transport: t }, 0);

  const unlisten = deps.events.add({
    transition(task, prev) {
      if (prev === undefined) submitted.inc();
      if (task.status.phase === "running" && prev !== "running" && task.status.attempt === 1) {
        startLatency.observe(Math.max(0, clock() - task.metadata.createdAt) / 1000);
      }
      void isTerminal;
    },
    runStarted() {
      runsStarted.inc();
    },
    runFinished(_task, run) {
      runsFinished.inc({ outcome: run.phase });
      if (run.finishedAt !== undefined) runDuration.observe({ outcome: run.phase }, (run.finishedAt - run.startedAt) / 1000);
    },
    output(stream, lines, bytes) {
      logLines.inc({ stream }, lines);
      logBytes.inc({ stream }, bytes);
    },
  });

  return {
    registry,
    async exposition() {
      return [registry.contentType, await registry.metrics()];
    },
    httpRequest(route, method, status, seconds) {
      httpRequests.inc({ route, method, status: String(status) });
      httpDuration.observe({ route, method }, seconds);
    },
    grpcRequest(method, code) {
      grpcRequests.inc({ method, code });
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
