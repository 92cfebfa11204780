/**
 * Preloaded by `bun test` (bunfig.toml): hooks that run once around the whole run.
 */
import { afterAll } from "bun:test";
import { removeBuiltBinary } from "./e2e/binary.ts";

// The e2e suites build the executable once per run into a temp dir; it goes with the run.
afterAll(removeBuiltBinary);
