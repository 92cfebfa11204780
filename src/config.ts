/**
 * Configuration: flags and environment variables parsed once into a frozen,
 * typed object. This is the only module that reads the environment.
 * Bad values produce a `ConfigError` whose one-line message names the flag and
 * the value; `main.ts` prints it and exits with status 2.
 */
import { availableParallelism } from "node:os";
import { endpointKindOf, parseControlPlaneUrl } from "./fleet/control-plane-url.ts";
import { VERSION } from "./version.ts";

export type LogFormat = "json" | "text";
export type LogLevel = "debug" | "info" | "warn" | "error";

/** Everything the agent needs to start. */
export interface Config {
  httpAddr: { host: string; port: number };
  grpcAddr: { host: string; port: number };
  /** Directory of the embedded store, or `:memory:`. */
  dataDir: string;
  maxConcurrent: number;
  maxQueuePerSlot: number;
  logRetain: number;
  logRetainBytes: number;
  maxLineBytes: number;
  killGraceMs: number;
  /** Where tasks are spawned and their pipes read: the main thread (default) or a runner thread (runner/run-thread.ts). */
  spawnOn: "main" | "thread";
  taskTtlMs: number;
  maxTasks: number;
  maxRuns: number;
  logLevel: LogLevel;
  logFormat: LogFormat;
  configFile?: string;
  insecureNoAuth: boolean;
  tlsCert?: string;
  tlsKey?: string;
  resourceLimits: "strict" | "best-effort";
  controlPlane?: string;
  advertise?: string;
  agentId?: string;
  agentName?: string;
  heartbeatMs: number;
  /** Admin token from TASKLANE_ADMIN_TOKEN (never logged). */
  adminToken?: string;
  /** Bearer token for the control plane from TASKLANE_CONTROL_PLANE_TOKEN (never logged). */
  controlPlaneToken?: string;
  /** The environment tasks start from: the agent's, minus its secrets (see SECRET_ENV). */
  taskEnv: Record<string, string>;
}

/**
 * Variables that never reach a task's environment: the tokens, and the
 * control-plane URL, which may carry a password (`https://user:pass@host`).
 */
export const SECRET_ENV: ReadonlySet<string> = new Set(["TASKLANE_ADMIN_TOKEN", "TASKLANE_TOKEN", "TASKLANE_CONTROL_PLANE_TOKEN", "TASKLANE_CONTROL_PLANE"]);

/** A configuration mistake; `message` is one line naming the flag. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

type Kind = "string" | "int" | "duration" | "bytes" | "addr" | "bool" | "enum";
interface OptionDef {
  flag: string;
  env: string;
  key: keyof Config;
  kind: Kind;
  help: string;
  def?: string;
  values?: readonly string[];
  min?: number;
  /**
   * Largest value (ms for durations, bytes for sizes) of `int`, `duration`
   * and `bytes` options; without it, the largest exact integer. Anything
   * handed to `setTimeout` must stay below 2^31 ms, or it fires at once.
   */
  max?: number;
  /** Extra check of a `string` value; throws an `Error` whose message starts with `source`. */
  check?: (value: string, source: string) => unknown;
  /** Only meaningful with `--control-plane`: refused without it. */
  fleet?: boolean;
}

/** Longest `--agent-id` / `--agent-name`: they go into every heartbeat and log line. */
export const MAX_AGENT_LABEL = 256;

/** `--agent-id` / `--agent-name`: printable text on one line, at most `MAX_AGENT_LABEL` characters. */
function checkAgentLabel(value: string, source: string): void {
  if (value.length > MAX_AGENT_LABEL) throw new Error(`${source}: must be at most ${MAX_AGENT_LABEL} characters, got ${value.length}`);
  if (/[\u0000-\u001f\u007f-\u009f]/.test(value)) throw new Error(`${source}: must not contain control characters (a newline, a tab…)`);
  if (value.trim() !== value) throw new Error(`${source}: must not start or end with white space`);
}

/** Largest `--kill-grace-ms`: the bound of a task's own `killGraceMs`. */
export const MAX_KILL_GRACE_MS = 600_000;
/** Largest `--heartbeat`: 1 h, so its timer and the announced `heartbeatIntervalS` (int32) stay in range. */
export const MAX_HEARTBEAT_MS = 3_600_000;
/**
 * Smallest `--heartbeat`: 100 ms. A plain number is milliseconds, so a
 * `TASKLANE_HEARTBEAT=30` meant as seconds is refused instead of sending the
 * control plane 33 heartbeats a second.
 */
export const MIN_HEARTBEAT_MS = 100;
/**
 * Largest `--max-line`: 1 MiB. A cut line must fit one gRPC message (4 MiB,
 * CONTRACT §5) even when every byte was invalid UTF-8 and became U+FFFD
 * (3 bytes each), with its marker and framing.
 */
export const MAX_LINE_BYTES = 1 << 20;
/** Largest `--max-concurrent`: beyond any process table, and within the uint32 of gRPC `Info.max_concurrent`. */
export const MAX_CONCURRENT = 1_000_000;

const cpus = availableParallelism();

/** Every option, in help order. Defaults are strings parsed like user input. */
export const OPTIONS: readonly OptionDef[] = [
  { flag: "--http-addr", env: "TASKLANE_HTTP_ADDR", key: "httpAddr", kind: "addr", def: "127.0.0.1:8080", help: "REST/SSE/WebSocket listen address (port 0 = pick a free one)" },
  { flag: "--grpc-addr", env: "TASKLANE_GRPC_ADDR", key: "grpcAddr", kind: "addr", def: "127.0.0.1:50051", help: "gRPC listen address (port 0 = pick a free one)" },
  { flag: "--data-dir", env: "TASKLANE_DATA_DIR", key: "dataDir", kind: "string", def: "./tasklane-data", help: "embedded store directory, or :memory: for no persistence" },
  { flag: "--max-concurrent", env: "TASKLANE_MAX_CONCURRENT", key: "maxConcurrent", kind: "int", def: String(4 * cpus), min: 1, max: MAX_CONCURRENT, help: "tasks running at once (default 4 x CPUs, at most 1000000)" },
  { flag: "--max-queue", env: "TASKLANE_MAX_QUEUE", key: "maxQueuePerSlot", kind: "int", def: "1000", min: 1, help: "queued tasks per slot; beyond it submit answers 503" },
  { flag: "--log-retain", env: "TASKLANE_LOG_RETAIN", key: "logRetain", kind: "int", def: "1000", min: 1, help: "log events kept per task" },
  { flag: "--log-retain-bytes", env: "TASKLANE_LOG_RETAIN_BYTES", key: "logRetainBytes", kind: "bytes", def: "4MiB", min: 1024, help: "log bytes kept per task (at least 1KiB)" },
  { flag: "--max-line", env: "TASKLANE_MAX_LINE", key: "maxLineBytes", kind: "bytes", def: "16KiB", min: 16, max: MAX_LINE_BYTES, help: "longer output lines are cut and marked (16 bytes to 1MiB)" },
  { flag: "--kill-grace-ms", env: "TASKLANE_KILL_GRACE_MS", key: "killGraceMs", kind: "int", def: "5000", min: 0, max: MAX_KILL_GRACE_MS, help: "default SIGTERM -> SIGKILL grace in ms (0 to 600000)" },
  { flag: "--spawn-on", env: "TASKLANE_SPAWN_ON", key: "spawnOn", kind: "enum", def: "main", values: ["main", "thread"], help: "spawn tasks and read their output on the main thread, or on a runner thread" },
  { flag: "--task-ttl", env: "TASKLANE_TASK_TTL", key: "taskTtlMs", kind: "duration", def: "24h", help: "terminal tasks are swept after this long" },
  { flag: "--max-tasks", env: "TASKLANE_MAX_TASKS", key: "maxTasks", kind: "int", def: "10000", min: 1, help: "terminal tasks kept (oldest swept first)" },
  { flag: "--max-runs", env: "TASKLANE_MAX_RUNS", key: "maxRuns", kind: "int", def: "100", min: 1, help: "runs kept per task" },
  { flag: "--log-level", env: "TASKLANE_LOG_LEVEL", key: "logLevel", kind: "enum", def: "info", values: ["debug", "info", "warn", "error"], help: "agent log level" },
  { flag: "--log-format", env: "TASKLANE_LOG_FORMAT", key: "logFormat", kind: "enum", def: "json", values: ["json", "text"], help: "agent log format on stderr" },
  { flag: "--config", env: "TASKLANE_CONFIG", key: "configFile", kind: "string", help: "TOML file with principals (auth)" },
  { flag: "--insecure-no-auth", env: "TASKLANE_INSECURE_NO_AUTH", key: "insecureNoAuth", kind: "bool", def: "false", help: "allow non-loopback addresses without any principal" },
  { flag: "--tls-cert", env: "TASKLANE_TLS_CERT", key: "tlsCert", kind: "string", help: "PEM certificate for HTTP and gRPC" },
  { flag: "--tls-key", env: "TASKLANE_TLS_KEY", key: "tlsKey", kind: "string", help: "PEM private key for HTTP and gRPC" },
  { flag: "--resource-limits", env: "TASKLANE_RESOURCE_LIMITS", key: "resourceLimits", kind: "enum", def: "strict", values: ["strict", "best-effort"], help: "reject (strict) or accept (best-effort) limits that cannot be enforced" },
  { flag: "--control-plane", env: "TASKLANE_CONTROL_PLANE", key: "controlPlane", kind: "string", check: parseControlPlaneUrl, help: "solti control plane URL (http(s):// or grpc(s)://) to send heartbeats to" },
  { flag: "--advertise", env: "TASKLANE_ADVERTISE", key: "advertise", kind: "string", check: endpointKindOf, fleet: true, help: "URL the control plane should use to reach this agent" },
  { flag: "--agent-id", env: "TASKLANE_AGENT_ID", key: "agentId", kind: "string", check: checkAgentLabel, fleet: true, help: "agent id (default: generated once, kept in the data dir)" },
  { flag: "--agent-name", env: "TASKLANE_AGENT_NAME", key: "agentName", kind: "string", check: checkAgentLabel, fleet: true, help: "agent name (default: hostname)" },
  { flag: "--heartbeat", env: "TASKLANE_HEARTBEAT", key: "heartbeatMs", kind: "duration", def: "30s", min: MIN_HEARTBEAT_MS, max: MAX_HEARTBEAT_MS, fleet: true, help: "heartbeat interval (100ms to 1h)" },
];

const UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const UNITS_B: Record<string, number> = { "": 1, b: 1, k: 1024, kb: 1000, kib: 1024, m: 1 << 20, mb: 1e6, mib: 1 << 20, g: 1 << 30, gb: 1e9, gib: 1 << 30 };

/** Parse `90s`, `5m`, `1h30m`, `250ms` or plain milliseconds. */
export function parseDuration(text: string): number | undefined {
  if (/^\d+$/.test(text)) return Number(text);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let pos = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * UNITS_MS[m[2]!]!;
    pos = re.lastIndex;
  }
  return pos === text.length && pos > 0 ? Math.round(total) : undefined;
}

function parseBytes(text: string): number | undefined {
  const m = /^(\d+)\s*([a-zA-Z]*)$/.exec(text);
  const unit = m ? UNITS_B[m[2]!.toLowerCase()] : undefined;
  return m && unit !== undefined ? Number(m[1]) * unit : undefined;
}

function parseAddr(text: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: m[1] ?? (m[2] || "0.0.0.0"), port };
}

/** `3600000` → `1h`, `90000` → `90s`: a maximum shown the way durations are written. */
function showDuration(ms: number): string {
  for (const [unit, size] of [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1000]] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** `1048576` → `1MiB`, `1000` → `1000 bytes`: a maximum shown the way sizes are written. */
function showBytes(n: number): string {
  for (const [unit, size] of [["GiB", 1 << 30], ["MiB", 1 << 20], ["KiB", 1024]] as const) {
    if (n % size === 0) return `${n / size}${unit}`;
  }
  return `${n} bytes`;
}

function convert(def: OptionDef, raw: string, source: string): unknown {
  const bad = (why: string) => new ConfigError(`${source}: ${why}, got ${JSON.stringify(raw)}`);
  const max = def.max ?? Number.MAX_SAFE_INTEGER;
  switch (def.kind) {
    case "string":
      if (raw === "") throw bad("must not be empty");
      try {
        def.check?.(raw, source);
      } catch (err) {
        // The check's message names the source and shows the value without credentials.
        throw new ConfigError(err instanceof Error ? err.message : String(err));
      }
      return raw;
    case "int": {
      if (!/^\d+$/.test(raw)) throw bad("must be a whole number");
      const n = Number(raw);
      if (def.min !== undefined && n < def.min) throw bad(`must be at least ${def.min}`);
      if (n > max) throw bad(`must be at most ${max}`);
      return n;
    }
    case "duration": {
      const n = parseDuration(raw);
      if (n === undefined || n <= 0) throw bad("must be a positive duration like 30s, 5m, 24h or milliseconds");
      if (def.min !== undefined && n < def.min) throw bad(`must be at least ${showDuration(def.min)} (a plain number is milliseconds)`);
      if (n > max) throw bad(`must be at most ${showDuration(max)}`);
      return n;
    }
    case "bytes": {
      const n = parseBytes(raw);
      if (n === undefined) throw bad("must be a size like 16384, 16KiB or 4MiB");
      if (def.min !== undefined && n < def.min) throw bad(`must be at least ${def.min} bytes`);
      if (n > max) throw bad(`must be at most ${showBytes(max)}`);
      return n;
    }
    case "addr": {
      const a = parseAddr(raw);
      if (!a) throw bad("must be HOST:PORT (port 0..65535)");
      return a;
    }
    case "bool":
      // A bare flag means true; an empty value (`--insecure-no-auth=`, an unset
      // template variable) is a mistake, not a yes.
      if (["true", "1", "yes"].includes(raw)) return true;
      if (["false", "0", "no"].includes(raw)) return false;
      throw bad("must be true or false (or yes/no, 1/0)");
    case "enum":
      if (!def.values?.includes(raw)) throw bad(`must be one of ${def.values?.join(", ")}`);
      return raw;
  }
}

/**
 * Parse serve flags (argv without the program and subcommand) over env vars
 * over defaults. Throws `ConfigError`.
 */
export function parseConfig(argv: readonly string[], env: Record<string, string | undefined>): Readonly<Config> {
  const values = new Map<keyof Config, unknown>();
  /** Where each value the operator gave came from (flag or env variable); defaults are not in it. */
  const given = new Map<keyof Config, string>();
  // Flags first: they win, so a variable a flag overrides is not read at all (a stale value in an
  // environment file cannot stop a start that gives the flag).
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("-")) {
      const prev = i > 0 ? argv[i - 1]! : "";
      const prevDef = OPTIONS.find((o) => o.flag === prev);
      if (prevDef?.kind === "bool") throw new ConfigError(`${prev} takes no separate value: write ${prev}=${arg}`);
      throw new ConfigError(`unexpected argument ${JSON.stringify(arg)}: serve takes flags only (see --help)`);
    }
    const eq = arg.indexOf("=");
    const name = eq >= 0 ? arg.slice(0, eq) : arg;
    const def = OPTIONS.find((o) => o.flag === name);
    if (!def) throw new ConfigError(`unknown flag ${JSON.stringify(name)} (see --help)`);
    let raw: string;
    if (eq >= 0) raw = arg.slice(eq + 1);
    else if (def.kind === "bool") raw = "true";
    else {
      const next = argv[++i];
      if (next === undefined) throw new ConfigError(`${def.flag}: missing value`);
      raw = next;
    }
    values.set(def.key, convert(def, raw, def.flag));
    given.set(def.key, def.flag);
  }
  for (const def of OPTIONS) {
    if (given.has(def.key)) continue;
    const e = env[def.env];
    if (e !== undefined && e !== "") {
      values.set(def.key, convert(def, e, def.env));
      given.set(def.key, def.env);
    } else if (def.def !== undefined) {
      values.set(def.key, convert(def, def.def, def.flag));
    }
  }
  // A line event takes its bytes + a cut mark (< 64) + 64 of bookkeeping (log-hub.ts): a budget below one
  // line of --max-line would silently drop every line between the two sizes.
  const retainBytes = values.get("logRetainBytes") as number;
  const maxLine = values.get("maxLineBytes") as number;
  if (retainBytes < maxLine + 128) {
    throw new ConfigError(
      `${given.get("logRetainBytes") ?? "--log-retain-bytes"} (${retainBytes} bytes) cannot hold one line of ${given.get("maxLineBytes") ?? "--max-line"} (${maxLine} bytes, with its cut mark and bookkeeping): give at least ${maxLine + 128} bytes, or a smaller --max-line`,
    );
  }
  const controlPlaneToken = env.TASKLANE_CONTROL_PLANE_TOKEN;
  if (!values.has("controlPlane")) {
    const ignored = OPTIONS.find((o) => o.fleet && given.has(o.key))?.key;
    const source = ignored !== undefined ? given.get(ignored) : controlPlaneToken ? "TASKLANE_CONTROL_PLANE_TOKEN" : undefined;
    if (source) throw new ConfigError(`${source} has no effect without --control-plane (or TASKLANE_CONTROL_PLANE); set one, or remove it`);
  }
  const adminToken = env.TASKLANE_ADMIN_TOKEN;
  if (adminToken !== undefined) values.set("adminToken", adminToken); // set but empty is an error (auth-config.ts), not "auth off"
  if (controlPlaneToken) {
    // Visible ASCII only: anything else cannot travel in an `Authorization` header or gRPC metadata.
    if (!/^[\x21-\x7e]+$/.test(controlPlaneToken)) {
      throw new ConfigError(
        "TASKLANE_CONTROL_PLANE_TOKEN: contains characters not allowed in an HTTP header (only visible ASCII: no spaces, line breaks, control or non-ASCII characters); fix it (the value is not shown)",
      );
    }
    values.set("controlPlaneToken", controlPlaneToken);
  }
  const taskEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && !SECRET_ENV.has(k)) taskEnv[k] = v;
  values.set("taskEnv", Object.freeze(taskEnv));
  const cfg = Object.fromEntries(values) as unknown as Config;
  return Object.freeze(cfg);
}

/** Help text of `tasklane serve`. */
export function serveHelp(): string {
  const rows = OPTIONS.map((o) => {
    const left = `  ${o.flag}${o.kind === "bool" ? "" : " VALUE"}`;
    const def = o.def !== undefined ? ` [default: ${o.def}]` : "";
    return `${left.padEnd(32)} ${o.help}${def}\n${"".padEnd(33)} env ${o.env}`;
  });
  return [
    `tasklane ${VERSION} — single-binary task agent (solti v1 API over REST/SSE and gRPC)`,
    "",
    "Usage: tasklane [serve] [flags]",
    "       tasklane <command> --help   (client commands: submit, run, ls, get, runs, logs, cancel, rm, wait, events, info, hash-token, completion, help)",
    "",
    "Flags (each also read from its environment variable):",
    ...rows,
    `${"  --help".padEnd(32)} this help`,
    `${"  --version".padEnd(32)} print the version`,
    "",
    "Environment only (never passed to tasks):",
    `${"  TASKLANE_ADMIN_TOKEN".padEnd(32)} one admin bearer token, beside the principals of --config`,
    `${"  TASKLANE_CONTROL_PLANE_TOKEN".padEnd(32)} bearer token sent to --control-plane`,
    "",
    "Durations: 250ms, 30s, 5m, 1h30m, 1.5h, 1d or plain milliseconds. Sizes: 16384, 16KiB,",
    "4MiB, 1GiB (KB, MB, GB: powers of 1000). Integer flags are at least 1 unless said.",
    "A variable set to the empty string counts as unset; a flag given with an empty value",
    "is an error. Bad values exit 2 with one line naming the flag.",
    "",
    "Example: tasklane serve --http-addr 127.0.0.1:8080 --data-dir /var/lib/tasklane",
  ].join("\n");
}
