/**
 * `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP date, as a wait
 * in ms from `now`; `undefined` when absent or unreadable. The agent sends
 * whole seconds; the fleet link's control plane and other servers may send a
 * date. Callers cap what they honour.
 */
export function retryAfterMs(value: string | null | undefined, now = Date.now()): number | undefined {
  if (value === null || value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  if (!/[A-Za-z]/.test(v)) return undefined;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
