/**
 * The executables under test, each compiled once per bench run into a temp
 * dir: tasklane itself (`build.ts`, or `$TASKLANE_BIN` when set) and the
 * baselines that must be "the same binary kind" — a compiled hello-world
 * Elysia and a compiled bare grpc-js echo server.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "../..");
let outDir: string | undefined;
const cache = new Map<string, Promise<string>>();

function dir(): string {
  if (outDir === undefined) {
    const made = mkdtempSync(join(tmpdir(), "tasklane-bench-bin-"));
    // The executables (≈ 110 MiB each) go with the bench process.
    process.once("exit", () => rmSync(made, { recursive: true, force: true }));
    outDir = made;
  }
  return outDir;
}

function once(key: string, build: () => Promise<string>): Promise<string> {
  let p = cache.get(key);
  if (!p) {
    p = build();
    cache.set(key, p);
  }
  return p;
}

/** Compile `entry` (relative to the repo root) like build.ts does: minified, bytecode, blind to cwd config files. */
async function compile(entry: string, name: string): Promise<string> {
  const outfile = join(dir(), name);
  const result = await Bun.build({
    entrypoints: [join(ROOT, entry)],
    minify: true,
    bytecode: true,
    format: "esm",
    target: "bun",
    sourcemap: "none",
    compile: { outfile, autoloadDotenv: false, autoloadBunfig: false, autoloadTsconfig: false, autoloadPackageJson: false },
  });
  if (!result.success) throw new Error(`cannot compile ${entry}: ${result.logs.map(String).join("\n")}`);
  return outfile;
}

/** The tasklane executable: `$TASKLANE_BIN`, or build.ts run into a temp dir. */
export function tasklaneBinary(): Promise<string> {
  return once("tasklane", async () => {
    const fromEnv = process.env.TASKLANE_BIN;
    if (fromEnv) return resolve(fromEnv);
    const out = join(dir(), "tasklane");
    const p = Bun.spawn([process.execPath, "build.ts", out], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    const [code, stderr] = await Promise.all([p.exited, new Response(p.stderr).text()]);
    if (code !== 0) throw new Error(`build.ts failed: ${stderr}`);
    return out;
  });
}

/** Compiled hello-world Elysia (bench/fixtures/hello-elysia.ts). */
export function helloBinary(): Promise<string> {
  return once("hello", () => compile("bench/fixtures/hello-elysia.ts", "hello-elysia"));
}

/** Compiled bare grpc-js echo server (bench/fixtures/grpc-echo.ts). */
export function grpcEchoBinary(): Promise<string> {
  return once("echo", () => compile("bench/fixtures/grpc-echo.ts", "grpc-echo"));
}

/** Compiled minimal REST spawner, with or without tasklane's store (bench/fixtures/rest-spawner.ts). */
export function restSpawnerBinary(): Promise<string> {
  return once("spawner", () => compile("bench/fixtures/rest-spawner.ts", "rest-spawner"));
}
