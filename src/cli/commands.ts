/** The client commands of the `tasklane` binary, in help order. */
import type { Command } from "./command.ts";
import { cancelCommand } from "./commands/cancel.ts";
import { completionCommand } from "./commands/completion.ts";
import { eventsCommand } from "./commands/events.ts";
import { getCommand } from "./commands/get.ts";
import { hashTokenCommand } from "./commands/hash-token.ts";
import { helpCommand } from "./commands/help.ts";
import { infoCommand } from "./commands/info.ts";
import { logsCommand } from "./commands/logs.ts";
import { lsCommand } from "./commands/ls.ts";
import { rmCommand } from "./commands/rm.ts";
import { runCommand } from "./commands/run.ts";
import { runsCommand } from "./commands/runs.ts";
import { submitCommand } from "./commands/submit.ts";
import { waitCommand } from "./commands/wait.ts";

/** Every client command. */
export const COMMANDS: readonly Command[] = [
  submitCommand,
  runCommand,
  lsCommand,
  getCommand,
  runsCommand,
  logsCommand,
  cancelCommand,
  rmCommand,
  waitCommand,
  eventsCommand,
  infoCommand,
  hashTokenCommand,
  completionCommand,
  helpCommand,
];
