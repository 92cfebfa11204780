import { describe, expect, test } from "bun:test";
import { Metadata } from "@grpc/grpc-js";
import { metadataRecord } from "../../src/grpc/bind-service.ts";

describe("metadataRecord", () => {
  test("text entries only, first value per key, keys lower-case", () => {
    const md = new Metadata();
    md.add("Authorization", "Bearer a");
    md.add("authorization", "Bearer b");
    md.set("x-trace-bin", Buffer.from([1, 2, 3]));
    md.set("user-agent", "test/1");
    expect(metadataRecord(md)).toEqual({ authorization: "Bearer a", "user-agent": "test/1" });
    // The metadata itself is untouched.
    expect(md.get("x-trace-bin")).toEqual([Buffer.from([1, 2, 3])]);
  });
});
