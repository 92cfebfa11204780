/**
 * Server streams write many small encoded messages per HTTP/2 write: the
 * framer's bytes are valid gRPC framing, grpc-js (patched) writes them as
 * they are, and a grpc-js client reads every message, in order, whatever
 * mix of encoded bytes, message objects and oversized messages the handler
 * yields.
 */
import { describe, expect, test } from "bun:test";
import { create, fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { Client, credentials, Server, ServerCredentials, type ServerWritableStream } from "@grpc/grpc-js";
import { bindService } from "../../src/grpc/bind-service.ts";
import { encodeLogEvent } from "../../src/grpc/convert.ts";
import { framingSupported, MAX_FRAMED_BYTES, MessageFramer } from "../../src/grpc/framed-messages.ts";
import { SoltiApi } from "../../src/gen/solti/v1/api_pb.ts";
import { OutputEventProtoSchema, OutputStreamKind, type OutputEventProto } from "../../src/gen/solti/v1/types_pb.ts";

const FRAMED = Symbol.for("grpc-js.framedMessages");

/** Split gRPC framing into its messages; throws on a torn or flagged frame. */
function unframe(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let p = 0;
  while (p < bytes.length) {
    expect(bytes[p]).toBe(0);
    const len = bytes.readUInt32BE(p + 1);
    out.push(bytes.subarray(p + 5, p + 5 + len));
    p += 5 + len;
  }
  expect(p).toBe(bytes.length);
  return out;
}

describe("MessageFramer", () => {
  test("the installed grpc-js writes framed values unchanged (the patch in patches/ is applied)", () => {
    expect(framingSupported).toBe(true);
  });

  test("take() is the messages, each with its 5-byte prefix, back to back; then the framer is empty", () => {
    const framer = new MessageFramer();
    const msgs = [Buffer.from("a"), Buffer.alloc(0), Buffer.alloc(300, 7)];
    for (const m of msgs) expect(framer.add(m)).toBe(true);
    expect(framer.size).toBe(3);
    const bytes = (framer.take() as unknown as Record<symbol, Buffer>)[FRAMED] as Buffer;
    expect(bytes.length).toBe(5 * 3 + 1 + 0 + 300);
    expect(unframe(bytes)).toEqual(msgs);
    expect(framer.size).toBe(0);
    expect(unframe((framer.take() as unknown as Record<symbol, Buffer>)[FRAMED] as Buffer)).toEqual([]);
  });

  test("a batch stops at MAX_FRAMED_BYTES; a message that could never share a write does not fit", () => {
    const framer = new MessageFramer();
    const m = Buffer.alloc(1000);
    let n = 0;
    while (framer.add(m)) n++;
    expect(n).toBe(Math.floor(MAX_FRAMED_BYTES / 1005));
    expect(MessageFramer.fits(Buffer.alloc(MAX_FRAMED_BYTES - 5))).toBe(true);
    expect(MessageFramer.fits(Buffer.alloc(MAX_FRAMED_BYTES - 4))).toBe(false);
  });
});

function chunk(seq: number, line: string): Uint8Array {
  return encodeLogEvent({ type: "chunk", attempt: 1, stream: "stdout", seq, ts: 1_700_000_000_000 + seq, line });
}

describe("a server stream through grpc-js", () => {
  test("every message arrives in order at a grpc-js client, encoded ones framed many per write", async () => {
    const big = "b".repeat(MAX_FRAMED_BYTES + 10); // written on its own
    const first = Array.from({ length: 3000 }, (_, i) => chunk(i, `line ${i}`));
    const finished: MessageInitShape<typeof OutputEventProtoSchema> = { kind: { case: "runFinished", value: { attempt: 1, exitCode: 0, finishedAt: 5n } } };
    const batches: (Uint8Array | MessageInitShape<typeof OutputEventProtoSchema>)[][] = [
      first,
      [chunk(3000, "x"), finished, chunk(3001, big), chunk(3002, "after big")],
      [chunk(3003, "last")],
    ];
    const handlers = new Proxy(
      {
        async *streamTaskLogs() {
          yield* batches;
        },
      },
      { get: (t, k) => (t as Record<PropertyKey, unknown>)[k] ?? (() => ({})) },
    );
    const { definition, implementation } = bindService(SoltiApi, handlers as never);
    let writes = 0;
    const stream = implementation.StreamTaskLogs as (call: ServerWritableStream<unknown, unknown>) => void;
    implementation.StreamTaskLogs = (call: ServerWritableStream<unknown, unknown>) => {
      const write = call.write.bind(call);
      call.write = ((v: unknown, ...rest: never[]) => {
        writes++;
        return write(v, ...rest);
      }) as typeof call.write;
      stream(call);
    };
    const server = new Server();
    server.addService(definition, implementation);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
    try {
      const got: OutputEventProto[] = [];
      await new Promise<void>((resolve, reject) => {
        const call = client.makeServerStreamRequest(
          "/solti.v1.SoltiApi/StreamTaskLogs",
          (b: Buffer) => b,
          (b: Buffer) => fromBinary(OutputEventProtoSchema, b),
          Buffer.from([0x0a, 0x01, 0x74]),
        );
        call.on("data", (e: OutputEventProto) => got.push(e));
        call.on("error", reject);
        call.on("end", resolve);
      });
      const seqs = got.flatMap((e) => (e.kind.case === "chunk" ? [Number(e.kind.value.seq)] : [-1]));
      expect(seqs).toEqual([...Array.from({ length: 3001 }, (_, i) => i), -1, 3001, 3002, 3003]);
      expect(got[3001]).toEqual(create(OutputEventProtoSchema, finished));
      const c = got[0]?.kind;
      expect(c?.case === "chunk" && c.value.stream === OutputStreamKind.STDOUT && Buffer.from(c.value.line).toString()).toBe("line 0");
      const b = got[3002]?.kind;
      expect(b?.case === "chunk" && Buffer.from(b.value.line).toString()).toBe(big);
      // 3000 messages of ≈ 25 bytes: a write per 512 messages (the turn budget), not per message.
      expect(writes).toBeLessThanOrEqual(Math.ceil(3000 / 512) + 6);
    } finally {
      client.close();
      server.forceShutdown();
    }
  });
});
