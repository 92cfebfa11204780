/** `tasklane hash-token`: SHA-256 of a bearer token, for the auth config. */
import { bearerTokenProblem, hashToken } from "../../auth/hash-token.ts";
import { usage } from "../cli-error.ts";
import type { Command } from "../command.ts";

/** Print the SHA-256 hex of a token given as argument or on stdin. */
export const hashTokenCommand: Command = {
  name: "hash-token",
  summary: "print the SHA-256 hex of a token (for token_sha256 in the auth config)",
  usage: "[TOKEN]",
  details: [
    "Reads the token from the argument or, without one, from stdin. Whitespace around it",
    "(the file's trailing newline) is ignored, as the CLI's --token and the agent ignore it;",
    "a token with whitespace, a control character or a non-ASCII character inside is refused:",
    "no `Authorization: Bearer` header carries it as given.",
    "Prefer stdin: arguments end up in the shell history and in ps.",
    "Needs no agent. With --json, prints {\"sha256\": \"…\"}.",
  ].join("\n"),
  flags: [],
  json: true,
  examples: ["tasklane hash-token < token.txt", "head -c 32 /dev/urandom | basenc --base64url | tr -d '=' | tee token.txt | tasklane hash-token"],
  async run(ctx) {
    if (ctx.positionals.length > 1) throw usage(`expected at most one TOKEN, got ${ctx.positionals.length}`);
    const token = (ctx.positionals[0] ?? (await ctx.readStdin())).trim();
    if (token === "") throw usage("empty token: give TOKEN or pipe it on stdin");
    if (/\s/.test(token)) throw usage("the token contains whitespace (a space, tab or newline): no Authorization: Bearer <token> could carry it");
    const problem = bearerTokenProblem(token);
    if (problem !== undefined) throw usage(`the token ${problem}: no Authorization: Bearer <token> header sends it as given`);
    const hex = hashToken(token);
    await ctx.out.line(ctx.json ? JSON.stringify({ sha256: hex }) : hex);
    return 0;
  },
};
