/**
 * Applying one request to several task ids (`cancel ID…`, `rm ID…`): every
 * id is tried, each failure is reported with its id, and the exit status
 * says that something failed. Only an unreachable agent stops the loop:
 * the remaining ids would fail the same way, slowly.
 */
import { CliError, exitCodeOf } from "./cli-error.ts";
import type { CommandContext } from "./command.ts";

/** One id that failed, with the message that was printed for it. */
export interface IdFailure {
  id: string;
  error: string;
}

/** What happened to the ids. */
export interface EachIdResult {
  failed: IdFailure[];
  /** 0, or the exit status of the worst failure (1 API error, 3 agent unreachable). */
  code: number;
}

/**
 * Call `fn` for each id in order. Failures are printed on stderr as
 * `tasklane: <id>: <message>` (without the id prefix for a single id, or when
 * the message names the id already). An interrupt is rethrown at once.
 */
export async function forEachId(ctx: CommandContext, ids: readonly string[], fn: (id: string) => Promise<void>): Promise<EachIdResult> {
  const failed: IdFailure[] = [];
  let code = 0;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    try {
      await fn(id);
    } catch (err) {
      if (ctx.signal.aborted || !(err instanceof CliError)) throw err;
      const named = ids.length === 1 || err.message.includes(id) ? err.message : `${id}: ${err.message}`;
      await ctx.err.line(`tasklane: ${named}`);
      failed.push({ id, error: err.message });
      code = Math.max(code, exitCodeOf(err.kind));
      if (err.kind === "unreachable") {
        const rest = ids.slice(i + 1);
        if (rest.length > 0) {
          await ctx.err.line(`tasklane: not tried: ${rest.join(" ")}`);
          for (const other of rest) failed.push({ id: other, error: "not tried: the agent could not be reached" });
        }
        break;
      }
    }
  }
  return { failed, code };
}
