// A care ward driven through the generated client, against the real server whose
// address is the first argument: what it saw is printed as JSON for the Rust test.
import { Client, ProblemError, TaskListEntry } from "./client";

declare const process: { argv: string[]; exitCode: number };

async function main(): Promise<void> {
  const base = process.argv[2] ?? "";
  const dana = new Client(base, "token-dana");
  const ben = new Client(base, "token-ben");
  const at = "2025-03-10T08:00:00Z";
  const key = "0190f1c2-7a4b-7c3d-9e8f-0123456789ab";
  const create = { task_id: "T-9", title: "Dressing", care_recipient: "Mr. Okafor", due: "2025-03-10T12:00:00Z", at };
  const created = await dana.createTask(create, { idempotencyKey: key });
  const retried = await dana.createTask(create, { idempotencyKey: key });
  const assigned = await dana.assignTask({ task_id: "T-9", member: "amira", at }, { ifMatch: created.version });
  let stale: number | null = null;
  try {
    await dana.assignTask({ task_id: "T-9", member: "ben", at }, { ifMatch: created.version });
  } catch (error) {
    if (error instanceof ProblemError) {
      stale = error.problem.status;
    }
  }
  let denied: string | null = null;
  try {
    await ben.completeTask({ task_id: "T-9", completed_by: "ben", at, note: null });
  } catch (error) {
    if (error instanceof ProblemError) {
      denied = error.problem.type;
    }
  }
  const position = assigned.position ?? 0;
  const task = await dana.getTaskById({ task_id: "T-9" }, position);
  const entry: TaskListEntry | null = task.data;
  const page = await dana.findOpenTasksByCoordinator({ coordinator: "dana", page: 1, size: 1 }, position);
  const stream = await dana.readStream(created.streamId);
  console.log(
    JSON.stringify({
      created: [created.version, created.streamId],
      retried: retried.commandId === created.commandId && retried.position === created.position,
      stale,
      denied,
      assignee: entry === null ? null : entry.assignee,
      fresh: !task.freshness.stale,
      page: page.page === null ? null : [page.page.total, page.data.length],
      events: stream.events.map((event) => event.name),
    }),
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
