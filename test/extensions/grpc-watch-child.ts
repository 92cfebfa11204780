/**
 * A gRPC WatchTasks client in its own process, for the slow-watcher test: the
 * test stops this process (SIGSTOP), so it truly reads nothing, then lets it
 * go on (SIGCONT). Usage: bun grpc-watch-child.ts HOST:PORT LAST_ID
 *
 * Prints "ready" after the first event, then, once event LAST_ID arrived, one
 * JSON line: the lagged events and whether ids were consecutive except where
 * a lagged said how many were skipped.
 */
import type { MessageShape } from "@bufbuild/protobuf";
import { AgentService } from "../../src/gen/tasklane/v1/agent_pb.ts";
import { grpcConnection, serverStream } from "../contract/grpc-client.ts";
import type { TestAgent } from "../helpers/start-agent.ts";

const [addr = "", lastArg = "0"] = process.argv.slice(2);
const lastId = Number(lastArg);
const conn = grpcConnection({ grpcAddr: addr } as TestAgent);
const call = serverStream(conn, AgentService.method.watchTasks, {});
let last = 0;
const lagged: { id: number; skipped: number }[] = [];
const problems: string[] = [];
call.on("data", (m: MessageShape<typeof AgentService.method.watchTasks.output>) => {
  const id = Number(m.id);
  const skipped = m.kind.case === "lagged" ? Number(m.kind.value) : undefined;
  if (skipped !== undefined) lagged.push({ id, skipped });
  if (id !== last + (skipped ?? 1)) problems.push(`event after ${last} has id ${id}`);
  last = id;
  if (id === 1) console.log("ready");
  if (id >= lastId) {
    console.log(JSON.stringify({ last, lagged, problems }));
    process.exit(0);
  }
});
call.on("error", (err) => {
  console.log(JSON.stringify({ last, lagged, problems: [...problems, `stream error: ${err.message}`] }));
  process.exit(1);
});
