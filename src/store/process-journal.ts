/**
 * The processes started since the store's last commit, in a small file beside
 * the database (`<db>-procs`, one line per process: `pid pgid startTime`).
 *
 * A run's process identity is written to the store right after its spawn,
 * but commits come a little later (group commit: the next turn, or after the
 * fsync in flight). An agent killed in between (`kill -9`, OOM) would leave
 * a process that no stored run names, and recovery could not kill it: the
 * contract says no process of a task outlives it. So the identity also goes
 * to this file at once, one `write(2)` with `O_APPEND` and no fsync — what it
 * guards against is the agent's process dying, which keeps the page cache;
 * a machine that loses power loses the processes too. After a commit every
 * identity in the file is in the database, and the file is emptied.
 *
 * The next agent reads the file when it opens the store and kills what is
 * still alive of those processes like the leftovers of stored runs (only when
 * /proc confirms the recorded start time: see `killLeftoverGroup`).
 */
import { closeSync, ftruncateSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import type { RunProcess } from "../tasks/model.ts";

/** See the module comment. */
export interface ProcessJournal {
  /** The identities the file held when it was opened: a previous agent's processes whose runs may not be stored. */
  readonly leftovers: readonly RunProcess[];
  /** Record a process just started. Never throws (a journal that cannot be written only narrows what recovery finds). */
  append(p: RunProcess): void;
  /** Every identity appended so far is committed to the database: empty the file. Never throws. */
  committed(): void;
  /** Close the file, and remove it when it holds nothing (every run committed: a clean stop leaves no journal). */
  close(): void;
}

/** One line of the file: `pid pgid startTime` (`-` for no start time). */
function line(p: RunProcess): string {
  return `${p.pid} ${p.pgid} ${p.startTime ?? "-"}\n`;
}

/** The identities in `text`; lines that are not whole (a write cut short by the crash) are skipped. */
export function parseProcessJournal(text: string): RunProcess[] {
  const out: RunProcess[] = [];
  for (const l of text.split("\n")) {
    const m = /^(\d+) (\d+) (\d+|-)$/.exec(l);
    if (!m) continue;
    const pid = Number(m[1]);
    const pgid = Number(m[2]);
    if (pid < 1 || pgid < 1 || !Number.isSafeInteger(pid) || !Number.isSafeInteger(pgid)) continue;
    out.push(m[3] === "-" ? { pid, pgid } : { pid, pgid, startTime: m[3] as string });
  }
  return out;
}

/** Open (or create) the journal at `path`, reading what a previous agent left in it. */
export function openProcessJournal(path: string): ProcessJournal {
  let text = "";
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const leftovers = parseProcessJournal(text);
  // "a": O_APPEND, so that each line lands at the end whatever the offset after a truncate.
  let fd: number | undefined = openSync(path, "a", 0o600);
  let dirty = text.length > 0;
  return {
    leftovers,
    append(p) {
      if (fd === undefined) return;
      try {
        writeSync(fd, line(p));
        dirty = true;
      } catch {
        // Disk full or an I/O error: the store's own writes report such trouble.
      }
    },
    committed() {
      if (fd === undefined || !dirty) return;
      try {
        ftruncateSync(fd, 0);
        dirty = false;
      } catch {
        // Left as it is: the next agent finds processes that are stored anyway, and checks them the same way.
      }
    },
    close() {
      if (fd === undefined) return;
      closeSync(fd);
      fd = undefined;
      if (dirty) return;
      try {
        unlinkSync(path);
      } catch {
        // Already gone, or the directory is read-only: an empty journal is harmless.
      }
    },
  };
}
