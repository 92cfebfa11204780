import { describe, expect, test } from "bun:test";
import { toBinary } from "@bufbuild/protobuf";
import { OutputEventProtoSchema } from "../../src/gen/solti/v1/types_pb.ts";
import { encodeLogEvent, logEventToProto } from "../../src/grpc/convert.ts";
import type { LogEvent } from "../../src/tasks/model.ts";

describe("encodeLogEvent", () => {
  const events: LogEvent[] = [
    { type: "chunk", attempt: 1, stream: "stdout", seq: 0, ts: 1712750400123, line: "hello" },
    { type: "chunk", attempt: 3, stream: "stderr", seq: 127, ts: 1, line: "" },
    { type: "chunk", attempt: 0, stream: "stdout", seq: 128, ts: 0, line: "x".repeat(300) },
    { type: "chunk", attempt: 70000, stream: "stderr", seq: 2 ** 40 + 5, ts: Number.MAX_SAFE_INTEGER, line: "żółw 🐢 \uFFFD" },
    { type: "runStarted", attempt: 1, startedAt: 1712750400000 },
    { type: "runFinished", attempt: 1, exitCode: 0, finishedAt: 1712750400456 },
    { type: "runFinished", attempt: 2, finishedAt: 1712750400456 },
    { type: "lagged", skipped: 42 },
  ];
  test("writes exactly what toBinary(logEventToProto(ev)) writes", () => {
    for (const ev of events) {
      expect(Buffer.from(encodeLogEvent(ev)).toString("hex")).toBe(Buffer.from(toBinary(OutputEventProtoSchema, logEventToProto(ev))).toString("hex"));
    }
  });
});
