/** `tasklane completion`: print a shell completion script. */
import { usage } from "../cli-error.ts";
import type { Command } from "../command.ts";
import { completionScript, SHELLS, type Shell } from "../completion-script.ts";

/** Print the bash or zsh completion script. */
export const completionCommand: Command = {
  name: "completion",
  summary: "print a shell completion script (bash or zsh)",
  usage: "bash|zsh",
  details: "Completes commands, flags, flag values, files, and task ids (via tasklane ls -q).",
  flags: [],
  examples: ["source <(tasklane completion bash)   # add to ~/.bashrc", "tasklane completion zsh > \"${fpath[1]}/_tasklane\""],
  async run(ctx) {
    const shell = ctx.positionals[0];
    if (shell === undefined) throw usage(`missing shell: give one of ${SHELLS.join(", ")}`);
    if (!(SHELLS as readonly string[]).includes(shell) || ctx.positionals.length > 1) {
      throw usage(`unsupported shell ${JSON.stringify(ctx.positionals.join(" "))}: give one of ${SHELLS.join(", ")}`);
    }
    await ctx.out.write(completionScript(shell as Shell, ctx.commands));
    return 0;
  },
};
