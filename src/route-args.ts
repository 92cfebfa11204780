/**
 * Which half of the binary a command line is for: the agent (`serve`, or
 * flags only) or the client (any other first word). Client flags that apply
 * to every command may also come before it: `tasklane --server host:8080 ls`.
 */

/** The client's global flags (src/cli/help-text.ts `GLOBAL_FLAGS`, kept equal by a test); true: takes a value. */
export const LEADING_CLIENT_FLAGS: Readonly<Record<string, boolean>> = { "--server": true, "--token": true, "--json": false };

/** The route of `argv` (the words after the executable); client `cmd` "": global flags without a usable command. */
export type Route = { kind: "serve"; args: string[] } | { kind: "client"; cmd: string; args: string[] };

/**
 * Decide the route; leading client flags are moved after the command, where the client parses them.
 * A line that starts with a client flag is the client's even when it goes wrong after it (an unknown
 * flag, a missing value or command): the client names the real problem (cmd "", the whole line as args).
 */
export function routeArgs(argv: readonly string[]): Route {
  const [first, ...rest] = argv;
  if (first === undefined) return { kind: "serve", args: [] };
  if (first === "serve") return { kind: "serve", args: rest };
  // `tasklane help` points to `serve`; its help is the agent's (`serve --help`).
  if (first === "help" && rest.length === 1 && rest[0] === "serve") return { kind: "serve", args: ["--help"] };
  if (!first.startsWith("-")) return { kind: "client", cmd: first, args: rest };
  const leading: string[] = [];
  let i = 0;
  while (i < argv.length && argv[i]!.startsWith("-")) {
    const word = argv[i]!;
    const name = word.includes("=") ? word.slice(0, word.indexOf("=")) : word;
    const takesValue = LEADING_CLIENT_FLAGS[name];
    if (takesValue === undefined) return i === 0 ? { kind: "serve", args: [...argv] } : { kind: "client", cmd: "", args: [...argv] };
    const n = takesValue && !word.includes("=") ? 2 : 1;
    if (i + n > argv.length) return { kind: "client", cmd: "", args: [...argv] };
    leading.push(...argv.slice(i, i + n));
    i += n;
  }
  const cmd = argv[i];
  if (cmd === undefined) return { kind: "client", cmd: "", args: [...argv] };
  if (cmd === "serve") return { kind: "serve", args: [...argv] };
  return { kind: "client", cmd, args: [...leading, ...argv.slice(i + 1)] };
}
