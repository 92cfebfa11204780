/**
 * Build the single executable `dist/tasklane`: bytecode-compiled, split into
 * chunks, laid out by a training run, minified (syntax only), and blind to any
 * `.env`, `bunfig.toml`, `tsconfig.json` or `package.json` in the directory
 * it is started from.
 *
 * Start-up time and idle memory (bench/README.md, benchmarks 10 and 8) decide
 * the options; each was measured on the agent:
 * - `bytecode`: start-up to /readyz ≈ 2.5x slower without it.
 * - `jitPolicy`: the executable starts with JavaScriptCore's tier-up
 *   thresholds scaled ×100, so code that runs once at start-up is not
 *   compiled by the JIT threads (a third of the start-up CPU, and the pages of
 *   the JIT compilers themselves); `src/main.ts` restores the normal policy
 *   once the agent serves or a client command is loaded.
 * - `bytecodeOrder`: the executable is built twice. The first build is started
 *   once (`serve` on a scratch data dir until ready, one client command
 *   against it) with `BUN_BYTECODE_ORDER_OUT`, which records the functions
 *   used; the second build puts their bytecode together at the front, so a
 *   start touches fewer pages of the executable. Without a recording (the
 *   training run failed) the build goes on unordered and says so.
 * - `splitting`: what `serve` does not load at start (the CLI, the fleet
 *   link, prom-client, grpc-js with the gRPC services until the first gRPC
 *   connection, reflection with protobufjs) goes into chunks of its own, whose
 *   code and node builtins are not touched at start.
 * - `ulid`: the executable takes the package's Web Crypto build. Its Node
 *   build imports node:crypto (≈ 1 ms of start-up) only to fall back on it;
 *   both use `crypto.getRandomValues` when it exists, which it does in Bun.
 * - `minify`: syntax only. Whitespace minification (a bundle of a few huge
 *   lines) made ≈ 1 MiB more of the executable resident, for no start-up gain.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { BunPlugin } from "bun";
import { VERSION } from "./src/version.ts";
import pkg from "./package.json" with { type: "json" };

/** JavaScriptCore tier-up threshold scale the executable starts with (src/main.ts resets it to 1). */
const START_JIT_POLICY = 100;
/** The training run gives up after this long (and the build goes on without a recording). */
const TRAINING_TIMEOUT_MS = 30_000;

if (pkg.version !== VERSION) {
  console.error(`build: package.json version ${pkg.version} differs from src/version.ts ${VERSION}`);
  process.exit(1);
}
const outfile = process.argv[2] ?? "dist/tasklane";

/** Resolve `ulid` to its Web Crypto build (see the header). */
const ulidWebCrypto: BunPlugin = {
  name: "ulid-web-crypto",
  setup(build) {
    const browserBuild = join(dirname(require.resolve("ulid/package.json")), "dist/browser/index.js");
    build.onResolve({ filter: /^ulid$/ }, () => ({ path: browserBuild }));
  },
};

async function compile(out: string, bytecodeOrder: string[] | undefined): Promise<void> {
  const result = await Bun.build({
    // The runner thread's module is an entry of its own (src/runner/run-thread.ts loads it by URL).
    entrypoints: ["./src/main.ts", "./src/runner/run-thread-worker.ts"],
    minify: { syntax: true, whitespace: false, identifiers: false },
    bytecode: true,
    splitting: true,
    format: "esm",
    target: "bun",
    sourcemap: "none",
    plugins: [ulidWebCrypto],
    compile: {
      outfile: out,
      autoloadDotenv: false,
      autoloadBunfig: false,
      autoloadTsconfig: false,
      autoloadPackageJson: false,
      jitPolicy: START_JIT_POLICY,
      bytecodeOrder: bytecodeOrder ?? null,
    },
  });
  if (!result.success) {
    for (const log of result.logs) console.error(log);
    throw new Error("bundling failed");
  }
}

/** A clean environment that makes the executable record the functions it uses into `order`. */
function recording(order: string): Record<string, string> {
  return { PATH: process.env.PATH ?? "/usr/bin:/bin", BUN_BYTECODE_ORDER_OUT: order };
}

/**
 * Start `bin serve` until it is ready and has answered /readyz, run one client
 * command against it, stop it with SIGTERM; returns the recordings
 * (`serve` first: the most common way of starting), or throws.
 */
async function train(bin: string, dir: string): Promise<string[]> {
  const serveOrder = join(dir, "serve.order");
  const cliOrder = join(dir, "cli.order");
  const agent = Bun.spawn([bin, "serve", "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--data-dir", join(dir, "data")], {
    env: recording(serveOrder),
    stdin: "ignore",
    stdout: "pipe",
    stderr: "ignore",
  });
  const timer = setTimeout(() => agent.kill("SIGKILL"), TRAINING_TIMEOUT_MS);
  try {
    let out = "";
    let http: string | undefined;
    for await (const chunk of agent.stdout) {
      out += new TextDecoder().decode(chunk);
      http = /tasklane listening http=(\S+)/.exec(out)?.[1];
      if (http) break;
    }
    if (!http) throw new Error(`the agent exited (${await agent.exited}) before listening`);
    const ready = await fetch(`http://${http}/readyz`);
    await ready.arrayBuffer();
    if (ready.status !== 200) throw new Error(`/readyz answered ${ready.status}`);
    const cli = Bun.spawn([bin, "ls", "--server", `http://${http}`], { env: recording(cliOrder), stdin: "ignore", stdout: "ignore", stderr: "ignore" });
    if ((await cli.exited) !== 0) throw new Error("tasklane ls failed");
    agent.kill("SIGTERM");
    if ((await agent.exited) !== 0) throw new Error("the agent did not stop cleanly");
  } finally {
    clearTimeout(timer);
    agent.kill("SIGKILL");
  }
  const orders = [serveOrder, cliOrder];
  for (const o of orders) if (!(await Bun.file(o).exists())) throw new Error(`no recording in ${o}`);
  return orders;
}

const scratch = mkdtempSync(join(tmpdir(), "tasklane-build-"));
let built = false;
try {
  const trainee = join(scratch, "tasklane");
  await compile(trainee, undefined);
  let orders: string[] | undefined;
  try {
    orders = await train(trainee, scratch);
  } catch (err) {
    console.error(`build: training run failed (${(err as Error).message}); building without a bytecode order`);
  }
  await compile(outfile, orders);
  built = true;
} catch (err) {
  console.error(`build: ${(err as Error).message}`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
if (!built) process.exit(1);
console.log(`built ${outfile}`);
