/** `tasklane help`: the command overview or one command's help. */
import { usage } from "../cli-error.ts";
import type { Command } from "../command.ts";
import { commandHelp, overviewHelp } from "../help-text.ts";

/** Print the overview, or the help of one command. */
export const helpCommand: Command = {
  name: "help",
  summary: "show help for tasklane or one command",
  usage: "[COMMAND]",
  flags: [],
  examples: ["tasklane help run"],
  async run(ctx) {
    const name = ctx.positionals[0];
    if (name === undefined) {
      await ctx.out.line(overviewHelp(ctx.commands));
      return 0;
    }
    const cmd = ctx.commands.find((c) => c.name === name);
    if (!cmd) throw usage(`unknown command ${JSON.stringify(name)} (see tasklane help)`);
    await ctx.out.line(commandHelp(cmd));
    return 0;
  },
};
