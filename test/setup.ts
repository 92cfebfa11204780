// Preloaded by bunfig.toml: tests start real processes and servers, so give
// slow (2-core, loaded) machines room beyond the 5 s default.
import { setDefaultTimeout } from "bun:test";

setDefaultTimeout(30_000);
