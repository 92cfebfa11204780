import { describe, expect, test } from "bun:test";
import { EventEmitter } from "node:events";
import { create } from "@bufbuild/protobuf";
import { Metadata } from "@grpc/grpc-js";
import { bindService, metadataRecord, statusOf, STREAM_WRITES_PER_TURN, TurnBudget } from "../../src/grpc/bind-service.ts";
import { AgentError, clip, taskNotFound } from "../../src/errors.ts";
import { SoltiApi, StreamTaskLogsRequestSchema } from "../../src/gen/solti/v1/api_pb.ts";

const FRAMED = Symbol.for("grpc-js.framedMessages");

describe("status messages", () => {
  test("clip cuts after 80 UTF-16 units by default, never inside a surrogate pair", () => {
    expect(clip("a".repeat(80))).toBe("a".repeat(80));
    expect(clip("a".repeat(81))).toBe(`${"a".repeat(80)}…`);
    expect(clip(`${"a".repeat(79)}😀b`)).toBe(`${"a".repeat(79)}…`);
    expect(clip("abcdef", 3)).toBe("abc…");
    expect(taskNotFound("x".repeat(100)).message).toBe(`task ${"x".repeat(80)} not found`.replace(" not", "… not"));
  });

  test("statusOf bounds the message the trailer carries", () => {
    const s = statusOf(new AgentError("InvalidRequest", "m".repeat(100_000)));
    expect(s.details).toBe(`${"m".repeat(4096)}…`);
    expect(s.message).toBe(s.details!);
    expect(statusOf(new AgentError("InvalidRequest", "short")).details).toBe("short");
  });
});

describe("metadataRecord", () => {
  test("text entries only, first value per key (authorization: all values, joined as HTTP joins headers), keys lower-case", () => {
    const md = new Metadata();
    md.add("Authorization", "Bearer a");
    md.add("authorization", "Bearer b");
    md.add("X-Request-Id", "r1");
    md.add("x-request-id", "r2");
    md.set("x-trace-bin", Buffer.from([1, 2, 3]));
    md.set("user-agent", "test/1");
    expect(metadataRecord(md)).toEqual({ authorization: "Bearer a, Bearer b", "x-request-id": "r1", "user-agent": "test/1" });
    // The metadata itself is untouched.
    expect(md.get("x-trace-bin")).toEqual([Buffer.from([1, 2, 3])]);
  });
});

describe("server streams share the event loop", () => {
  test("TurnBudget: the limit-th write of one turn asks for a yield; a turn that went by starts a new count", async () => {
    const budget = new TurnBudget(3);
    expect([budget.spend(), budget.spend(), budget.spend()]).toEqual([false, false, true]);
    await budget.yield();
    expect([budget.spend(), budget.spend()]).toEqual([false, false]);
    await new Promise<void>((r) => setImmediate(r)); // e.g. a wait for drain that let the loop turn
    expect([budget.spend(), budget.spend(), budget.spend()]).toEqual([false, false, true]);
  });

  test("a long batch is written STREAM_WRITES_PER_TURN messages per turn, every message in order, then the call ends", async () => {
    const n = STREAM_WRITES_PER_TURN * 3 + 7;
    const items = Array.from({ length: n }, (_, i) => new Uint8Array([0x0a, i & 0xff]));
    const handlers = {
      async *streamTaskLogs() {
        yield items;
      },
    };
    // The other methods are never called here.
    const all = new Proxy(handlers, { get: (t, k) => (t as Record<PropertyKey, unknown>)[k] ?? (() => ({})) });
    const { implementation } = bindService(SoltiApi, all as never);
    const written: Uint8Array[] = [];
    const perTurn: number[] = [];
    const call = Object.assign(new EventEmitter(), {
      cancelled: false,
      request: create(StreamTaskLogsRequestSchema, { taskId: "t" }),
      metadata: new Metadata(),
      write(b: Uint8Array | Record<symbol, Buffer>) {
        // Encoded messages come framed together (see framed-messages.test.ts): count each one.
        const framed = (b as Record<symbol, Buffer>)[FRAMED];
        if (framed === undefined) written.push(b as Uint8Array);
        for (let p = 0; framed !== undefined && p < framed.length; p += 5 + framed.readUInt32BE(p + 1)) {
          written.push(new Uint8Array(framed.subarray(p + 5, p + 5 + framed.readUInt32BE(p + 1))));
        }
        return true; // never any backpressure: only the budget makes the stream yield
      },
      end() {
        call.emit("finished");
      },
    });
    const finished = new Promise<void>((r) => call.once("finished", r));
    const stream = implementation.StreamTaskLogs as unknown as (c: typeof call) => void;
    stream(call);
    // Sample the count at every turn until the call has ended.
    let ended = false;
    void finished.then(() => (ended = true));
    while (!ended) {
      await new Promise<void>((r) => setImmediate(r));
      perTurn.push(written.length);
    }
    expect(written).toEqual(items);
    const steps = perTurn.map((v, i) => v - (perTurn[i - 1] ?? 0)).filter((d) => d > 0);
    expect(Math.max(...steps)).toBeLessThanOrEqual(STREAM_WRITES_PER_TURN);
    expect(steps.length).toBeGreaterThanOrEqual(4);
  });
});
