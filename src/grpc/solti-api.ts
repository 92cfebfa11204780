/**
 * Handlers of `solti.v1.SoltiApi` — thin: convert, call the domain service,
 * convert back. Semantics (CONTRACT §5): GetTaskStatus answers an unknown id
 * with OK and no task; ListTaskRuns and StreamTaskLogs answer NOT_FOUND;
 * DeleteTask is idempotent. A ListTasks page ends early rather than exceed
 * the 4 MiB message cap (`encodeListTasksResponse`); ListTaskRuns answers the
 * newest runs that fit under it (`encodeListTaskRunsResponse`).
 */
import type { SoltiApi } from "../gen/solti/v1/api_pb.ts";
import type { TaskService } from "../tasks/task-service.ts";
import { agentStopping, mapSubscription, type HandlersOf } from "./bind-service.ts";
import { encodeLogEvent, inProtoTerms, queryFromProto, specFromProto } from "./convert.ts";
import { encodeGetTaskStatusResponse, encodeListTaskRunsResponse, encodeListTasksResponse } from "./encode-task.ts";

/** SoltiApi handlers over `service`. */
export function createSoltiApiHandlers(service: TaskService): HandlersOf<typeof SoltiApi> {
  return {
    async submitTask(req, ctx) {
      service.requireWrite(ctx.caller); // a viewer gets PERMISSION_DENIED whatever its spec holds
      const { taskId } = await service.submit(specFromProto(req.spec), ctx.caller).catch(inProtoTerms);
      return { taskId };
    },
    getTaskStatus(req, ctx) {
      // The read path: encoded by hand (byte-identical to toBinary, see encode-task.ts).
      return encodeGetTaskStatusResponse(service.find(req.taskId, ctx.caller));
    },
    listTasks(req, ctx) {
      // Encoded by hand, and cut to the message budget: the client pages on with offset += tasks.length.
      const { tasks, total } = service.list(queryFromProto(req), ctx.caller);
      return encodeListTasksResponse(tasks, total).bytes;
    },
    listTaskRuns(req, ctx) {
      // Cut to the message budget: the newest runs that fit.
      return encodeListTaskRunsResponse(service.runs(req.taskId, ctx.caller));
    },
    async deleteTask(req, ctx) {
      await service.delete(req.taskId, ctx.caller);
      return {};
    },
    streamTaskLogs(req, ctx) {
      const sub = service.logs(req.taskId, { follow: true }, ctx.caller);
      // A followed log is complete when its task ended. Cut short, it ends OK if the task was deleted
      // (as before), else UNAVAILABLE: the agent is stopping (a failed lookup: its store closed).
      const cutError = () => {
        try {
          return service.find(req.taskId, ctx.caller) === undefined ? undefined : agentStopping();
        } catch {
          return agentStopping();
        }
      };
      return mapSubscription(sub, ctx.signal, (rec) => encodeLogEvent(rec.event), cutError);
    },
  };
}
