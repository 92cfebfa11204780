/**
 * A real JSON logger (createLogger) whose lines are collected in memory, so
 * tests can assert on the agent's structured logs.
 */
import { createLogger, type Logger } from "../../src/observability/logger.ts";

/** A parsed JSON log line. */
export type LogLine = { ts: string; level: string; msg: string } & Record<string, unknown>;

/** A logger at debug level plus the lines it wrote (each checked to be one JSON object per line). */
export function collectLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = createLogger({
    level: "debug",
    format: "json",
    write(text) {
      if (!text.endsWith("\n") || text.indexOf("\n") !== text.length - 1) throw new Error(`not one line: ${JSON.stringify(text)}`);
      lines.push(JSON.parse(text) as LogLine);
    },
  });
  return { logger, lines };
}
