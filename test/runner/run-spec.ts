/** What the runner tests share: the shell, the process-tree fixture, a run spec with defaults, a temp dir. */
import { afterAll } from "bun:test";
import { mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RunSpec } from "../../src/runner/run-process.ts";
import type { LineCollector } from "./line-collector.ts";

export const BASH = Bun.which("bash")!;
export const FIXTURES = join(import.meta.dir, "..", "fixtures");
/** Leader + background grandchild that writes its pid to a file (see the script). */
export const TREE = join(FIXTURES, "runner-tree.sh");

/** `bash -c script`. */
export const sh = (script: string): string[] => [BASH, "-c", script];

/** A run of `argv` into `out`: PATH only, no timeout, 5 s kill grace, 16 KiB lines; `extra` overrides. */
export function runSpec(argv: string[], out: LineCollector, extra: Partial<RunSpec> = {}): RunSpec {
  return {
    argv,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
    timeoutMs: 0,
    killGraceMs: 5_000,
    maxLineBytes: 16 * 1024,
    onLines: out.onLines,
    ...extra,
  };
}

/** A temp dir (real path) removed after the calling test file; `file(name)` gives a fresh path in it. */
export function runnerTempDir(prefix: string): { path: string; file(name: string): string } {
  const path = realpathSync(mkdtempSync(join(tmpdir(), prefix)));
  afterAll(() => rmSync(path, { recursive: true, force: true }));
  let seq = 0;
  return { path, file: (name) => join(path, `${name}-${++seq}`) };
}
