/**
 * Shell completion scripts generated from the command definitions, so they
 * never fall out of step with the flags: subcommands, each command's flags,
 * the allowed values of enum flags, files / directories where a flag takes
 * one, and task ids (from `tasklane ls -q`) where a command takes one.
 */
import type { FlagSpec } from "./args.ts";
import type { Command } from "./command.ts";
import { GLOBAL_FLAGS } from "./help-text.ts";

/** Shells we generate completion for. */
export const SHELLS = ["bash", "zsh"] as const;
export type Shell = (typeof SHELLS)[number];

const SERVE = { name: "serve", summary: "run the agent (tasklane serve --help)" };

function flagWords(cmd: Command): string[] {
  const globals = GLOBAL_FLAGS.filter((g) => cmd.json || g.name !== "json");
  return [...cmd.flags, ...globals].flatMap((f) => [`--${f.name}`, ...(f.short ? [`-${f.short}`] : [])]);
}

/** Value-taking flags across all commands, grouped by how their value completes. */
function valueFlags(commands: readonly Command[]): { choices: Map<string, readonly string[]>; files: string[]; dirs: string[]; other: string[] } {
  const all = new Map<string, FlagSpec>();
  for (const f of [...commands.flatMap((c) => c.flags), ...GLOBAL_FLAGS]) if (f.kind !== "boolean") all.set(f.name, f);
  const choices = new Map<string, readonly string[]>();
  const files: string[] = [];
  const dirs: string[] = [];
  const other: string[] = [];
  for (const f of all.values()) {
    const words = [`--${f.name}`, ...(f.short ? [`-${f.short}`] : [])];
    if (f.choices) for (const w of words) choices.set(w, f.choices);
    else if (f.value === "FILE") files.push(...words);
    else if (f.value === "DIR") dirs.push(...words);
    else other.push(...words);
  }
  return { choices, files, dirs, other };
}

const taskIdCommands = (commands: readonly Command[]) => commands.filter((c) => c.completes === "task-id").map((c) => c.name);

function bash(commands: readonly Command[]): string {
  const names = [...commands.map((c) => c.name), SERVE.name].join(" ");
  const v = valueFlags(commands);
  const choiceCases = [...v.choices].map(([flag, values]) => `    ${flag}) COMPREPLY=($(compgen -W "${values.join(" ")}" -- "$cur")); return 0 ;;`);
  const flagCases = commands.map((c) => `    ${c.name}) flags="${flagWords(c).join(" ")}" ;;`);
  return `# bash completion for tasklane. Load with:  source <(tasklane completion bash)
_tasklane() {
  local cur prev cmd flags i
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  COMPREPLY=()
  if [[ $COMP_CWORD -eq 1 ]]; then
    COMPREPLY=($(compgen -W "${names}" -- "$cur"))
    return 0
  fi
  cmd="\${COMP_WORDS[1]}"
  for ((i = 2; i < COMP_CWORD; i++)); do
    if [[ "\${COMP_WORDS[i]}" == "--" ]]; then
      if [[ $i -eq $((COMP_CWORD - 1)) ]]; then COMPREPLY=($(compgen -c -- "$cur")); fi
      return 0
    fi
  done
  case "$prev" in
${choiceCases.join("\n")}
    ${v.files.join("|") || "--no-such-flag"}) COMPREPLY=($(compgen -f -- "$cur")); return 0 ;;
    ${v.dirs.join("|") || "--no-such-flag"}) COMPREPLY=($(compgen -d -- "$cur")); return 0 ;;
    ${v.other.join("|")}) return 0 ;;
  esac
  case "$cmd" in
${flagCases.join("\n")}
    *) flags="" ;;
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
    return 0
  fi
  case "$cmd" in
    ${taskIdCommands(commands).join("|")}) COMPREPLY=($(compgen -W "$(tasklane ls -q 2>/dev/null)" -- "$cur")) ;;
    help) COMPREPLY=($(compgen -W "${commands.map((c) => c.name).join(" ")}" -- "$cur")) ;;
    completion) COMPREPLY=($(compgen -W "${SHELLS.join(" ")}" -- "$cur")) ;;
    submit|run) COMPREPLY=($(compgen -c -- "$cur")) ;;
  esac
  return 0
}
complete -o default -F _tasklane tasklane
`;
}

function zshQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

function zsh(commands: readonly Command[]): string {
  const described = [...commands, SERVE].map((c) => `    ${zshQuote(`${c.name}:${c.summary}`)}`);
  const v = valueFlags(commands);
  const choiceCases = [...v.choices].map(([flag, values]) => `    ${flag}) compadd -- ${values.join(" ")}; return ;;`);
  const flagCases = commands.map((c) => `      ${c.name}) compadd -- ${flagWords(c).join(" ")} ;;`);
  return `#compdef tasklane
# zsh completion for tasklane. Load with:  source <(tasklane completion zsh)
# or save it as _tasklane in a directory of $fpath.
_tasklane() {
  local -a commands
  commands=(
${described.join("\n")}
  )
  if (( CURRENT == 2 )); then
    _describe -t commands 'tasklane command' commands
    return
  fi
  local cmd=\${words[2]} prev=\${words[CURRENT-1]} cur=\${words[CURRENT]}
  local dd=\${words[(i)--]}
  if (( dd > 2 && dd < CURRENT )); then
    words=("\${(@)words[dd+1,-1]}")
    (( CURRENT -= dd ))
    _normal
    return
  fi
  case $prev in
${choiceCases.join("\n")}
    ${v.files.join("|") || "--no-such-flag"}) _files; return ;;
    ${v.dirs.join("|") || "--no-such-flag"}) _files -/; return ;;
    ${v.other.join("|")}) _message 'value'; return ;;
  esac
  if [[ $cur == -* ]]; then
    case $cmd in
${flagCases.join("\n")}
    esac
    return
  fi
  case $cmd in
    ${taskIdCommands(commands).join("|")}) compadd -- \${(f)"$(tasklane ls -q 2>/dev/null)"} ;;
    help) compadd -- ${commands.map((c) => c.name).join(" ")} ;;
    completion) compadd -- ${SHELLS.join(" ")} ;;
    submit|run) _command_names -e ;;
    *) _files ;;
  esac
}
if [[ "\${funcstack[1]}" == "_tasklane" ]]; then
  _tasklane "$@"
else
  compdef _tasklane tasklane
fi
`;
}

/** The completion script for `shell`. */
export function completionScript(shell: Shell, commands: readonly Command[]): string {
  switch (shell) {
    case "bash":
      return bash(commands);
    case "zsh":
      return zsh(commands);
  }
}
