/**
 * Per-task resource limits (`spec.resources`: memoryBytes, cpuMillis, pids).
 *
 * Mechanisms, best first, chosen per resource at start-up:
 * - **cgroup v2**, when the agent's own cgroup is delegated to it (writable,
 *   with the controller available). Each run gets `<cgroup>/tasklane-<id>-<n>`
 *   with `memory.max` (+ `memory.swap.max = 0`, `memory.oom.group = 1`),
 *   `cpu.max` (cpuMillis = thousandths of one CPU) and `pids.max`. The child
 *   joins it before `exec` through a tiny `sh` wrapper, so no process of the
 *   run ever runs outside it. An OOM kill is read back from `memory.events`.
 * - **rlimit** through `prlimit` (util-linux), which sets the limits on
 *   itself and `exec`s the command: memoryBytes → RLIMIT_AS (address space,
 *   not resident memory), pids → RLIMIT_NPROC (counted per *user*, and not
 *   applied at all to root). A CPU *rate* has no rlimit.
 *   Both wrappers `exec` the command themselves; the runner checks it first
 *   as `execve` would (`checkExec`, exec-check.ts), so that a limit changes
 *   neither whether a command runs nor the error it fails with.
 * - **none**: the limit cannot be enforced. A spec asking for it is rejected
 *   (400 naming the field) unless the agent runs with
 *   `--resource-limits=best-effort`.
 *
 * Detection may set the delegated cgroup up: if the controllers are not yet
 * enabled for children and the agent is the only process of its cgroup, it
 * moves itself into the leaf `tasklane-agent` and enables them (the usual
 * pattern for a systemd unit with `Delegate=yes`).
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { invalid } from "../errors.ts";
import type { Resources } from "../tasks/model.ts";
import type { RunResult } from "./run-process.ts";

/** How a resource is limited on this host. */
export type LimitMechanism = "cgroup" | "rlimit" | "none";
export type LimitedResource = "memory" | "cpu" | "pids";

/** What is enforced, per resource (reported in /api/v1/info `resourceLimits`). */
export type LimitSupport = Record<LimitedResource, LimitMechanism>;

/** How a finished run relates to its limits. */
export interface LimitOutcome {
  /** The run was killed because of a limit (e.g. "killed: memory limit 64MiB exceeded"); the run failed because of it. */
  limitError?: string;
  /** Context appended to the error of a failed run (e.g. which rlimits applied). */
  limitNote?: string;
}

/** Limits applied to one run. */
export interface LimitedRun {
  /** Wrap the command line so the limits apply before the command starts. */
  argv(argv: readonly string[]): string[];
  /** After the run: explain a limit kill and release the cgroup. Never rejects. */
  finish(result: RunResult): Promise<LimitOutcome>;
}

export interface ResourceLimiter {
  readonly mode: "strict" | "best-effort";
  readonly support: Readonly<LimitSupport>;
  /** Why a resource is not limited by a cgroup, for the info document and errors. */
  readonly notes: Readonly<Partial<Record<LimitedResource, string>>>;
  /** The delegated cgroup in use, if any. */
  readonly cgroupDir: string | undefined;
  /** In strict mode, throw `InvalidRequest` naming the first requested limit that cannot be enforced. */
  check(resources: Resources | undefined): void;
  /** Limits for one run (`runId` is unique per attempt); undefined when there is nothing to apply. */
  prepare(runId: string, resources: Resources | undefined): LimitedRun | undefined;
}

export interface ResourceLimiterOptions {
  mode: "strict" | "best-effort";
  /** Delegated cgroup v2 directory; default: the agent's own cgroup, found through /proc/self/{cgroup,mountinfo}. */
  cgroupDir?: string;
  /** Do not look for a cgroup at all (tests of the rlimit path). */
  noCgroup?: boolean;
  /** Path of `prlimit`, or null for none; default: looked up on PATH. */
  prlimit?: string | null;
  /** Path of `sh` for the cgroup wrapper; default: looked up on PATH. */
  sh?: string | null;
  /** Effective uid (RLIMIT_NPROC does not apply to 0); default: process.geteuid(). */
  euid?: number;
  /** Pid moved into the `tasklane-agent` leaf when enabling controllers; default: this process. */
  pid?: number;
}

const RESOURCES: readonly LimitedResource[] = ["memory", "cpu", "pids"];
const FIELD: Record<LimitedResource, keyof Resources> = { memory: "memoryBytes", cpu: "cpuMillis", pids: "pids" };
const CGROUP_PREFIX = "tasklane-";
const AGENT_LEAF = "tasklane-agent";
const CPU_PERIOD_US = 100_000;
/** Exit status of the cgroup wrapper when it cannot join the run's cgroup. */
export const CGROUP_JOIN_FAILED = 125;

/** `64MiB`, `1GiB`, `1536KiB`, or plain bytes. */
export function formatBytes(n: number): string {
  for (const [unit, size] of [["GiB", 1 << 30], ["MiB", 1 << 20], ["KiB", 1 << 10]] as const) {
    if (n >= size && n % size === 0) return `${n / size}${unit}`;
  }
  return `${n} bytes`;
}

function errText(err: unknown): string {
  if (typeof err === "object" && err !== null && "code" in err) return String(err.code);
  return err instanceof Error ? err.message : String(err);
}

function tryRead(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/** Words of a cgroup list file (`cgroup.controllers`, `cgroup.subtree_control`), `+` prefixes dropped. */
function words(text: string | undefined): Set<string> {
  return new Set((text ?? "").split(/\s+/).filter(Boolean).map((w) => w.replace(/^\+/, "")));
}

/** `key value` lines of a cgroup events file (`memory.events`, `pids.events`). */
function counter(text: string | undefined, key: string): number {
  const m = new RegExp(`^${key} (\\d+)$`, "m").exec(text ?? "");
  return m ? Number(m[1]) : 0;
}

/** The agent's cgroup v2 directory from /proc/self/cgroup and /proc/self/mountinfo, if there is one. */
function ownCgroupDir(): string | undefined {
  const self = tryRead("/proc/self/cgroup");
  const path = self?.split("\n").find((l) => l.startsWith("0::"))?.slice(3);
  if (path === undefined) return undefined;
  for (const line of (tryRead("/proc/self/mountinfo") ?? "").split("\n")) {
    const [left, right] = line.split(" - ");
    if (!left || !right || right.split(" ")[0] !== "cgroup2") continue;
    const fields = left.split(" ");
    const root = fields[3] ?? "/";
    const mount = fields[4];
    if (!mount) continue;
    if (root !== "/" && !path.startsWith(root)) continue;
    return resolve(join(mount, root === "/" ? path : path.slice(root.length)));
  }
  return undefined;
}

/** Make `dir` usable for per-run child cgroups; returns the controllers usable there, or why none is. */
function setUpCgroup(dir: string, pid: number): { controllers: Set<string> } | { reason: string } {
  const available = words(tryRead(join(dir, "cgroup.controllers")));
  const wanted = RESOURCES.filter((r) => available.has(r));
  if (wanted.length === 0) {
    return { reason: `cgroup v2 ${dir} offers none of the memory, cpu, pids controllers (not delegated, or they sit on a cgroup v1 hierarchy)` };
  }
  try {
    let enabled = words(tryRead(join(dir, "cgroup.subtree_control")));
    const missing = wanted.filter((c) => !enabled.has(c));
    if (missing.length > 0) {
      const procs = (tryRead(join(dir, "cgroup.procs")) ?? "").split(/\s+/).filter(Boolean);
      if (procs.some((p) => p !== String(pid))) {
        return { reason: `cgroup v2 ${dir} holds other processes, so its controllers cannot be enabled for children (delegate a cgroup to the agent, e.g. systemd Delegate=yes)` };
      }
      if (procs.length > 0) {
        mkdirSync(join(dir, AGENT_LEAF), { recursive: true });
        writeFileSync(join(dir, AGENT_LEAF, "cgroup.procs"), String(pid));
      }
      // One controller per write: one that cannot be enabled must not keep the others off.
      for (const c of missing) {
        try {
          writeFileSync(join(dir, "cgroup.subtree_control"), `+${c} `, { flag: "a" });
        } catch {
          // reported below as "not enabled"
        }
      }
      enabled = words(tryRead(join(dir, "cgroup.subtree_control")));
    }
    const probe = join(dir, `${CGROUP_PREFIX}probe-${process.pid}`);
    mkdirSync(probe);
    rmdirSync(probe);
    const controllers = new Set(wanted.filter((c) => enabled.has(c)));
    return controllers.size > 0 ? { controllers } : { reason: `cgroup v2 ${dir}: controllers could not be enabled for children` };
  } catch (err) {
    return { reason: `cgroup v2 ${dir} is not writable by the agent (${errText(err)})` };
  }
}

/** Kill what is left in stale per-run cgroups of an earlier agent and remove them. */
function sweepStale(dir: string): void {
  let names: string[] = [];
  try {
    names = readdirSync(dir).filter((n) => n.startsWith(`${CGROUP_PREFIX}tsk_`));
  } catch {
    return;
  }
  for (const n of names) {
    try {
      writeFileSync(join(dir, n, "cgroup.kill"), "1");
    } catch {
      // older kernels have no cgroup.kill; the supervisor kills leftover groups anyway
    }
    try {
      rmdirSync(join(dir, n));
    } catch {
      // still busy: left for the next start
    }
  }
}

async function removeCgroup(dir: string): Promise<void> {
  try {
    writeFileSync(join(dir, "cgroup.kill"), "1");
  } catch {
    // no cgroup.kill (kernel < 5.14) or already gone
  }
  for (let i = 0; i < 100; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch (err) {
      if (errText(err) === "ENOENT") return;
      if (errText(err) !== "EBUSY") return;
    }
    await Bun.sleep(10); // the last members are still exiting
  }
}

/** Detect what can be enforced here and create the limiter. Performs the cgroup set-up described above. */
export function createResourceLimiter(opts: ResourceLimiterOptions): ResourceLimiter {
  const euid = opts.euid ?? process.geteuid?.() ?? -1;
  const prlimit = opts.prlimit === undefined ? (Bun.which("prlimit") ?? null) : opts.prlimit;
  const sh = opts.sh === undefined ? (Bun.which("sh") ?? null) : opts.sh;
  const notes: Partial<Record<LimitedResource, string>> = {};
  const support: LimitSupport = { memory: "none", cpu: "none", pids: "none" };

  let cgroupDir: string | undefined;
  let cgroupReason = "no cgroup v2 hierarchy found";
  if (opts.noCgroup) cgroupReason = "cgroups not used";
  else if (!sh) cgroupReason = "no sh to join a cgroup with";
  else {
    const dir = opts.cgroupDir ?? ownCgroupDir();
    if (dir !== undefined) {
      const r = setUpCgroup(dir, opts.pid ?? process.pid);
      if ("controllers" in r) {
        cgroupDir = dir;
        for (const c of r.controllers) support[c as LimitedResource] = "cgroup";
        sweepStale(dir);
        cgroupReason = `controller not enabled in cgroup v2 ${dir}`;
      } else cgroupReason = r.reason;
    }
  }

  if (support.memory === "none") {
    if (prlimit) {
      support.memory = "rlimit";
      notes.memory = `RLIMIT_AS via prlimit (address space, not resident memory; ${cgroupReason})`;
    } else notes.memory = `${cgroupReason}; no prlimit for RLIMIT_AS`;
  }
  if (support.cpu === "none") notes.cpu = `${cgroupReason}; a CPU rate has no rlimit`;
  if (support.pids === "none") {
    if (!prlimit) notes.pids = `${cgroupReason}; no prlimit for RLIMIT_NPROC`;
    else if (euid === 0) notes.pids = `${cgroupReason}; RLIMIT_NPROC does not apply to root`;
    else {
      support.pids = "rlimit";
      notes.pids = `RLIMIT_NPROC via prlimit (counts every process of the agent's user; ${cgroupReason})`;
    }
  }

  const requested = (res: Resources | undefined) => RESOURCES.filter((r) => res?.[FIELD[r]] !== undefined);

  return {
    mode: opts.mode,
    support,
    notes,
    cgroupDir,

    check(resources) {
      if (opts.mode !== "strict") return;
      for (const r of requested(resources)) {
        if (support[r] === "none") {
          throw invalid(
            `spec.resources.${FIELD[r]}: cannot be enforced on this host (${notes[r]}); start the agent with --resource-limits=best-effort to accept limits it cannot enforce`,
          );
        }
      }
    },

    prepare(runId, resources) {
      const wanted = requested(resources).filter((r) => support[r] !== "none");
      if (wanted.length === 0 || !resources) return undefined;
      const rlimitArgs: string[] = [];
      const rlimited: string[] = [];
      if (support.memory === "rlimit" && resources.memoryBytes !== undefined) {
        rlimitArgs.push(`--as=${resources.memoryBytes}`);
        rlimited.push(`memory ${formatBytes(resources.memoryBytes)} (RLIMIT_AS)`);
      }
      if (support.pids === "rlimit" && resources.pids !== undefined) {
        rlimitArgs.push(`--nproc=${resources.pids}`);
        rlimited.push(`pids ${resources.pids} (RLIMIT_NPROC)`);
      }

      const useCgroup = cgroupDir !== undefined && wanted.some((r) => support[r] === "cgroup");
      const dir = useCgroup ? join(cgroupDir!, `${CGROUP_PREFIX}${runId}`) : undefined;
      let setupError: string | undefined;
      if (dir) {
        try {
          mkdirSync(dir);
          if (support.memory === "cgroup" && resources.memoryBytes !== undefined) {
            writeFileSync(join(dir, "memory.max"), String(resources.memoryBytes));
            if (existsSync(join(dir, "memory.swap.max"))) writeFileSync(join(dir, "memory.swap.max"), "0");
            if (existsSync(join(dir, "memory.oom.group"))) writeFileSync(join(dir, "memory.oom.group"), "1");
          }
          if (support.cpu === "cgroup" && resources.cpuMillis !== undefined) {
            const quota = Math.max(1000, Math.round((resources.cpuMillis * CPU_PERIOD_US) / 1000));
            writeFileSync(join(dir, "cpu.max"), `${quota} ${CPU_PERIOD_US}`);
          }
          if (support.pids === "cgroup" && resources.pids !== undefined) writeFileSync(join(dir, "pids.max"), String(resources.pids));
        } catch (err) {
          setupError = `cannot apply resource limits: cgroup ${dir}: ${errText(err)}`;
        }
      }

      return {
        argv(argv) {
          let out = [...argv];
          if (dir) {
            // Join the cgroup, then exec: the pid (and so the process group) stays the same.
            const script = `echo $$ > "$1/cgroup.procs" || { echo "tasklane: cannot join cgroup $1" >&2; exit ${CGROUP_JOIN_FAILED}; }; shift; exec "$@"`;
            out = [sh!, "-c", script, "tasklane-cgroup", dir, ...out];
          }
          if (rlimitArgs.length > 0) out = [prlimit!, ...rlimitArgs, "--", ...out];
          return out;
        },

        async finish(result) {
          const outcome: LimitOutcome = {};
          if (setupError !== undefined) outcome.limitError = setupError;
          else if (dir && result.stoppedBy === undefined && result.spawnError === undefined) {
            if (resources.memoryBytes !== undefined && counter(tryRead(join(dir, "memory.events")), "oom_kill") > 0) {
              outcome.limitError = `killed: memory limit ${formatBytes(resources.memoryBytes)} exceeded`;
            } else if (resources.pids !== undefined && counter(tryRead(join(dir, "pids.events")), "max") > 0) {
              outcome.limitNote = `pids limit ${resources.pids} reached`;
            }
          }
          // A run that never started (bad cwd, not executable) did not run under anything.
          if (outcome.limitError === undefined && outcome.limitNote === undefined && rlimited.length > 0 && result.spawnError === undefined) {
            outcome.limitNote = `ran under ${rlimited.join(", ")}`;
          }
          if (dir) await removeCgroup(dir);
          return outcome;
        },
      };
    },
  };
}
