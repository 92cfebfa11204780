/**
 * Expected-value builders with asymmetric matchers for the ids and times the
 * agent chooses. They answer `any`: a pattern full of `expect.any(Number)` is
 * not itself a `Task`, but `toEqual` compares it as one.
 */
import { expect } from "bun:test";
import type { ErrorCode } from "../../src/errors.ts";
import type { Phase } from "../../src/tasks/model.ts";

/** `metadata` of task `id` at `resourceVersion` (a number or a matcher); times are any numbers. */
export function metaOf(id: string, resourceVersion: unknown): any {
  return { id, resourceVersion, createdAt: expect.any(Number), updatedAt: expect.any(Number) };
}

/** A finished run of `attempt`; `more` adds exitCode / error. */
export function runOf(attempt: number, phase: Phase, more: { exitCode?: number; error?: string } = {}): any {
  return { attempt, phase, startedAt: expect.any(Number), finishedAt: expect.any(Number), ...more };
}

/** The error every transport gives for an unknown task id. */
export function notFound(id: string): { code: ErrorCode; message: string } {
  return { code: "TaskNotFound", message: `task ${id} not found` };
}
