/**
 * A real JSON logger (createLogger) whose lines are collected in memory, so
 * tests can assert on the agent's structured logs — and wait for a line
 * (event-driven) when it is written after the response, as request logs are.
 */
import { createLogger, type Logger } from "../../src/observability/logger.ts";

/** A parsed JSON log line. */
export type LogLine = { ts: string; level: string; msg: string } & Record<string, unknown>;

/** A logger at debug level, the lines it wrote (each checked to be one JSON object on one line), and a waiter. */
export function collectLogger(): { logger: Logger; lines: LogLine[]; waitFor(match: (l: LogLine) => boolean): Promise<LogLine> } {
  const lines: LogLine[] = [];
  const waiters = new Set<{ match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }>();
  const logger = createLogger({
    level: "debug",
    format: "json",
    write(text) {
      if (!text.endsWith("\n") || text.indexOf("\n") !== text.length - 1) throw new Error(`not one line: ${JSON.stringify(text)}`);
      const line = JSON.parse(text) as LogLine;
      lines.push(line);
      for (const w of waiters) {
        if (w.match(line)) {
          waiters.delete(w);
          w.resolve(line);
        }
      }
    },
  });
  return {
    logger,
    lines,
    waitFor(match) {
      const found = lines.find(match);
      if (found) return Promise.resolve(found);
      return new Promise((resolve) => waiters.add({ match, resolve }));
    },
  };
}
