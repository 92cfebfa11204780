/**
 * Renders live-log events (CONTRACT §3) for `logs` and `run`: task stdout
 * lines to our stdout, stderr lines to our stderr, in arrival order. Attempt
 * markers and "lagged" notices go to stderr, prefixed `tasklane:`. In JSON
 * mode every event is one line of JSON on stdout (NDJSON) carrying its `id`;
 * a lagged notice is still said on stderr too, so lost output is never silent.
 */
import type { LogItem } from "./api-client.ts";
import { formatDuration } from "./format.ts";
import type { Output } from "./output.ts";

export interface LogPrinterOptions {
  out: Output;
  err: Output;
  json: boolean;
  /** Which attempt markers to print: all starts/finishes, only retries (attempt > 1), or none. */
  markers: "all" | "retries" | "none";
}

/**
 * What a `lagged` event means to the user: output the agent no longer had
 * when it could send it (it keeps the last `--log-retain` events of a task).
 * The count is of log events: lines, plus any attempt markers among them.
 */
export function laggedNotice(skipped: number): string {
  return skipped === 1
    ? "tasklane: 1 line of output was not retained by the agent"
    : `tasklane: ${skipped} lines of output were not retained by the agent`;
}

/** A printer whose `print` resolves once the event is written. */
export function createLogPrinter(opts: LogPrinterOptions): { print(item: LogItem): Promise<void> } {
  const started = new Map<number, number>();
  return {
    async print(item) {
      const e = item.event;
      if (opts.json) {
        await opts.out.line(JSON.stringify({ id: item.id, ...e }));
        if (e.type === "lagged") await opts.err.line(laggedNotice(e.skipped));
        return;
      }
      switch (e.type) {
        case "chunk":
          await (e.stream === "stderr" ? opts.err : opts.out).line(e.line);
          return;
        case "runStarted":
          started.set(e.attempt, e.startedAt);
          if (opts.markers === "all" || (opts.markers === "retries" && e.attempt > 1)) {
            await opts.err.line(`tasklane: --- attempt ${e.attempt} started ---`);
          }
          return;
        case "runFinished": {
          if (opts.markers !== "all") return;
          const from = started.get(e.attempt);
          const took = from !== undefined ? ` after ${formatDuration(e.finishedAt - from)}` : "";
          // No exit code: killed by a signal, never started, or lost with an agent restart (the run's error says which).
          const how = e.exitCode !== undefined ? `exited ${e.exitCode}` : "ended without an exit code";
          await opts.err.line(`tasklane: --- attempt ${e.attempt} ${how}${took} ---`);
          return;
        }
        case "lagged":
          await opts.err.line(laggedNotice(e.skipped));
          return;
      }
    },
  };
}
