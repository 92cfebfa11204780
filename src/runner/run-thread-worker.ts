/**
 * The runner thread's side of `run-thread.ts`: starts each run with
 * `startRun`, reports its identity, lines and result, and forwards stops.
 * Messages to the main thread are batched per microtask checkpoint.
 */
import type { FromRunner, ToRunner } from "./run-thread.ts";
import { microtaskBatch } from "./microtask-batch.ts";
import { startRun, type RunHandle } from "./run-process.ts";

declare const self: Worker;

// The executable starts with a raised JIT threshold for its start-up code (build.ts); this thread has none.
Bun.unsafe.setJITPolicy(1);

const runs = new Map<number, RunHandle>();
const outbox = microtaskBatch<FromRunner>((batch) => self.postMessage(batch));
const send = (m: FromRunner) => outbox.push(m);

// First message: the module loaded (run-thread.ts tells a failure to load from a later one by it).
self.postMessage([{ t: "ready", id: 0 }] satisfies FromRunner[]);

self.onmessage = (e: MessageEvent<ToRunner[]>) => {
  for (const m of e.data) {
    if (m.t === "stop") {
      void runs.get(m.id)?.stop(m.reason);
      continue;
    }
    const id = m.id;
    const handle = startRun({ ...m.spec, onLines: (stream, lines, ts, bytes) => send({ t: "lines", id, stream, lines, ts, bytes }) });
    runs.set(id, handle);
    send({ t: "process", id, process: handle.process });
    void handle.result.then((result) => {
      runs.delete(id);
      send({ t: "result", id, result });
    });
  }
};
