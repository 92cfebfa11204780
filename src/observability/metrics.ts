/**
 * Prometheus metrics and the JSON summary of /api/v1/metrics.
 *
 * Names follow the Prometheus conventions: one `tasklane_` prefix, base units
 * (`_seconds`, `_bytes`), `_total` on counters and only on counters. Labels are
 * bounded: phase, outcome, stream, reason, route *template*, method, status,
 * gRPC method and code, transport — never a task id, slot or concrete path, so
 * the number of series does not grow with the number of tasks.
 *
 * The agent's own metrics are kept in `keyed-metrics.ts` objects (cheap
 * updates on the request path) and rendered by prom-client, which costs ≈ 15 ms
 * of start-up (its module graph, node:http among it, and the default
 * collectors) and is not needed to serve: it is loaded on the first scrape,
 * together with the standard process metrics (`process_*`, `nodejs_*`, names
 * unchanged), which are registered then — the event-loop-lag figures cover
 * the time since that first scrape; CPU, memory, handles and start time are
 * absolute. Bun reports no garbage collections to prom-client, so there is no
 * GC metric.
 */
import { Type, type Static } from "@sinclair/typebox";
import type { Registry } from "prom-client";
import type { Phase } from "../tasks/model.ts";
import { PHASES } from "../tasks/model.ts";
import type { SupervisorStats } from "../tasks/supervisor.ts";
import type { TaskEvents } from "../tasks/task-events.ts";
import { KeyedHistogram, KeyedScalar } from "./keyed-metrics.ts";

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
  /** Prometheus text exposition: [content type, text]: the agent's own metrics, then the process metrics (loaded on the first call). */
  exposition(): Promise<[contentType: string, text: string]>;
  /** The JSON summary of `/api/v1/metrics`. */
  summary(): MetricsSummary;
  /** One finished HTTP request; `route` is the route template (`/api/v1/tasks/:id`), never the concrete path. */
  httpRequest(route: string, method: string, status: number, seconds: number): void;
  /** One finished gRPC call; `method` is `package.Service/Method`, `code` the status name (`OK`, `NOT_FOUND`…). */
  grpcRequest(method: string, code: string, seconds: number): void;
  /** A streaming subscriber opened; call the returned function (idempotent) when it closes. */
  streamOpened(transport: StreamTransport): () => void;
  /**
   * One task accepted: its submit is durable and about to be answered as
   * such. Not counted from the task's first transition, which comes before
   * the flush that can still fail (a submit answered 500 is no acceptance).
   */
  submitted(): void;
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

/**
 * Default process metrics left out: gauges whose names break the conventions
 * (ending in `_total`; their labelled siblings stay), and the GC histogram,
 * which never gets a sample on Bun (it has no `gc` performance entries): an
 * empty family would read as "no garbage collection".
 */
const LEFT_OUT_DEFAULTS = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
  "nodejs_gc_duration_seconds",
];

const RATE_WINDOW_S = 60;

/** Content type of the exposition (the Prometheus text format 0.0.4). */
export const EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** The metrics a registry renders (ours, in order of declaration). */
type Exposed = KeyedScalar | KeyedHistogram;

/**
 * A prom-client registry with the agent's metrics and the standard process
 * metrics, created on the first scrape. The process metrics register once per
 * process (each registration starts an event-loop monitor that is never
 * stopped), so they live in a registry of their own, merged in.
 */
let processRegistry: Promise<Registry> | undefined;

function processMetrics(): Promise<Registry> {
  processRegistry ??= import("prom-client").then(({ Registry, collectDefaultMetrics }) => {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    for (const name of LEFT_OUT_DEFAULTS) registry.removeSingleMetric(name);
    return registry;
  });
  return processRegistry;
}

/** prom-client's summary of the event-loop delays measured since the previous scrape. */
const LOOP_DELAY_SUMMARY = /^nodejs_eventloop_lag_(min|max|mean|stddev|p50|p90|p99)_seconds /;

/**
 * The exposition without the event-loop delay summary when it summarises no
 * sample (the first scrape, or two scrapes within the monitor's 10 ms): then
 * prom-client reports an empty histogram's min (2^63 ns ≈ 9.2e9 s) and a NaN
 * mean, which would graph as a 292-year delay. The families stay, without a
 * sample; `nodejs_eventloop_lag_seconds` (its own measurement) is kept.
 */
export function withoutEmptyLoopDelay(text: string): string {
  const min = /^nodejs_eventloop_lag_min_seconds (\S+)$/m.exec(text);
  if (min === null || !(Number(min[1]) > 1e9)) return text;
  return text
    .split("\n")
    .filter((line) => !LOOP_DELAY_SUMMARY.test(line))
    .join("\n");
}

/** Our metrics and the process metrics as one registry (prom-client renders both). */
async function exposingRegistry(ours: readonly Exposed[]): Promise<Registry> {
  const [proc, { Registry }] = await Promise.all([processMetrics(), import("prom-client")]);
  const registry = new Registry();
  for (const m of ours) m.registerIn(registry);
  return Registry.merge([registry, proc]);
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
  const families: Exposed[] = [];
  const add = <F extends Exposed>(f: F): F => {
    families.push(f);
    return f;
  };

  const tasks: KeyedScalar = add(
    new KeyedScalar("tasklane_tasks", "Stored tasks by phase.", "gauge", ["phase"], () => {
      const counts = deps.countByPhase();
      for (const p of PHASES) tasks.set([p], counts[p]);
    }),
  );
  const running: KeyedScalar = add(
    new KeyedScalar("tasklane_tasks_running", "Runs in progress.", "gauge", [], () => running.set([], deps.stats().running)),
  );
  const queueDepth: KeyedScalar = add(
    new KeyedScalar(
      "tasklane_queue_depth",
      "Tasks waiting: behind another task of their slot (slot), for global capacity (capacity), for a backoff or restart interval (backoff), held (held).",
      "gauge",
      ["reason"],
      () => {
        const s = deps.stats();
        queueDepth.set(["slot"], s.queued);
        queueDepth.set(["capacity"], s.waitingCapacity);
        queueDepth.set(["backoff"], s.backoff);
        queueDepth.set(["held"], s.held);
      },
    ),
  );
  const submitted = add(new KeyedScalar("tasklane_tasks_submitted_total", "Tasks accepted.", "counter"));
  const runsStarted = add(new KeyedScalar("tasklane_runs_started_total", "Runs (attempts) started.", "counter"));
  const runsFinished = add(new KeyedScalar("tasklane_runs_finished_total", "Runs finished, by outcome (the run's phase).", "counter", ["outcome"]));
  const runDuration = add(
    new KeyedHistogram("tasklane_run_duration_seconds", "Duration of finished runs, by outcome.", [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 1800, 3600], ["outcome"]),
  );
  const startLatency = add(
    new KeyedHistogram("tasklane_submit_to_start_seconds", "Time from submission to the start of the first run.", [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 30, 300]),
  );
  const logLines = add(new KeyedScalar("tasklane_log_lines_total", "Output lines read from runs, by stream.", "counter", ["stream"]));
  const logBytes = add(
    new KeyedScalar("tasklane_log_bytes_total", "Output bytes read from runs' pipes (all of them: terminators and the cut part of long lines too), by stream.", "counter", ["stream"]),
  );
  const laggedTotal = add(
    new KeyedScalar("tasklane_lagged_events_total", "Events a reader skipped, each announced by a lagged event: dropped while it read too slowly, or already gone when it resumed from an older cursor; by kind: live logs or task watch.", "counter", ["kind"]),
  );
  const subscribers = add(new KeyedScalar("tasklane_stream_subscribers", "Open streaming subscribers, by transport.", "gauge", ["transport"]));
  const httpRequests = add(new KeyedScalar("tasklane_http_requests_total", "HTTP requests by route template, method and status.", "counter", ["route", "method", "status"]));
  const httpDuration = add(
    new KeyedHistogram(
      "tasklane_http_request_duration_seconds",
      "HTTP request duration (to the response head; streams are not timed to their end), by route template and method.",
      [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
      ["route", "method"],
    ),
  );
  const grpcRequests = add(new KeyedScalar("tasklane_grpc_requests_total", "gRPC calls by method and status code.", "counter", ["method", "code"]));
  const grpcDuration = add(
    new KeyedHistogram("tasklane_grpc_request_duration_seconds", "gRPC call duration (streams: until the stream ends), by method.", [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 300], ["method"]),
  );
  for (const t of ["sse", "websocket", "grpc"] satisfies StreamTransport[]) subscribers.set([t], 0);
  for (const s of ["stdout", "stderr"]) {
    logLines.inc([s], 0);
    logBytes.inc([s], 0);
  }
  for (const k of ["logs", "watch"]) laggedTotal.inc([k], 0);

  const submitRate = createRateWindow(clock, RATE_WINDOW_S);
  let registry: Promise<Registry> | undefined;
  const httpRecorders = new Map<string, { count: () => void; time: (seconds: number) => void }>();
  let submittedTotal = 0;

  const unlisten = deps.events.add({
    transition(task, prev) {
      if (task.status.phase === "running" && prev !== "running" && task.status.attempt === 1) {
        startLatency.observe([], Math.max(0, clock() - task.metadata.createdAt) / 1000);
      }
    },
    runStarted() {
      runsStarted.inc();
    },
    runFinished(_task, run) {
      runsFinished.inc([run.phase]);
      if (run.finishedAt !== undefined) runDuration.observe([run.phase], Math.max(0, run.finishedAt - run.startedAt) / 1000);
    },
    output(stream, lines, bytes) {
      logLines.inc([stream], lines);
      logBytes.inc([stream], bytes);
    },
  });

  return {
    async exposition() {
      registry ??= exposingRegistry(families);
      return [EXPOSITION_CONTENT_TYPE, withoutEmptyLoopDelay(await (await registry).metrics())];
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
      // One lookup per request for both series (route templates, methods and statuses are few).
      const m = HTTP_METHODS.has(method) ? method : "OTHER";
      const key = `${route}\u0000${m}\u0000${status}`;
      let r = httpRecorders.get(key);
      if (!r) {
        r = { count: httpRequests.adder([route, m, String(status)]), time: httpDuration.recorder([route, m]) };
        httpRecorders.set(key, r);
      }
      r.count();
      r.time(seconds);
    },
    grpcRequest(method, code, seconds) {
      grpcRequests.inc([method, code]);
      grpcDuration.observe([method], seconds);
    },
    streamOpened(transport) {
      subscribers.inc([transport]);
      let open = true;
      return () => {
        if (open) subscribers.inc([transport], -1);
        open = false;
      };
    },
    submitted() {
      submitted.inc();
      submittedTotal++;
      submitRate.add();
    },
    lagged(kind, skipped) {
      laggedTotal.inc([kind], skipped);
    },
    close() {
      unlisten();
    },
  };
}
