/**
 * The hand-written wire pieces against protobuf-es: `ProtoWriter` against
 * its `BinaryWriter`, and the direct request decoder (`requestDecoder`)
 * against `fromBinary`.
 */
import { describe, expect, test } from "bun:test";
import { fromBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType as PbWireType } from "@bufbuild/protobuf/wire";
import { GetTaskStatusRequestSchema, ListTasksRequestSchema } from "../../src/gen/solti/v1/api_pb.ts";
import { ProtoWriter, varintSize, WireType } from "../../src/grpc/proto-writer.ts";
import { requestDecoder } from "../../src/grpc/service-definition.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

const UNSIGNED = [
  0, 1, 127, 128, 255, 300, 16_383, 16_384, 2 ** 21 - 1, 2 ** 21, 2 ** 28 - 1, 2 ** 28, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 35 - 1, 2 ** 35,
  2 ** 42 + 17, 1_712_750_400_123, 2 ** 49, 2 ** 52 + 1, Number.MAX_SAFE_INTEGER,
];

describe("ProtoWriter", () => {
  test("varints: same bytes as BinaryWriter.uint64 / int64, and the right size", () => {
    // Plus a deterministic spread over every bit length.
    const spread = Array.from({ length: 2000 }, (_, i) => Math.floor((((i * 2_654_435_761) % 2 ** 32) / 2 ** 32) * 2 ** (1 + (i % 53))));
    for (const v of [...UNSIGNED, ...spread]) {
      const ours = new ProtoWriter().tag(1, WireType.Varint).varint(v).finish();
      const ref = new BinaryWriter().tag(1, PbWireType.Varint).uint64(v).finish();
      if (hex(ours) !== hex(ref)) throw new Error(`varint ${v}: ${hex(ours)} != ${hex(ref)}`);
      expect(ours.length - 1).toBe(varintSize(v));
    }
    for (const v of [-1, -2, -128, -(2 ** 31), -(2 ** 40) - 3, Number.MIN_SAFE_INTEGER, ...UNSIGNED]) {
      expect(hex(new ProtoWriter().signed(v).finish())).toBe(hex(new BinaryWriter().int64(v).finish()));
    }
  });

  test("strings, doubles and nested lengths: same bytes as BinaryWriter", () => {
    const strings = ["", "a", "tsk_01HZY8B2W3K4M5N6P7Q8R9S0T1", "é", "żółw 🐢", "lone \uDC00", "x".repeat(127), "x".repeat(128), "é".repeat(100), "y".repeat(70_000)];
    for (const s of strings) {
      for (const nest of [0, 1, 2]) {
        const ours = new ProtoWriter();
        const ref = new BinaryWriter();
        const marks: number[] = [];
        for (let i = 0; i < nest; i++) {
          marks.push(ours.tag(2, WireType.LengthDelimited).fork());
          ref.tag(2, PbWireType.LengthDelimited).fork();
        }
        ours.tag(1, WireType.LengthDelimited).string(s).tag(4, WireType.Bit64).double(-0.1);
        ref.tag(1, PbWireType.LengthDelimited).string(s).tag(4, PbWireType.Bit64).double(-0.1);
        for (const m of marks.reverse()) {
          ours.join(m);
          ref.join();
        }
        expect(hex(ours.finish())).toBe(hex(ref.finish()));
      }
    }
  });
});

describe("requestDecoder", () => {
  const decodeId = requestDecoder(GetTaskStatusRequestSchema);
  const outcome = (decode: (b: Buffer) => unknown, bytes: Buffer) => {
    try {
      return { message: decode(bytes) };
    } catch (err) {
      return { error: (err as Error).message };
    }
  };

  test("one string field: the message fromBinary builds, or the same error", () => {
    const id = Buffer.from("tsk_01HZY8B2W3K4M5N6P7Q8R9S0T1");
    const inputs = [
      Buffer.concat([Buffer.from([0x0a, id.length]), id]),
      Buffer.from([0x0a, 0x00]),
      Buffer.alloc(0),
      Buffer.concat([Buffer.from([0x0a, 0x06]), Buffer.from("żółw")]),
      Buffer.from([0x0a, 0x02, 0xc3, 0x28]), // invalid UTF-8
      Buffer.from([0x0a, 0x05, 0x41]), // truncated
      Buffer.from([0x0a, 0xff, 0xff, 0x03, 0x41]), // length past the end
      Buffer.concat([Buffer.from([0x0a, 0x02]), Buffer.from("ab"), Buffer.from([0x0a, 0x01, 0x63])]), // repeated: last wins
      Buffer.concat([Buffer.from([0x0a, 0x02]), Buffer.from("ab"), Buffer.from([0x10, 0x01])]), // an unknown field
      Buffer.concat([Buffer.from([0x0a, 0x80, 0x01]), Buffer.alloc(128, 0x61)]), // two-byte length
      Buffer.from([0x12, 0x01, 0x61]),
    ];
    for (let i = 0; i < 300; i++) inputs.push(Buffer.from(Array.from({ length: i % 40 }, (_, j) => (j === 0 ? 0x0a : j === 1 ? (i % 40) - 2 : (i * 31 + j * 17) % 256))));
    for (const bytes of inputs) {
      expect(outcome(decodeId, bytes)).toEqual(outcome((b) => fromBinary(GetTaskStatusRequestSchema, b), bytes));
    }
  });

  test("other messages are left to fromBinary", () => {
    const bytes = Buffer.from([0x0a, 0x03, 0x61, 0x62, 0x63]);
    expect(requestDecoder(ListTasksRequestSchema)(bytes)).toEqual(fromBinary(ListTasksRequestSchema, bytes));
  });
});
