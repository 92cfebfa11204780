/**
 * Start a gRPC server on port 0 over the fake task service, with clients
 * built from the .proto files; everything is closed by `await using`.
 */
import type * as grpc from "@grpc/grpc-js";
import { createGrpcServer, type GrpcServer, type GrpcServerOptions } from "../../src/grpc/grpc-server.ts";
import { createFakeTaskService, type FakeTaskService } from "./fake-service.ts";
import { protoClient } from "./proto-client.ts";

export interface TestServer {
  fake: FakeTaskService;
  server: GrpcServer;
  port: number;
  solti: grpc.Client;
  agent: grpc.Client;
  /** Another client (closed with the server). */
  client(file: string, service: string, options?: grpc.ClientOptions): grpc.Client;
  [Symbol.asyncDispose](): Promise<void>;
}

export const TEST_INFO = { name: "tasklane", version: "0.0.0-test", uptimeMs: 5, limits: { maxConcurrent: 4 }, capabilities: ["cancel"] };

/** Start a serving server; `opts` overrides the defaults (fake service, test info). */
export async function startServer(opts: Partial<GrpcServerOptions> = {}, fake = createFakeTaskService()): Promise<TestServer> {
  const server = createGrpcServer({ service: fake, version: "0.0.0-test", info: () => TEST_INFO, ...opts });
  const port = await server.listen("127.0.0.1:0");
  server.setServing(true);
  const clients: grpc.Client[] = [];
  const client = (file: string, service: string, options?: grpc.ClientOptions) => {
    const c = protoClient(file, service, port, options);
    clients.push(c);
    return c;
  };
  return {
    fake,
    server,
    port,
    solti: client("solti/v1/api.proto", "solti.v1.SoltiApi"),
    agent: client("tasklane/v1/agent.proto", "tasklane.v1.AgentService"),
    client,
    async [Symbol.asyncDispose]() {
      for (const c of clients) c.close();
      await server.close(0);
      fake.close();
    },
  };
}
