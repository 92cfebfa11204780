/**
 * Handlers of `tasklane.v1.AgentService`, the extensions solti v1 lacks
 * (cancel, start, restart, wait, run, watch, info). Thin, like SoltiApi.
 *
 * Message size: every answer that carries one task (and a WatchTasks event:
 * the task plus an id) fits the 4 MiB cap because the domain refuses larger
 * specs (validate-spec.ts, `MAX_SPEC_TEXT_BYTES`). RunTask adds runs and up to
 * 100 output lines per stream; when they would not fit, its oldest lines are
 * dropped (`encodeRunTaskResponse`).
 */
import type { AgentService } from "../gen/tasklane/v1/agent_pb.ts";
import type { TaskService } from "../tasks/task-service.ts";
import { agentStopping, mapSubscription, type HandlersOf } from "./bind-service.ts";
import { infoToProto, inProtoTerms, specFromProto, taskToProto, waitTimeoutFromProto, watchRecordToProto } from "./convert.ts";
import { encodeRunTaskResponse } from "./encode-task.ts";

/** What AgentService needs besides the domain service. */
export interface AgentServiceDeps {
  service: TaskService;
  /** Agent version, used when the info document has none. */
  version: string;
  /** The REST info document (GET /api/v1/info). */
  info: () => unknown;
}

/** AgentService handlers over the domain service. */
export function createAgentServiceHandlers({ service, version, info }: AgentServiceDeps): HandlersOf<typeof AgentService> {
  return {
    async cancelTask(req, ctx) {
      return { task: taskToProto(await service.cancel(req.taskId, ctx.caller)) };
    },
    async startTask(req, ctx) {
      return { task: taskToProto(await service.start(req.taskId, ctx.caller)) };
    },
    async restartTask(req, ctx) {
      return { task: taskToProto(await service.restart(req.taskId, ctx.caller)) };
    },
    async waitTask(req, ctx) {
      const timeoutMs = waitTimeoutFromProto(req.timeoutMs);
      return { task: taskToProto(await service.wait(req.taskId, timeoutMs, ctx.caller, ctx.signal)) };
    },
    async runTask(req, ctx) {
      service.requireWrite(ctx.caller); // a viewer gets PERMISSION_DENIED whatever its spec holds
      const spec = specFromProto(req.spec);
      const timeoutMs = waitTimeoutFromProto(req.timeoutMs);
      const out = await service.run(spec, ctx.caller, timeoutMs, ctx.signal).catch(inProtoTerms);
      // Encoded by hand and cut to the message budget: the oldest output lines go first.
      return encodeRunTaskResponse(out);
    },
    watchTasks(req, ctx) {
      const opts: { after?: number; slot?: string; labels?: Record<string, string> } = {};
      if (req.after !== undefined) opts.after = Number(req.after);
      if (req.slot !== undefined) opts.slot = req.slot;
      if (Object.keys(req.labels).length > 0) opts.labels = { ...req.labels };
      // A watch has no end of its own: it ends only when the agent stops.
      return mapSubscription(service.watch(opts, ctx.caller), ctx.signal, watchRecordToProto, agentStopping);
    },
    getInfo() {
      return infoToProto(info(), version);
    },
  };
}
