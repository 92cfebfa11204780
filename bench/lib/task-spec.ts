/** REST task specs the benchmarks submit (CONTRACT §1 shape). */

/** A `command` task spec: `argv[0]` by absolute path, no retry, queue admission. */
export function commandSpec(slot: string, argv: readonly string[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  const [command, ...args] = argv;
  return {
    slot,
    kind: { subprocess: { mode: { command: { command, args } } } },
    timeout: 600_000,
    restart: { type: "never" },
    backoff: { jitter: "none", firstMs: 1000, maxMs: 1000, factor: 1 },
    admission: "queue",
    ...extra,
  };
}

/** POST /api/v1/tasks (optionally `?wait=true`); returns the parsed JSON body, throws on an unexpected status. */
export async function submit(url: string, spec: Record<string, unknown>, wait = false): Promise<Record<string, unknown>> {
  const res = await fetch(`${url}/api/v1/tasks${wait ? "?wait=true" : ""}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ spec }),
  });
  const body = (await res.json()) as Record<string, unknown>;
  if (res.status !== (wait ? 200 : 201)) throw new Error(`submit answered ${res.status}: ${JSON.stringify(body)}`);
  return body;
}

/** The id of the task in a submit answer (`201 {"task_id": …}`). */
export function taskIdOf(body: Record<string, unknown>): string {
  const id = body.task_id;
  if (typeof id !== "string") throw new Error(`no task_id in ${JSON.stringify(body)}`);
  return id;
}

/** GET /api/v1/tasks/{id}/wait until the task is terminal (or `timeoutMs`); returns its phase. */
export async function waitTask(url: string, id: string, timeoutMs = 120_000): Promise<string> {
  const res = await fetch(`${url}/api/v1/tasks/${id}/wait?timeoutMs=${timeoutMs}`);
  const body = (await res.json()) as { task: { status: { phase: string } } };
  if (res.status !== 200) throw new Error(`wait answered ${res.status}: ${JSON.stringify(body)}`);
  return body.task.status.phase;
}

/** Count of tasks in `status` (`total` of a one-row list). */
export async function countTasks(url: string, status: string): Promise<number> {
  const res = await fetch(`${url}/api/v1/tasks?status=${status}&limit=1`);
  const body = (await res.json()) as { total: number };
  return body.total;
}
