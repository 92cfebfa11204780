/** The agent version (kept in step with package.json by `build.ts`). */
export const VERSION = "0.1.0";
