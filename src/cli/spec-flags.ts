/**
 * The flags of `submit` and `run`, one per field of the task spec
 * (CONTRACT §1), and `buildSpec` which turns them plus `-- CMD ARGS…` (or
 * `--script FILE`) into a REST `spec`. Values are checked here so mistakes
 * are usage errors naming the flag; the agent validates the rest.
 */
import { basename, extname, resolve } from "node:path";
import type { Admission, Jitter, ScriptRuntime, TaskSpecInput } from "../tasks/model.ts";
import { JITTERS, WELL_KNOWN_RUNTIMES } from "./wire-values.ts";
import type { Flags, FlagSpec } from "./args.ts";
import { CliError, usage } from "./cli-error.ts";
import { bytesFlag, durationFlag, intFlag, keyValueFlag, numberFlag } from "./units.ts";

const ADMISSION_FLAGS: Record<string, Admission> = { "drop-if-running": "dropIfRunning", replace: "replace", queue: "queue" };
const RESTART_FLAGS = ["never", "on-failure", "always"] as const;

/** The agent's backoff defaults, used to fill in the fields a user did not give. */
export const DEFAULT_BACKOFF = { jitter: "full" as Jitter, firstMs: 1000, maxMs: 30_000, factor: 2 };

/** Flags shared by `submit` and `run`. */
export const SPEC_FLAGS: readonly FlagSpec[] = [
  { name: "slot", kind: "string", value: "NAME", help: "slot (one running task per slot); default: command name + random suffix" },
  { name: "script", kind: "string", value: "FILE", help: "run FILE (or - for stdin) as a script instead of -- CMD; args after -- go to the script" },
  { name: "runtime", kind: "string", value: "RT", help: "script runtime: bash, python, node or any interpreter CMD (default: from the file extension, else bash)" },
  { name: "runtime-flag", kind: "string", value: "FLAG", help: "inline-code flag of a custom runtime CMD (default -e)" },
  { name: "timeout", kind: "string", value: "DURATION", help: "time limit per attempt, e.g. 30s, 5m (agent default 1h)" },
  { name: "restart", kind: "string", value: "POLICY", choices: RESTART_FLAGS, help: "restart policy: never, on-failure, always (default never)" },
  { name: "restart-interval", kind: "string", value: "DURATION", help: "pause between successful runs with --restart always" },
  { name: "max-attempts", kind: "string", value: "N", help: "stop retrying after N attempts (phase exhausted)" },
  { name: "backoff-jitter", kind: "string", value: "J", choices: JITTERS, help: "retry backoff jitter: none, full, equal, decorrelated (default full)" },
  { name: "backoff-first", kind: "string", value: "DURATION", help: "first retry delay (default 1s)" },
  { name: "backoff-max", kind: "string", value: "DURATION", help: "longest retry delay (default 30s)" },
  { name: "backoff-factor", kind: "string", value: "F", help: "growth factor of the retry delay, ≥ 1 (default 2)" },
  { name: "admission", kind: "string", value: "A", choices: Object.keys(ADMISSION_FLAGS), help: "when the slot is busy: drop-if-running, replace, queue (agent default queue)" },
  { name: "env", short: "e", kind: "list", value: "K=V", help: "environment variable (repeatable); K alone copies it from your environment" },
  { name: "cwd", kind: "string", value: "DIR", help: "working directory (relative paths are resolved here)" },
  { name: "label", short: "l", kind: "list", value: "K=V", help: "label (repeatable)" },
  { name: "kill-grace", kind: "string", value: "DURATION", help: "SIGTERM → SIGKILL grace when stopping (default: the agent's --kill-grace-ms, 5s unless set)" },
  { name: "priority", kind: "string", value: "N", help: "0..10, higher starts first when the agent is at its concurrency limit" },
  { name: "hold", kind: "boolean", help: "store as pending; it starts only on POST …/start" },
  { name: "no-fail-on-non-zero", kind: "boolean", help: "a non-zero exit counts as success" },
  { name: "memory", kind: "string", value: "SIZE", help: "memory limit, e.g. 256MiB" },
  { name: "cpu-millis", kind: "string", value: "N", help: "CPU limit in millicores (1000 = one core)" },
  { name: "pids", kind: "string", value: "N", help: "limit on processes" },
];

/** What `buildSpec` needs besides the flags. */
export interface SpecSource {
  flags: Flags;
  /** Words after `--` (command and args, or script args). */
  rest: string[] | undefined;
  env: Record<string, string | undefined>;
  cwd: string;
  readStdin(): Promise<string>;
  random?: () => number;
}

function defaultSlot(name: string, random: () => number): string {
  const base = basename(name).replace(/\.[A-Za-z0-9]+$/, "").replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^[-.]+|[-.]+$/g, "").slice(0, 48) || "task";
  const suffix = Math.floor(random() * 0xffffff).toString(16).padStart(6, "0");
  return `${base}-${suffix}`;
}

function runtimeOf(flags: Flags, file: string): ScriptRuntime {
  const raw = flags.string("runtime");
  if (raw === undefined) {
    const ext = extname(file).toLowerCase();
    if (ext === ".py") return "python";
    if ([".js", ".mjs", ".cjs"].includes(ext)) return "node";
    return "bash";
  }
  if (raw.trim() === "") throw usage("--runtime: must not be empty");
  if ((WELL_KNOWN_RUNTIMES as readonly string[]).includes(raw)) return raw as ScriptRuntime;
  return { custom: { command: raw, flag: flags.string("runtime-flag") ?? "-e" } };
}

async function readScript(file: string, src: SpecSource): Promise<string> {
  try {
    const bytes = file === "-" ? new TextEncoder().encode(await src.readStdin()) : await Bun.file(resolve(src.cwd, file)).bytes();
    return Buffer.from(bytes).toString("base64");
  } catch (err) {
    if (err instanceof CliError) throw err;
    const code = (err as { code?: string }).code;
    throw usage(`--script: cannot read ${JSON.stringify(file)}${code === "ENOENT" ? ": no such file" : `: ${(err as Error).message}`}`);
  }
}

/** Build the REST spec from the spec flags and the command words. */
export async function buildSpec(src: SpecSource): Promise<TaskSpecInput> {
  const f = src.flags;
  const random = src.random ?? Math.random;
  const rest = src.rest ?? [];
  const script = f.string("script");
  let mode: TaskSpecInput["kind"]["subprocess"]["mode"];
  let nameForSlot: string;
  if (script !== undefined) {
    mode = { script: { runtime: runtimeOf(f, script), body: await readScript(script, src), args: rest } };
    nameForSlot = script === "-" ? "script" : script;
  } else {
    if (f.has("runtime")) throw usage("--runtime: only with --script FILE");
    if (f.has("runtime-flag")) throw usage("--runtime-flag: only with --script FILE");
    const [command, ...args] = rest;
    if (command === undefined || command.trim() === "") throw usage("missing command: give -- CMD [ARGS…] or --script FILE");
    mode = { command: { command, args } };
    nameForSlot = command;
  }

  const subprocess: TaskSpecInput["kind"]["subprocess"] = { mode };
  const env = f.list("env").map((raw) => {
    if (!raw.includes("=")) {
      const v = src.env[raw];
      if (raw === "" || v === undefined) throw usage(`--env: ${JSON.stringify(raw)} is not KEY=VALUE and not set in your environment`);
      return { key: raw, value: v };
    }
    const [key, value] = keyValueFlag("env", raw);
    return { key, value };
  });
  if (env.length > 0) subprocess.env = env;
  const cwd = f.string("cwd");
  if (cwd !== undefined) {
    if (cwd === "") throw usage("--cwd: must not be empty");
    subprocess.cwd = resolve(src.cwd, cwd);
  }
  if (f.bool("no-fail-on-non-zero")) subprocess.failOnNonZero = false;

  const spec: TaskSpecInput = { slot: f.string("slot") ?? defaultSlot(nameForSlot, random), kind: { subprocess } };
  const timeout = f.string("timeout");
  if (timeout !== undefined) spec.timeout = durationFlag("timeout", timeout);

  const restart = f.string("restart");
  const interval = f.string("restart-interval");
  if (interval !== undefined && restart !== "always") throw usage("--restart-interval: only with --restart always");
  if (restart === "never") spec.restart = { type: "never" };
  else if (restart === "on-failure") spec.restart = { type: "onFailure" };
  else if (restart === "always") {
    spec.restart = interval === undefined ? { type: "always" } : { type: "always", intervalMs: durationFlag("restart-interval", interval, { allowZero: true }) };
  }

  const bj = f.string("backoff-jitter");
  const bf = f.string("backoff-first");
  const bm = f.string("backoff-max");
  const bx = f.string("backoff-factor");
  if (bj !== undefined || bf !== undefined || bm !== undefined || bx !== undefined) {
    const firstMs = bf !== undefined ? durationFlag("backoff-first", bf) : DEFAULT_BACKOFF.firstMs;
    const maxMs = bm !== undefined ? durationFlag("backoff-max", bm) : Math.max(DEFAULT_BACKOFF.maxMs, firstMs);
    if (maxMs < firstMs) throw usage(`--backoff-max: must be at least --backoff-first (${bf}), got ${JSON.stringify(bm)}`);
    spec.backoff = {
      jitter: (bj as Jitter | undefined) ?? DEFAULT_BACKOFF.jitter,
      firstMs,
      maxMs,
      factor: bx !== undefined ? numberFlag("backoff-factor", bx, 1) : DEFAULT_BACKOFF.factor,
    };
  }

  const admission = f.string("admission");
  if (admission !== undefined) spec.admission = ADMISSION_FLAGS[admission];

  const labels = f.list("label");
  if (labels.length > 0) spec.labels = Object.fromEntries(labels.map((l) => keyValueFlag("label", l)));

  const maxAttempts = f.string("max-attempts");
  if (maxAttempts !== undefined) spec.maxAttempts = intFlag("max-attempts", maxAttempts, 1);
  const grace = f.string("kill-grace");
  if (grace !== undefined) spec.killGraceMs = durationFlag("kill-grace", grace, { allowZero: true });
  const priority = f.string("priority");
  if (priority !== undefined) spec.priority = intFlag("priority", priority, 0, 10);
  if (f.bool("hold")) spec.hold = true;

  const resources: NonNullable<TaskSpecInput["resources"]> = {};
  const memory = f.string("memory");
  if (memory !== undefined) resources.memoryBytes = bytesFlag("memory", memory);
  const cpu = f.string("cpu-millis");
  if (cpu !== undefined) resources.cpuMillis = intFlag("cpu-millis", cpu, 1);
  const pids = f.string("pids");
  if (pids !== undefined) resources.pids = intFlag("pids", pids, 1);
  if (Object.keys(resources).length > 0) spec.resources = resources;
  return spec;
}
