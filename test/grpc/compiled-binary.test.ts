/**
 * Reflection and health must work in a `bun build --compile` binary whose
 * build tree (sources, node_modules, .proto files) no longer exists: they may
 * only use descriptors embedded in the bundle, never files read at run time.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type * as grpc from "@grpc/grpc-js";
import { cpSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readUntil } from "../helpers/process.ts";
import { protoClient, unary } from "./proto-client.ts";

const ROOT = join(import.meta.dir, "../..");
/** Build-only or type-only packages the bundle never needs (they are large). */
const SKIP = new Set(["typescript", "@typescript", "bun-types", "@types", ".bin", ".cache"]);

let work = "";
let proc: Bun.Subprocess<"ignore", "pipe", "pipe"> | undefined;
let port = 0;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "tasklane-grpc-bin-"));
  const tree = join(work, "tree");
  for (const dir of ["src", "test/grpc", "test/helpers"]) cpSync(join(ROOT, dir), join(tree, dir), { recursive: true });
  for (const entry of readdirSync(join(ROOT, "node_modules"))) {
    if (SKIP.has(entry)) continue;
    const from = join(ROOT, "node_modules", entry);
    if (entry === "@bufbuild") {
      // Only the runtime; the buf CLI binaries are 100+ MB.
      cpSync(join(from, "protobuf"), join(tree, "node_modules/@bufbuild/protobuf"), { recursive: true });
      continue;
    }
    cpSync(from, join(tree, "node_modules", entry), { recursive: true });
  }
  const outfile = join(work, "bin", "serve-fake");
  const result = await Bun.build({
    entrypoints: [join(tree, "test/grpc/fixtures/serve-fake.ts")],
    minify: true,
    bytecode: true,
    format: "esm",
    target: "bun",
    compile: { outfile, autoloadDotenv: false, autoloadBunfig: false, autoloadTsconfig: false, autoloadPackageJson: false },
  });
  if (!result.success) throw new Error(result.logs.map(String).join("\n"));
  rmSync(tree, { recursive: true, force: true });

  const cwd = mkdtempSync(join(work, "cwd-"));
  proc = Bun.spawn([outfile], { cwd, stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { PATH: "/usr/bin:/bin" } });
  const { text: out, ended } = await readUntil(proc.stdout, (text) => /port=\d+/.test(text));
  if (ended) throw new Error(`binary exited (${await proc.exited}): ${out} ${await new Response(proc.stderr).text()}`);
  port = Number(/port=(\d+)/.exec(out)![1]);
}, 120_000);

afterAll(async () => {
  if (proc) {
    proc.kill("SIGTERM");
    await proc.exited;
  }
  if (work) rmSync(work, { recursive: true, force: true });
});

type ReflectionResponse = {
  listServicesResponse?: { service: { name: string }[] };
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
};

async function reflect(request: Record<string, unknown>): Promise<ReflectionResponse> {
  const client = protoClient("grpc/reflection/v1/reflection.proto", "grpc.reflection.v1.ServerReflection", port);
  const call = (client as unknown as Record<string, () => grpc.ClientDuplexStream<unknown, ReflectionResponse>>).ServerReflectionInfo!.call(client);
  const res = new Promise<ReflectionResponse>((resolve, reject) => {
    call.once("data", resolve);
    call.once("error", reject);
  });
  call.write({ host: "", ...request });
  call.end();
  try {
    return await res;
  } finally {
    client.close();
  }
}

test("the compiled binary serves reflection from embedded descriptors", async () => {
  const list = await reflect({ listServices: "*" });
  expect(list.listServicesResponse?.service.map((s) => s.name).sort()).toEqual([
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
    "solti.v1.SoltiApi",
    "tasklane.v1.AgentService",
  ]);
  const file = await reflect({ fileContainingSymbol: "tasklane.v1.AgentService" });
  expect((file.fileDescriptorResponse?.fileDescriptorProto ?? []).map((b) => fromBinary(FileDescriptorProtoSchema, b).name)).toEqual([
    "tasklane/v1/agent.proto",
    "solti/v1/types.proto",
  ]);
});

test("the compiled binary answers health and SoltiApi calls", async () => {
  const health = protoClient("grpc/health/v1/health.proto", "grpc.health.v1.Health", port);
  const solti = protoClient("solti/v1/api.proto", "solti.v1.SoltiApi", port);
  try {
    expect(await unary(health, "Check", { service: "" })).toEqual({ status: "SERVING" });
    expect(await unary(solti, "GetTaskStatus", { taskId: "tsk_x" })).toEqual({});
  } finally {
    health.close();
    solti.close();
  }
});
