/**
 * A progress indicator on stderr for waits longer than a moment. It only
 * draws on a terminal, appears after a short delay (so quick waits stay
 * silent) and erases itself on `stop()`.
 */
import type { Output } from "./output.ts";

const FRAMES = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/** A running spinner. */
export interface Spinner extends Disposable {
  /** Erase the spinner (idempotent); resolves when the erase is written. */
  stop(): Promise<void>;
}

/** Start a spinner on `err` with `text`; inert unless `err` is a TTY. */
export function startSpinner(err: Output, text: string, opts: { delayMs?: number; intervalMs?: number } = {}): Spinner {
  if (!err.isTTY) return { stop: async () => {}, [Symbol.dispose]() {} };
  let frame = 0;
  let shown = false;
  let interval: ReturnType<typeof setInterval> | undefined;
  const draw = () => {
    shown = true;
    void err.write(`\r\x1b[2K${FRAMES[frame++ % FRAMES.length]} ${text}`);
  };
  const delay = setTimeout(() => {
    draw();
    interval = setInterval(draw, opts.intervalMs ?? 80);
  }, opts.delayMs ?? 300);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    clearTimeout(delay);
    clearInterval(interval);
    if (shown) await err.write("\r\x1b[2K");
  };
  return {
    stop,
    [Symbol.dispose]() {
      void stop();
    },
  };
}
