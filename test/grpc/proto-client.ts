/**
 * Clients built only from the .proto files (proto-loader + grpc-js, no
 * generated code), as a solti-era or third-party client would build them.
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { join } from "node:path";

export const PROTO_DIR = join(import.meta.dir, "../../proto");
const MiB4 = 4 * 1024 * 1024;

const loaderOptions: protoLoader.Options = { longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [PROTO_DIR] };

type UnaryFn = (req: unknown, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;
type StreamFn = (req: unknown, md: grpc.Metadata) => grpc.ClientReadableStream<unknown>;

function load(file: string): grpc.GrpcObject {
  return grpc.loadPackageDefinition(protoLoader.loadSync(file, loaderOptions));
}

function lookup(root: grpc.GrpcObject, name: string): grpc.ServiceClientConstructor {
  let node: unknown = root;
  for (const part of name.split(".")) node = (node as Record<string, unknown>)[part];
  return node as grpc.ServiceClientConstructor;
}

/** A client of `service` (full name) from `file` (relative to proto/) on `127.0.0.1:port`, 4 MiB receive limit. */
export function protoClient(file: string, service: string, port: number, options: grpc.ClientOptions = {}): grpc.Client {
  const Ctor = lookup(load(file), service);
  return new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
    "grpc.max_receive_message_length": MiB4,
    ...options,
  });
}

/** Promise form of a unary call; rejects with the grpc-js ServiceError. */
export function unary<T = Record<string, unknown>>(client: grpc.Client, method: string, req: unknown, md = new grpc.Metadata()): Promise<T> {
  const fn = (client as unknown as Record<string, UnaryFn>)[method];
  if (!fn) throw new Error(`no method ${method}`);
  return new Promise((resolve, reject) => {
    fn.call(client, req, md, (err, res) => (err ? reject(err) : resolve(res as T)));
  });
}

/** Start a server-streaming call. */
export function serverStream<T = Record<string, unknown>>(client: grpc.Client, method: string, req: unknown, md = new grpc.Metadata()): grpc.ClientReadableStream<T> {
  const fn = (client as unknown as Record<string, StreamFn>)[method];
  if (!fn) throw new Error(`no method ${method}`);
  return fn.call(client, req, md) as grpc.ClientReadableStream<T>;
}

/**
 * Send `bytes` as the request of `path` (a unary call, bypassing any serializer) to `addr`
 * (`host:port`, or a port on 127.0.0.1); its status as `{ code, details }` (0 "OK" on success).
 */
export function rawCall(addr: string | number, path: string, bytes: Uint8Array): Promise<{ code: number; details: string }> {
  const client = new grpc.Client(typeof addr === "number" ? `127.0.0.1:${addr}` : addr, grpc.credentials.createInsecure());
  const same = (b: Buffer) => b;
  return new Promise((resolve) => {
    client.makeUnaryRequest(path, same, same, Buffer.from(bytes), (err) => {
      client.close();
      resolve(err ? { code: err.code, details: err.details } : { code: 0, details: "OK" });
    });
  });
}

/** The error a call rejected with, as `{ code, details }`. */
export async function failure(p: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await p;
  } catch (err) {
    const e = err as grpc.ServiceError;
    return { code: e.code, details: e.details };
  }
  throw new Error("expected the call to fail");
}

/** Collect every message of a server stream and its final status. */
export function collect<T = Record<string, unknown>>(
  stream: grpc.ClientReadableStream<T>,
): Promise<{ messages: T[]; code: number; details: string }> {
  const messages: T[] = [];
  return new Promise((resolve) => {
    stream.on("data", (m: T) => messages.push(m));
    stream.on("error", (e: grpc.ServiceError) => resolve({ messages, code: e.code, details: e.details }));
    stream.on("status", (s: grpc.StatusObject) => {
      if (s.code === grpc.status.OK) resolve({ messages, code: s.code, details: s.details });
    });
  });
}
