/** Client commands of the `tasklane` binary. */
export async function runCli(cmd: string, _args: string[], _env: Record<string, string | undefined>): Promise<number> {
  console.error(`tasklane: unknown command ${JSON.stringify(cmd)} (see tasklane --help)`);
  return 2;
}
