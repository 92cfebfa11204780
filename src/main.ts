#!/usr/bin/env bun
/**
 * Entry point and the only module with side effects: `tasklane [serve]`
 * starts the agent; any other first word is a client command (route-args.ts).
 */
import { ConfigError, parseConfig, serveHelp } from "./config.ts";
import { flushStderr } from "./observability/logger.ts";
import { showAddress } from "./auth/listen-policy.ts";
import { routeArgs } from "./route-args.ts";
import { VERSION } from "./version.ts";

/**
 * The compiled executable starts with JavaScriptCore's tier-up thresholds
 * scaled up (build.ts, `jitPolicy`): start-up code runs once, and compiling it
 * anyway took the JIT threads a third of the start-up's CPU. Once the agent
 * serves, or a client command is loaded, the normal policy applies. From
 * source (tests, `bun src/main.ts`) the policy is already normal and this
 * changes nothing.
 */
function interactive(): void {
  Bun.unsafe.setJITPolicy(1);
}

/** Signals that stop the agent gracefully (the first one) or hurry the stop (any later one). */
const STOP_SIGNALS = ["SIGTERM", "SIGINT", "SIGHUP"] as const;

async function serve(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(serveHelp());
    return 0;
  }
  if (args.includes("--version")) {
    console.log(`tasklane ${VERSION}`);
    return 0;
  }
  let config;
  try {
    config = parseConfig(args, process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`tasklane: ${err.message}`);
      return 2;
    }
    throw err;
  }
  // Loaded here, not at the top: client commands should not pay for the agent's module graph.
  const { createAgent } = await import("./agent.ts");
  const agent = createAgent(config);
  // Signals are handled from before the start: a stop asked for while the agent starts (a
  // supervisor's SIGTERM right after the listening line, or during a long recovery) waits for
  // the start to settle, then stops the agent as any stop does. SIGHUP (the terminal went away)
  // stops it the same way. They stay handled until the process ends: a second one (Ctrl-C
  // twice) kills the tasks' processes at once instead of ending the agent with them still running.
  const stopAsked = Promise.withResolvers<void>();
  let asked = false;
  const onSignal = () => {
    if (asked) return agent.hurry();
    asked = true;
    stopAsked.resolve();
  };
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
  try {
    await agent.start();
  } catch (err) {
    await agent.stop().catch(() => {});
    flushStderr(); // the agent's log lines first, the reason it stops last
    if (err instanceof ConfigError) {
      console.error(`tasklane: ${err.message}`);
      return 2;
    }
    console.error(`tasklane: cannot start: ${(err as Error).message}`);
    return 1;
  }
  interactive();
  if (!asked) {
    console.log(
      `tasklane listening http=${showAddress({ host: config.httpAddr.host, port: agent.httpPort })} grpc=${showAddress({ host: config.grpcAddr.host, port: agent.grpcPort })}`,
    );
  }
  // The store could not take the start's own writes (a full disk): no work can be done; stop with an error.
  const unwritable = agent.startupWrites().then(
    () => new Promise<Error>(() => {}),
    (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
  );
  const failed = await Promise.race([stopAsked.promise.then(() => undefined), unwritable]);
  if (failed !== undefined) {
    await agent.stop().catch(() => {});
    flushStderr(); // the reason last, after the agent's own lines
    console.error(`tasklane: cannot start: the store cannot be written (${failed.message})`);
    return 1;
  }
  try {
    await agent.stop();
    return 0;
  } catch (err) {
    flushStderr();
    console.error(`tasklane: shutdown failed: ${(err as Error).message}`);
    return 1;
  }
}

async function client(cmd: string, args: string[]): Promise<number> {
  const { runCli } = await import("./cli/cli.ts");
  interactive();
  return runCli(cmd, args, process.env);
}

const route = routeArgs(process.argv.slice(2));
const code = route.kind === "serve" ? await serve(route.args) : await client(route.cmd, route.args);
process.exit(code);
