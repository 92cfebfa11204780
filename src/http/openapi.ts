/**
 * `GET /openapi.json`: an OpenAPI 3.1 document generated from the routes of
 * the Elysia app.
 *
 * Routes parse their own input (so error messages can name the field), which
 * means Elysia has no body/query schemas to describe them. Each route instead
 * carries an OpenAPI operation in its `detail` (the objects in `routeDocs`
 * below), and the shapes come from the TypeBox schemas of the domain model
 * (TypeBox schemas are JSON Schema), registered once under
 * `components.schemas`.
 *
 * The document is built with `toOpenAPISchema` of `@elysiajs/openapi`
 * (imported from its `/openapi` entry, which leaves the UI bundles out of the
 * binary), not with its `openapi()` plugin, because the plugin (a) serves a UI that loads
 * from a CDN (the agent must work offline), (b) replaces an operation's
 * `detail.parameters` by the generated path parameters whenever a route has a
 * `:param` (our query parameters would be lost), and (c) emits WebSocket
 * routes under a non-existent `ws` method. Here the generated paths are
 * taken as they are, with those two fixes applied.
 */
import { toOpenAPISchema } from "@elysiajs/openapi/openapi";
import { Type, type TSchema } from "@sinclair/typebox";
import { Elysia, type AnyElysia, type DocumentDecoration, type InternalRoute } from "elysia";
import type { ErrorCode } from "../errors.ts";
import { EXPOSITION_CONTENT_TYPE, MetricsSummarySchema } from "../observability/metrics.ts";
import { ADMISSIONS, PhaseSchema, STREAMS, TaskRunSchema, TaskSchema, TaskSpecInputSchema } from "../tasks/model.ts";
import { VERSION } from "../version.ts";
import { REQUEST_ID_HEADER } from "./request-log.ts";

/** OpenAPI version of the document (3.1: schemas are JSON Schema 2020-12, which TypeBox emits). */
export const OPENAPI_VERSION = "3.1.1";

/** Where the document is served. */
export const OPENAPI_PATH = "/openapi.json";

/** A JSON OpenAPI document. */
export interface OpenApiDocument {
  openapi: string;
  info: { title: string; version: string; description?: string; license?: { name: string; identifier?: string } };
  paths: Record<string, Record<string, OperationJson>>;
  components: Record<string, Record<string, unknown>>;
  [key: string]: unknown;
}

type OperationJson = Record<string, unknown> & { responses?: Record<string, Record<string, unknown>>; parameters?: unknown[] };

type Operation = DocumentDecoration;
type Responses = NonNullable<Operation["responses"]>;
type Parameter = NonNullable<Operation["parameters"]>[number];
/** A (3.0-typed) schema or reference, as Elysia's `detail` types them. */
type Schema = Parameter extends infer P ? (P extends { schema?: infer S } ? NonNullable<S> : never) : never;

/** Every error label, in the order of CONTRACT §2 (checked exhaustive below). */
const ERROR_CODES = [
  "InvalidRequest",
  "Unauthenticated",
  "PermissionDenied",
  "TaskNotFound",
  "NotFound",
  "PayloadTooLarge",
  "RateLimited",
  "Unavailable",
  "Internal",
] as const satisfies readonly ErrorCode[];
type MissingCode = Exclude<ErrorCode, (typeof ERROR_CODES)[number]>;
const exhaustive: [MissingCode] extends [never] ? true : MissingCode = true;
void exhaustive;

/** The error responses, by HTTP status: component name (the error label, but for 426) and text. */
const ERROR_RESPONSES = {
  400: [
    "InvalidRequest",
    "InvalidRequest: malformed JSON, wrong content type, an unknown query parameter or a validation failure; the message names the field and the bad value. " +
      "On any route: a request whose Host header cannot be routed (missing, malformed, or shorter than 3 characters over HTTPS).",
  ],
  401: ["Unauthenticated", "Unauthenticated: auth is on and the bearer token is missing or unknown."],
  403: ["PermissionDenied", "PermissionDenied: the token's role may not do this (e.g. a viewer submits)."],
  404: ["TaskNotFound", "TaskNotFound: unknown task id (also for a task owned by someone else); NotFound for an unknown route."],
  413: [
    "PayloadTooLarge",
    "PayloadTooLarge: the request body is larger than 4 MiB (4194304 bytes), rejected before parsing; or the spec holds more text than a task may (4128768 bytes: every task must fit one 4 MiB gRPC message).",
  ],
  426: ["UpgradeRequired", "InvalidRequest, with 426 Upgrade Required: a GET of the WebSocket route without `Upgrade: websocket`; open it with a WebSocket client, or use GET /api/v1/events (SSE)."],
  429: ["RateLimited", "RateLimited: the principal's rate limit is exhausted; see Retry-After."],
  500: ["Internal", "Internal: a bug. The message repeats the correlation id under which the cause is logged (with the request id)."],
  503: ["Unavailable", "Unavailable: the agent is shutting down, the slot's queue is full, or the agent's store has failed (then /readyz is 503 too, until a restart)."],
} as const;
type ErrorStatus = keyof typeof ERROR_RESPONSES;

const schemaRef = (name: string) => ({ $ref: `#/components/schemas/${name}` });

function errors(...statuses: ErrorStatus[]): Responses {
  const out: Responses = {};
  for (const s of statuses) out[String(s)] = { $ref: `#/components/responses/${ERROR_RESPONSES[s][0]}` };
  return out;
}

/**
 * Errors every route can answer, the public probes included: an unroutable
 * Host (400), a declared body over 4 MiB (413, checked on every route whether
 * it reads a body or not), a bug (500).
 */
const EVERY_ROUTE: ErrorStatus[] = [400, 413, 500];

/** Errors any authenticated API route can answer. */
const COMMON: ErrorStatus[] = [...EVERY_ROUTE, 401, 403, 429];

function json(description: string, schema: Schema): Responses[string] {
  return { description, content: { "application/json": { schema } } };
}

const sse = (description: string): Responses[string] => ({
  description,
  content: { "text/event-stream": { schema: { type: "string", description: "Server-Sent Events; see the operation description for the events" } } },
});

const idParam: Parameter = {
  name: "id",
  in: "path",
  required: true,
  description: "task id: tsk_ + ULID",
  schema: { type: "string", example: "tsk_01JR8Z3N5Q9X4V7T2M6K0H1B3C" },
};

const query = (name: string, description: string, schema: Schema): Parameter => ({
  name,
  in: "query",
  required: false,
  description,
  schema,
});

const labelParam = query("label", "label filter `key=value`; repeat for several (all must match)", { type: "array", items: { type: "string" } });
const afterParam = query("after", "resume after this event number (like Last-Event-ID; with both, the later one)", { type: "integer", minimum: 0 });
const lastEventIdParam: Parameter = {
  name: "Last-Event-ID",
  in: "header",
  required: false,
  description: "SSE resume cursor: the `id:` of the last event received",
  schema: { type: "integer", minimum: 0 },
};
const timeoutMsParam = query("timeoutMs", "how long to wait for a terminal phase, ms (default 30000, max 600000)", {
  type: "integer",
  minimum: 0,
  maximum: 600_000,
  default: 30_000,
});
const taskBody = (description: string) => json(description, { type: "object", required: ["task"], properties: { task: schemaRef("Task") } });

const LOG_EVENTS_TEXT = [
  "Events (`event:` name → `data:` JSON), each with an `id:` (per-task event number, usable as Last-Event-ID):",
  "`run-started` → RunStarted, `chunk` → Chunk (one output line), `run-finished` → RunFinished (exitCode absent when killed by a signal),",
  "`lagged` → Lagged (the client was too slow; exactly `skipped` events were dropped). See the LogEvent schema.",
  "First the retained recent events, then live ones; the stream ends once the task is terminal and its events are delivered.",
  "Keep-alive comments every 15 s.",
].join(" ");

/** The OpenAPI operation of every route, used as the route's `detail`. */
export const routeDocs = {
  submitTask: {
    operationId: "submitTask",
    tags: ["tasks"],
    summary: "Submit a task",
    description:
      "Validates and admits `{\"spec\": …}` (REST shape) or a proto3-JSON `SubmitTaskRequest` (CONTRACT §5 shape). " +
      "Answers once the task is durable. With `wait=true` it waits until the task is terminal (like job.run) and answers 200 with the task, its runs and the last output lines. " +
      "`failOnNonZero` defaults to true on REST. Unknown fields are rejected.",
    parameters: [query("wait", "submit and wait until the task is terminal", { type: "boolean", default: false }), timeoutMsParam],
    requestBody: { required: true, content: { "application/json": { schema: schemaRef("SubmitRequest") } } },
    responses: {
      "201": json("accepted; `admission` tells what admission did", schemaRef("SubmitResponse")),
      "200": json("with wait=true: the final task, its runs and the tails of its output", schemaRef("RunOutcome")),
      ...errors(400, 413, 503, ...COMMON),
    },
  },
  listTasks: {
    operationId: "listTasks",
    tags: ["tasks"],
    summary: "List tasks",
    description: "Filtered, paged list ordered by creation. `total` counts all matches, not the page.",
    parameters: [
      query("slot", "only tasks of this slot", { type: "string", minLength: 1 }),
      query("status", "only tasks in this phase", { type: "string", enum: ["pending", "running", "succeeded", "failed", "timeout", "canceled", "exhausted"] }),
      labelParam,
      query("createdAfter", "created after this time, Unix ms", { type: "integer", minimum: 0 }),
      query("createdBefore", "created before this time, Unix ms", { type: "integer", minimum: 0 }),
      query("owner", "only tasks of this owner (auth on: an admin's filter; other principals only ever see their own tasks)", { type: "string", minLength: 1 }),
      query("order", "by creation", { type: "string", enum: ["asc", "desc"], default: "asc" }),
      query("limit", "page size", { type: "integer", minimum: 1, maximum: 1000, default: 100 }),
      query("offset", "items to skip", { type: "integer", minimum: 0, default: 0 }),
    ],
    responses: { "200": json("a page of tasks", schemaRef("TaskList")), ...errors(400, ...COMMON) },
  },
  getTask: {
    operationId: "getTask",
    tags: ["tasks"],
    summary: "Get a task",
    parameters: [idParam],
    responses: { "200": taskBody("the task"), ...errors(404, ...COMMON) },
  },
  deleteTask: {
    operationId: "deleteTask",
    tags: ["tasks"],
    summary: "Stop and purge a task",
    description: "Stops a running task (SIGTERM to its process group, killGraceMs, SIGKILL) and purges it with its runs and logs. Idempotent: 204 for unknown ids too.",
    parameters: [idParam],
    responses: { "204": { description: "gone" }, ...errors(...COMMON) },
  },
  listTaskRuns: {
    operationId: "listTaskRuns",
    tags: ["tasks"],
    summary: "Run history of a task",
    description: "Oldest first; at most --max-runs are kept.",
    parameters: [idParam],
    responses: { "200": json("the runs", schemaRef("RunList")), ...errors(404, ...COMMON) },
  },
  streamTaskLogs: {
    operationId: "streamTaskLogs",
    tags: ["logs"],
    summary: "Live output of a task (SSE)",
    description: LOG_EVENTS_TEXT,
    parameters: [
      idParam,
      afterParam,
      query("follow", "false: send the retained events and close", { type: "boolean", default: true }),
      lastEventIdParam,
    ],
    responses: {
      "200": sse("the event stream"),
      "204": { description: "resumed with `Last-Event-ID` at the end of a finished task's log: nothing more will come (an `EventSource` stops reconnecting)" },
      ...errors(400, 404, ...COMMON),
    },
  },
  cancelTask: {
    operationId: "cancelTask",
    tags: ["tasks"],
    summary: "Cancel a task",
    description: "Stops the task without purging it; phase `canceled`, no more attempts. A terminal task is returned as it is.",
    parameters: [idParam],
    responses: { "200": taskBody("the task after cancellation"), ...errors(404, 503, ...COMMON) },
  },
  startTask: {
    operationId: "startTask",
    tags: ["tasks"],
    summary: "Release a held task",
    description: "Starts a task submitted with `hold: true`; other tasks are returned unchanged.",
    parameters: [idParam],
    responses: { "200": taskBody("the task"), ...errors(404, 503, ...COMMON) },
  },
  restartTask: {
    operationId: "restartTask",
    tags: ["tasks"],
    summary: "Run a terminal task again",
    description: "A new attempt of a terminal task; the run history is kept. A task that is not terminal is a 400 InvalidRequest.",
    parameters: [idParam],
    responses: { "200": taskBody("the task"), ...errors(400, 404, 503, ...COMMON) },
  },
  waitTask: {
    operationId: "waitTask",
    tags: ["tasks"],
    summary: "Wait until a task is terminal",
    description: "Long-poll: answers when the task is terminal or `timeoutMs` passed, with the task as it then is — read its phase.",
    parameters: [idParam, timeoutMsParam],
    responses: { "200": taskBody("the task"), ...errors(400, 404, ...COMMON) },
  },
  watchTasks: {
    operationId: "watchTasks",
    tags: ["watch"],
    summary: "Watch task changes (SSE)",
    description:
      "`event: task` with the task JSON on every change; `event: deleted` with `{\"id\"}` when a task is purged; `event: lagged` with `{\"type\":\"lagged\",\"skipped\":N}` for a slow client. " +
      "Each event has an `id:` (a global change number) for resuming.",
    parameters: [afterParam, query("slot", "only tasks of this slot", { type: "string", minLength: 1 }), labelParam, lastEventIdParam],
    responses: { "200": sse("the event stream"), ...errors(400, ...COMMON) },
  },
  watchTasksWs: {
    operationId: "watchTasksWebSocket",
    tags: ["watch"],
    summary: "Watch task changes (WebSocket)",
    description:
      "A GET with `Upgrade: websocket`. Each server message is one JSON WatchMessage: `{\"event\":\"task_update\",\"id\":N,\"task\":…}`, `{\"event\":\"task_deleted\",\"id\":N,\"task\":{\"metadata\":{\"id\"}}}` or `{\"event\":\"lagged\",\"id\":N,\"skipped\":N}`; " +
      "without `?after=` the retained changes (up to 4096) come first, then the live ones. " +
      "A request refused before the upgrade (authentication, rate limit) gets the usual error response; so does a handshake whose only subprotocol is `bearer.<token>` " +
      "(400: answering it would echo the token; offer e.g. `tasklane` next to it), and a GET without `Upgrade: websocket` (426, error `InvalidRequest`). " +
      "A failure while subscribing (a bad query such as `after=x` or an unknown parameter) is sent as `{\"event\":\"error\",\"error\",\"message\"}`, then the socket is closed.",
    parameters: [
      afterParam,
      query("slot", "only tasks of this slot", { type: "string", minLength: 1 }),
      labelParam,
      query("token", "a principal's token, for clients that cannot set headers (prefer the `bearer.<token>` subprotocol: query strings tend to end up in proxy logs)", {
        type: "string",
      }),
      { name: "Upgrade", in: "header", required: true, schema: { type: "string", enum: ["websocket"] } },
    ],
    responses: {
      "101": {
        description: "Switching Protocols; the messages that follow are WatchMessage JSON texts",
        content: { "application/json": { schema: schemaRef("WatchMessage") } },
      },
      ...errors(426, ...COMMON),
    },
  },
  info: {
    operationId: "getInfo",
    tags: ["agent"],
    summary: "Agent version, uptime, limits and capabilities",
    responses: { "200": json("about this agent", schemaRef("Info")), ...errors(...COMMON) },
  },
  metricsJson: {
    operationId: "getMetricsSummary",
    tags: ["agent"],
    summary: "Metrics summary (JSON)",
    description: "Tasks by phase and by slot, running, queued, submissions per second. The full set is at /metrics.",
    responses: { "200": json("the summary", schemaRef("MetricsSummary")), ...errors(...COMMON) },
  },
  metricsText: {
    operationId: "getMetrics",
    tags: ["agent"],
    summary: "Prometheus metrics",
    description: "Prometheus text exposition format 0.0.4; docs/operations.md lists the metrics.",
    responses: {
      "200": { description: "the exposition", content: { [EXPOSITION_CONTENT_TYPE]: { schema: { type: "string" } } } },
      ...errors(...COMMON),
    },
  },
  healthz: {
    operationId: "getLiveness",
    tags: ["agent"],
    summary: "Liveness",
    description: "200 while the process is alive and serving HTTP.",
    security: [],
    responses: { "200": json("alive", schemaRef("Liveness")), ...errors(...EVERY_ROUTE) },
  },
  readyz: {
    operationId: "getReadiness",
    tags: ["agent"],
    summary: "Readiness",
    description:
      "200 once the store is open and both servers listen; 503 before that, from the first moment of a shutdown, and for good once the store has failed (a lost commit or a failed fsync: `storeWritable` false). " +
      "The gRPC health service mirrors it.",
    security: [],
    responses: {
      "200": json("ready", schemaRef("Readiness")),
      "503": json("not ready; `checks` says why", schemaRef("Readiness")),
      ...errors(...EVERY_ROUTE),
    },
  },
  openapi: {
    operationId: "getOpenApi",
    tags: ["agent"],
    summary: "This document",
    responses: { "200": { description: "the OpenAPI document", content: { "application/json": { schema: { type: "object" } } } }, ...errors(...COMMON) },
  },
} satisfies Record<string, Operation>;

const strict = { additionalProperties: false } as const;

/** How one resource limit is enforced (`src/runner/resource-limits.ts`). */
const LimitMechanism = Type.Union([Type.Literal("cgroup"), Type.Literal("rlimit"), Type.Literal("none")]);

/** `GET /api/v1/info` (`controlPlane` only with --control-plane). */
export const InfoSchema = Type.Object(
  {
    name: Type.Literal("tasklane"),
    version: Type.String(),
    apiVersion: Type.Integer(),
    startedAt: Type.Integer(),
    uptimeMs: Type.Integer(),
    hostname: Type.String(),
    os: Type.String(),
    arch: Type.String(),
    pid: Type.Integer(),
    dataDir: Type.String(),
    store: Type.Optional(Type.String()),
    auth: Type.Object({ enabled: Type.Boolean() }, { additionalProperties: true }),
    resourceLimits: Type.Optional(
      Type.Object(
        {
          mode: Type.Union([Type.Literal("strict"), Type.Literal("best-effort")]),
          memory: LimitMechanism,
          cpu: LimitMechanism,
          pids: LimitMechanism,
          notes: Type.Record(Type.String(), Type.String(), { description: "by resource: why it is limited less than asked" }),
        },
        { description: "how task resource limits are enforced on this host" },
      ),
    ),
    limits: Type.Record(Type.String(), Type.Number()),
    capabilities: Type.Array(Type.String()),
    running: Type.Integer(),
    controlPlane: Type.Optional(
      Type.Object(
        {
          url: Type.String({ description: "without user info" }),
          transport: Type.Union([Type.Literal("http"), Type.Literal("grpc")]),
          state: Type.Union([Type.Literal("connecting"), Type.Literal("up"), Type.Literal("down")]),
          lastSuccessAt: Type.Optional(Type.Integer({ description: "Unix ms" })),
          lastError: Type.Optional(Type.String()),
          lastErrorAt: Type.Optional(Type.Integer({ description: "Unix ms" })),
          consecutiveFailures: Type.Integer({ minimum: 0 }),
          agentId: Type.String(),
          endpoint: Type.String({ description: "the URL advertised to the control plane" }),
        },
        { description: "the fleet link; present only with --control-plane (docs/fleet.md)" },
      ),
    ),
  },
  { additionalProperties: true },
);

/** Shapes that exist only on the wire (the domain ones come from tasks/model.ts). */
const wireSchemas: Record<string, TSchema> = {
  Phase: PhaseSchema,
  TaskSpec: TaskSpecInputSchema,
  Task: TaskSchema,
  TaskRun: TaskRunSchema,
  Error: Type.Object(
    {
      error: Type.Union(ERROR_CODES.map((c) => Type.Literal(c)), { description: "error label" }),
      message: Type.String({ description: "human text naming what was wrong" }),
    },
    { ...strict, description: "The error envelope of every failed request." },
  ),
  SubmitRequest: Type.Union(
    [
      Type.Object({ spec: Type.Ref("TaskSpec") }, { ...strict, title: "REST", description: "domain shape (CONTRACT §1)" }),
      Type.Object(
        { spec: Type.Object({}, { additionalProperties: true, description: "solti.v1.CreateSpec in proto3 JSON: timeoutMs, flattened subprocess.command, RESTART_STRATEGY_* enums…" }) },
        { title: "proto3 JSON", description: "a solti.v1.SubmitTaskRequest in proto3 JSON" },
      ),
    ],
    { description: "`{\"spec\": …}` in the REST shape, or a proto3-JSON SubmitTaskRequest" },
  ),
  SubmitResponse: Type.Object(
    {
      task_id: Type.String({ description: "tsk_ + ULID" }),
      admission: Type.Union(["started", "queued", "replaced", "dropped"].map((a) => Type.Literal(a)), {
        description: `what admission did (spec.admission is one of ${ADMISSIONS.join(", ")})`,
      }),
    },
    strict,
  ),
  RunOutcome: Type.Object(
    {
      task: Type.Ref("Task"),
      runs: Type.Array(Type.Ref("TaskRun")),
      output: Type.Object({ stdout: Type.Array(Type.String()), stderr: Type.Array(Type.String()) }, { description: "last lines of each stream" }),
    },
    strict,
  ),
  TaskList: Type.Object({ tasks: Type.Array(Type.Ref("Task")), total: Type.Integer({ description: "all matches, not the page size" }) }, strict),
  RunList: Type.Object({ runs: Type.Array(Type.Ref("TaskRun")) }, strict),
  LogEvent: Type.Union([
    Type.Object({ type: Type.Literal("runStarted"), attempt: Type.Integer(), startedAt: Type.Integer() }, { title: "RunStarted" }),
    Type.Object(
      {
        type: Type.Literal("chunk"),
        attempt: Type.Integer(),
        stream: Type.Union(STREAMS.map((s) => Type.Literal(s))),
        seq: Type.Integer({ description: "line number per stream, from 0 each attempt" }),
        ts: Type.Integer(),
        line: Type.String({ description: "UTF-8 line without its newline; over-long lines are cut and marked" }),
      },
      { title: "Chunk" },
    ),
    Type.Object({ type: Type.Literal("runFinished"), attempt: Type.Integer(), exitCode: Type.Optional(Type.Integer()), finishedAt: Type.Integer() }, { title: "RunFinished" }),
    Type.Object({ type: Type.Literal("lagged"), skipped: Type.Integer() }, { title: "Lagged" }),
  ]),
  WatchMessage: Type.Union([
    Type.Object({ event: Type.Literal("task_update"), id: Type.Integer(), task: Type.Ref("Task") }),
    Type.Object({ event: Type.Literal("task_deleted"), id: Type.Integer(), task: Type.Object({ metadata: Type.Object({ id: Type.String() }) }) }),
    Type.Object({ event: Type.Literal("lagged"), id: Type.Integer(), skipped: Type.Integer() }),
    Type.Object({ event: Type.Literal("error"), error: Type.String(), message: Type.String() }),
  ]),
  Info: InfoSchema,
  MetricsSummary: MetricsSummarySchema,
  Liveness: Type.Object({ status: Type.Literal("alive") }, { additionalProperties: true }),
  Readiness: Type.Object(
    {
      status: Type.Union([Type.Literal("ready"), Type.Literal("not ready")]),
      checks: Type.Record(Type.String(), Type.Boolean(), { description: "each condition of readiness; all true when ready" }),
    },
    { additionalProperties: true },
  ),
};

/** TypeBox `Type.Ref("X")` → a JSON reference into components; symbols dropped. */
function toJson(schema: TSchema): unknown {
  return JSON.parse(JSON.stringify(schema), (key, value: unknown) =>
    key === "$ref" && typeof value === "string" && !value.startsWith("#") ? `#/components/schemas/${value}` : value,
  );
}

const requestIdHeader = {
  description: "the request id: the caller's X-Request-Id when sane, else generated; logged with the request",
  schema: { type: "string" },
};

function components(): OpenApiDocument["components"] {
  const schemas: Record<string, unknown> = {};
  for (const [name, s] of Object.entries(wireSchemas)) schemas[name] = toJson(s);
  const responses: Record<string, unknown> = {};
  for (const [, [name, text]] of Object.entries(ERROR_RESPONSES)) {
    responses[name] = {
      description: text,
      headers: {
        "X-Request-Id": { $ref: "#/components/headers/XRequestId" },
        ...(name === "RateLimited" ? { "Retry-After": { description: "seconds to wait", schema: { type: "integer" } } } : {}),
      },
      content: { "application/json": { schema: schemaRef("Error") } },
    };
  }
  return {
    schemas,
    responses,
    headers: { XRequestId: requestIdHeader },
    securitySchemes: {
      bearerAuth: {
        type: "http",
        scheme: "bearer",
        description: "a principal's token; checked on every route but /healthz and /readyz when the agent has principals configured",
      },
    },
  };
}

/** Elysia `:name` → OpenAPI `{name}`. */
export function openApiPath(path: string): string {
  return path.replace(/:([^/]+)/g, "{$1}");
}

/** Every route of the root app `app` belongs to (`getGlobalRoutes` is public at run time, protected in the typings). */
function globalRoutes(app: AnyElysia): InternalRoute[] {
  return (app as unknown as { getGlobalRoutes(): InternalRoute[] }).getGlobalRoutes();
}

/** Build the document from the routes registered on `app` (and every app it belongs to). */
export function buildOpenApiDocument(app: AnyElysia, version: string): OpenApiDocument {
  const generated = toOpenAPISchema(app, { methods: ["options", "ws"], staticFile: false }, undefined, undefined, OPENAPI_VERSION);
  const paths = JSON.parse(JSON.stringify(generated.paths)) as OpenApiDocument["paths"];
  for (const route of globalRoutes(app)) {
    const detail = route.hooks?.detail as Operation | undefined;
    if (!detail || detail.hide) continue;
    const path = openApiPath(route.path);
    const item = (paths[path] ??= {});
    if (route.method === "WS") item.get = JSON.parse(JSON.stringify(detail)) as OperationJson;
    else {
      const op = item[route.method.toLowerCase()];
      // toOpenAPISchema overwrites detail.parameters with the bare path parameters.
      if (op && detail.parameters) op.parameters = JSON.parse(JSON.stringify(detail.parameters)) as unknown[];
    }
  }
  for (const item of Object.values(paths))
    for (const op of Object.values(item))
      for (const res of Object.values(op.responses ?? {}))
        if (!("$ref" in res)) res.headers = { "X-Request-Id": { $ref: "#/components/headers/XRequestId" }, ...(res.headers as object | undefined) };
  return {
    openapi: OPENAPI_VERSION,
    info: {
      title: "tasklane",
      version,
      description:
        "Single-binary task agent: supervised subprocess tasks over REST/SSE (this document) and gRPC (solti.v1.SoltiApi, tasklane.v1.AgentService). " +
        `Every response carries an ${REQUEST_ID_HEADER.replace(/\b\w/g, (c) => c.toUpperCase())} header; send your own to correlate. ` +
        "Errors are always {\"error\": <label>, \"message\": <text>}; an unknown route answers 404 NotFound.",
      license: { name: "Apache-2.0", identifier: "Apache-2.0" },
    },
    tags: [
      { name: "tasks", description: "submit, read, stop and wait for tasks" },
      { name: "logs", description: "live output" },
      { name: "watch", description: "streams of task changes" },
      { name: "agent", description: "information, metrics, health, this document" },
    ],
    security: [{ bearerAuth: [] }, {}],
    paths,
    components: components(),
  };
}

/** The plugin serving `GET /openapi.json`; the document is built on the first request, when every route is registered. */
export function createOpenApi(opts: { version?: string } = {}) {
  const version = opts.version ?? VERSION;
  const plugin = new Elysia({ name: "tasklane-openapi" });
  let cached: { routes: number; doc: OpenApiDocument } | undefined;
  return plugin.get(
    OPENAPI_PATH,
    () => {
      const routes = globalRoutes(plugin).length;
      if (cached?.routes !== routes) cached = { routes, doc: buildOpenApiDocument(plugin, version) };
      return cached.doc;
    },
    { detail: routeDocs.openapi },
  );
}
