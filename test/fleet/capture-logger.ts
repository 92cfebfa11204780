/**
 * A real JSON logger whose lines are kept, so tests can count log lines and
 * wait for one to appear (a state, not a time).
 */
import { createLogger, type Logger } from "../../src/observability/logger.ts";

export interface LogLine {
  level: string;
  msg: string;
  [field: string]: unknown;
}

export interface CapturedLogs {
  logger: Logger;
  lines: LogLine[];
  /** Lines whose `msg` starts with `prefix`. */
  matching(prefix: string): LogLine[];
  /** Resolves once `count` lines starting with `prefix` were logged. */
  waitFor(prefix: string, count?: number): Promise<LogLine>;
}

export function captureLogs(): CapturedLogs {
  const lines: LogLine[] = [];
  const waiters: Array<() => void> = [];
  const matching = (prefix: string) => lines.filter((l) => l.msg.startsWith(prefix));
  const logger = createLogger({
    level: "debug",
    format: "json",
    write: (line) => {
      lines.push(JSON.parse(line) as LogLine);
      for (const w of [...waiters]) w();
    },
  });
  return {
    logger,
    lines,
    matching,
    waitFor(prefix, count = 1) {
      return new Promise((resolve) => {
        const check = () => {
          const m = matching(prefix);
          if (m.length < count) return false;
          resolve(m[count - 1]!);
          return true;
        };
        if (check()) return;
        const w = () => {
          if (check()) waiters.splice(waiters.indexOf(w), 1);
        };
        waiters.push(w);
      });
    },
  };
}
