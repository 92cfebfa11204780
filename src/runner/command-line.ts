/**
 * Turns a task's mode (command or script) into the argv of a run.
 *
 * Executables and interpreters are resolved to absolute paths once and cached:
 * a version-manager shim on PATH (pyenv, nvm, asdf) can add ~100 ms to every
 * start. Script bodies travel as a private file (`<scriptDir>/<taskId>.<ext>`,
 * mode 0600), never on the command line, so there is no argv size limit.
 */
import { existsSync, unlinkSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { isAbsolute, join, resolve } from "node:path";
import type { CommandMode, ScriptMode, ScriptRuntime } from "../tasks/model.ts";
import { clip } from "../errors.ts";

/** Where a run looks for its command: its working directory and its `PATH` (both default to the agent's). */
export interface LookupContext {
  cwd?: string;
  path?: string;
}

/** Resolves executable names to absolute paths. */
export interface CommandResolver {
  /**
   * Absolute path of `name`: a bare name is looked up on `ctx.path` (the run's
   * PATH, else the agent's); a name with '/' is taken relative to `ctx.cwd` (the
   * run's working directory, else the agent's), as a shell in that directory
   * would; undefined if not found.
   */
  which(name: string, ctx?: LookupContext): string | undefined;
}

/** How long a path found to exist is taken as existing without another `stat`. */
const PATH_SEEN_MS = 1000;

/**
 * Creates a resolver that caches `Bun.which` hits. Misses are not cached, so
 * an interpreter installed while the agent runs is found on the next start.
 * A path (a name with '/') found to exist is not checked again for a second:
 * a task run many times a second costs one `stat` per second, and a file
 * removed meanwhile fails at the spawn instead (`executable not found`).
 */
export function createCommandResolver(now: () => number = () => performance.now()): CommandResolver {
  const cache = new Map<string, string>();
  const seen = new Map<string, number>();
  return {
    which(name, ctx = {}) {
      if (name.includes("/")) {
        const path = isAbsolute(name) ? name : resolve(ctx.cwd ?? process.cwd(), name);
        const t = now();
        const at = seen.get(path);
        if (at !== undefined && t - at < PATH_SEEN_MS) return path;
        if (!existsSync(path)) {
          seen.delete(path);
          return undefined;
        }
        if (seen.size >= 1024) seen.clear();
        seen.set(path, t);
        return path;
      }
      // The agent's own PATH is the common case: keyed by the name alone.
      const own = ctx.path === undefined || ctx.path === process.env.PATH;
      const key = own ? name : `${ctx.path}\u0000${name}`;
      const hit = cache.get(key);
      if (hit !== undefined) return hit;
      let found: string | undefined;
      try {
        found = (own ? Bun.which(name) : Bun.which(name, { PATH: ctx.path ?? "" })) ?? undefined;
      } catch {
        return undefined; // a name the lookup refuses (e.g. longer than a path may be) is not found
      }
      if (found !== undefined) {
        if (cache.size >= 1024) cache.clear();
        cache.set(key, found);
      }
      return found;
    },
  };
}

/** The interpreter command for a script runtime (the custom runtime's `flag` is not used). */
export function interpreterFor(runtime: ScriptRuntime): string {
  if (typeof runtime === "object") return runtime.custom.command;
  switch (runtime) {
    case "bash":
      return "bash";
    case "python":
      return "python3";
    case "node":
      return "node";
  }
}

/** Outcome of {@link prepareArgv}: an argv to run, or a human-readable reason the run cannot start. */
export type PreparedArgv = { ok: true; argv: string[]; scriptPath?: string } | { ok: false; error: string };

/**
 * The script file's extension: the runtime's usual one, which interpreters may
 * read (node decides CommonJS or ES module for a `.js` file by its syntax, and
 * refuses ES modules in a file with an extension it does not know); `script`
 * for a custom interpreter, whose conventions the agent cannot know.
 */
function extensionOf(runtime: ScriptRuntime): string {
  if (typeof runtime === "object") return "script";
  switch (runtime) {
    case "bash":
      return "sh";
    case "python":
      return "py";
    case "node":
      return "js";
  }
}

/** The name every script file had before extensions followed the runtime (removed with the task). */
const LEGACY_EXTENSION = "script";

/** Path of the script file of a task. */
export function scriptPathOf(scriptDir: string, taskId: string, runtime: ScriptRuntime): string {
  return join(scriptDir, `${taskId}.${extensionOf(runtime)}`);
}

function isSafeFileStem(taskId: string): boolean {
  return taskId !== "" && taskId !== "." && taskId !== ".." && !/[/\0]/.test(taskId);
}

/**
 * Builds the argv of a run. Command mode: `[resolved command, ...args]`.
 * Script mode: writes the decoded body to `<scriptDir>/<taskId>.<ext>` (see `extensionOf`)
 * (mode 0600; `scriptDir` created 0700 if missing; rewritten on every call so
 * crash recovery can recreate it) and returns `[resolved interpreter, file, ...args]`.
 * Failures (unknown command, missing interpreter, unwritable file) are results, not throws.
 */
export async function prepareArgv(
  mode: CommandMode | ScriptMode,
  opts: { taskId: string; scriptDir: string; resolver: CommandResolver; lookup?: LookupContext },
): Promise<PreparedArgv> {
  if ("command" in mode) {
    const { command, args } = mode.command;
    const resolved = opts.resolver.which(command, opts.lookup);
    if (resolved === undefined) return { ok: false, error: `command not found: ${clip(command)}` };
    return { ok: true, argv: [resolved, ...args] };
  }
  const { runtime, body, args } = mode.script;
  const interpreter = interpreterFor(runtime);
  const resolved = opts.resolver.which(interpreter, opts.lookup);
  if (resolved === undefined) return { ok: false, error: `interpreter ${clip(interpreter)} not found on PATH` };
  if (!isSafeFileStem(opts.taskId)) return { ok: false, error: `invalid task id for a script file: ${opts.taskId}` };
  const scriptPath = scriptPathOf(opts.scriptDir, opts.taskId, runtime);
  try {
    await mkdir(opts.scriptDir, { recursive: true, mode: 0o700 });
    // A fresh inode each time: a process still reading an older copy (bash reads
    // scripts lazily) keeps its bytes, and the mode is set at creation.
    await rm(scriptPath, { force: true });
    await writeFile(scriptPath, Buffer.from(body, "base64"), { mode: 0o600, flag: "wx" });
  } catch (err) {
    return { ok: false, error: `cannot write script file ${scriptPath}: ${err instanceof Error ? err.message : String(err)}` };
  }
  return { ok: true, argv: [resolved, scriptPath, ...args], scriptPath };
}

/**
 * Removes the script file of a task in script mode (also under the name older
 * agents gave it); a file that is already gone is fine, a command task has none.
 */
export function removeScript(scriptDir: string, taskId: string, mode: CommandMode | ScriptMode): void {
  if (!("script" in mode)) return;
  const path = scriptPathOf(scriptDir, taskId, mode.script.runtime);
  for (const file of new Set([path, join(scriptDir, `${taskId}.${LEGACY_EXTENSION}`)])) {
    try {
      unlinkSync(file);
    } catch (err) {
      if (!(typeof err === "object" && err !== null && "code" in err && err.code === "ENOENT")) throw err;
    }
  }
}
