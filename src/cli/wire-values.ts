/**
 * The enum values of the REST shape that the client needs at run time.
 * They mirror `tasks/model.ts`, which the client imports for types only:
 * loading it at run time would pull in TypeBox and make every client command
 * start several times slower. test/cli/cli-units.test.ts asserts the copies match.
 */
import type { Jitter, Phase, WellKnownRuntime } from "../tasks/model.ts";

/** Task phases, in lifecycle order. */
export const PHASES: readonly Phase[] = ["pending", "running", "succeeded", "failed", "timeout", "canceled", "exhausted"];

const TERMINAL: ReadonlySet<Phase> = new Set(["succeeded", "failed", "timeout", "canceled", "exhausted"]);

/** Whether the task will not run again (unless restarted explicitly). */
export function isTerminal(phase: Phase): boolean {
  return TERMINAL.has(phase);
}

/** Script runtimes the agent knows by name. */
export const WELL_KNOWN_RUNTIMES: readonly WellKnownRuntime[] = ["bash", "python", "node"];

/** Backoff jitter strategies. */
export const JITTERS: readonly Jitter[] = ["none", "full", "equal", "decorrelated"];
