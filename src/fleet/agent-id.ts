/**
 * The agent's identity towards a control plane: stable across restarts, so a
 * control plane sees one agent, not a new one after every reboot.
 */
import { ulid } from "ulid";
import type { Store } from "../store/store.ts";

/** Store meta key holding the generated agent id. */
export const AGENT_ID_META_KEY = "agent_id";

/**
 * `configured` (`--agent-id`) when given; otherwise the id kept in the store,
 * generated (a ULID) and saved on first use. With `--data-dir :memory:` the
 * store lives in the process, so the id does too.
 */
export function resolveAgentId(store: Pick<Store, "getMeta" | "setMeta">, configured?: string, generate: () => string = ulid): string {
  if (configured) return configured;
  const kept = store.getMeta(AGENT_ID_META_KEY);
  if (kept) return kept;
  const id = generate();
  store.setMeta(AGENT_ID_META_KEY, id);
  return id;
}
