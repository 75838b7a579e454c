#!/usr/bin/env bash
# Runs every test of factum, installing what the tests need first.
# Usage: ./scripts/test.sh          (from anywhere in the repository)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# One build of everything, run once: incremental caches would only fill the disk (they
# grew to 20 GB here), and a clean build of the workspace's crates is no slower without.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step "provisioning: the pinned toolchain, Node.js, Python, Chromium, PostgreSQL, NATS and a Kafka-protocol broker (scripts/provision.sh)"
# Tests that need a server fail without it; they are never skipped. The NATS tests also
# start throwaway servers of their own (FACTUM_NATS_SERVER) to stop and restart them.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"; scripts/provision.sh stop || true' EXIT
eval "$(scripts/provision.sh)"

# Every feature is tested together: the conformance suite, each store backend, the NATS
# and Kafka event buses, HTTP, the testing fixtures, the progress bar, the codegen CLI,
# and the PostgreSQL benchmarks (run once each, in test mode). Each feature alone is built
# below.
readonly features="factum/conformance,factum/testing,factum/progress,factum/sqlite,factum/postgres,factum/nats,factum/kafka,factum/http,factum/otel,factum-codegen/cli,factum-benches/postgres,factum-benches/bus,factum-example-orders/postgres"

step "formatting"
cargo fmt --all -- --check
cargo fmt --manifest-path benches/postgres-es/Cargo.toml -- --check

step "a domain crate needs only factum: what each crate pulls in"
# The names of the packages `cargo tree` lists (a failure of cargo tree fails the step).
deps() { cargo tree --locked -e "$1" --prefix none --format '{p}' "${@:2}" | awk '{ print $1 }' | sort -u; }
tree=$(deps normal -p factum --no-default-features)
forbidden=$(grep -xE 'indicatif|pretty_assertions|clap' <<< "$tree" || true)
[ -z "$forbidden" ] || { echo "factum without features depends on: $forbidden"; exit 1; }
tree=$(deps normal -p factum-codegen)
! grep -qx clap <<< "$tree" || { echo "factum-codegen's library depends on clap"; exit 1; }
tree=$(deps normal,dev -p factum-example-eligibility --depth 1)
direct=$(grep -vx factum-example-eligibility <<< "$tree" | tr '\n' ' ')
[ "$direct" = "factum serde thiserror " ] || { echo "examples/eligibility depends on more than factum, serde and thiserror: $direct"; exit 1; }
echo "factum --no-default-features: no indicatif, pretty_assertions or clap; factum-codegen: no clap; examples/eligibility: $direct"
# Its tests use tempfile (a dev-dependency); what a user of the crate gets is checked.
tree=$(deps normal -p factum-example-member-profile --depth 1)
direct=$(grep -vx factum-example-member-profile <<< "$tree" | tr '\n' ' ')
[ "$direct" = "factum serde thiserror " ] || { echo "examples/member-profile depends on more than factum, serde and thiserror: $direct"; exit 1; }
echo "examples/member-profile: $direct"
tree=$(deps normal -p factum-example-course-enrolment --depth 1)
direct=$(grep -vx factum-example-course-enrolment <<< "$tree" | tr '\n' ' ')
[ "$direct" = "factum serde thiserror " ] || { echo "examples/course-enrolment depends on more than factum, serde and thiserror: $direct"; exit 1; }
echo "examples/course-enrolment: $direct"

step "clippy, warnings denied"
cargo clippy --workspace --all-targets --features "$features" --locked -- -D warnings

step "each feature alone, none and all: what ships builds without warnings"
# A user enables any one of them: each must build, and leave nothing unused, on its own.
for feature in "" sqlite postgres nats kafka http conformance testing progress otel; do
    echo "factum --no-default-features${feature:+ --features $feature}"
    cargo clippy --quiet -p factum --lib --no-default-features ${feature:+--features "$feature"} --locked -- -D warnings
done
echo "factum --all-features (every target)"
cargo clippy --quiet -p factum --all-targets --all-features --locked -- -D warnings
# The tests that need no backend build without one (the others name their features).
echo "factum --no-default-features (every target)"
cargo clippy --quiet -p factum --all-targets --no-default-features --locked -- -D warnings
for feature in "" operator cli; do
    echo "factum-codegen --no-default-features${feature:+ --features $feature}"
    cargo clippy --quiet -p factum-codegen --lib --bins --no-default-features ${feature:+--features "$feature"} --locked -- -D warnings
done

step "benches/postgres-es (a workspace of its own) builds and runs once against PostgreSQL"
CI="${CI:-true}" cargo test --quiet --manifest-path benches/postgres-es/Cargo.toml --benches --locked --target-dir target/postgres-es

step "the compile-time benchmark builds both of its domain crates once (benches/compile-time, N = 10)"
# One build of each, timed but not judged (the figures are in BENCHMARKS.md). Its
# dependencies stay in target/compile-bench (about 240 MB): a later run builds only the
# two crates.
benches/compile-time/run.sh --reps 1 --target-dir "${CARGO_TARGET_DIR:-target}/compile-bench" 10

step "tests: unit, integration, properties, snapshots, compile-fail UI, doc tests"
# CI=true makes insta fail on a changed snapshot instead of writing a new one.
test_log="$scratch/test.log"
CI="${CI:-true}" cargo test --workspace --all-targets --features "$features" --locked 2>&1 | tee "$test_log"
CI="${CI:-true}" cargo test --workspace --doc --features "$features" --locked 2>&1 | tee -a "$test_log"

step "documentation builds without broken links"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --features "$features" --locked --quiet

step "the main job runs end to end, twice on the same files (the history grows, projections resume)"
cargo run --quiet --locked -p factum-demo -- --dir "$scratch/demo" > "$scratch/run1.txt"
cargo run --quiet --locked -p factum-demo -- --dir "$scratch/demo" > "$scratch/run2.txt"
expect_line() { # FILE PATTERN WHAT
    grep -qE "$2" "$1" || { cat "$1"; echo "the main job did not show that $3"; exit 1; }
}
expect_line "$scratch/run2.txt" '^run 2: the store holds' "the second order run saw the first"
expect_line "$scratch/run1.txt" 'coordinator_task_list +v1: no checkpoint yet' "the first run built the projections from the start"
for projection in coordinator_task_list member_task_history daily_analytics; do
    expect_line "$scratch/run2.txt" "^$projection +v1: resumed from checkpoint [1-9]" "$projection resumed from its checkpoint"
done
expect_line "$scratch/run2.txt" '^T-002-3 +Help with lunch .*\[open\] with chloe' "the coordinator's list answered"
expect_line "$scratch/run2.txt" 'T-002-2 +Wound dressing change +took over from ben' "amira's history answered"
expect_line "$scratch/run2.txt" '^today, [0-9-]+: [0-9]+ created, [0-9]+ completed, average completion time ([0-9]+ s|-)' "the analytics answered"
expect_line "$scratch/run2.txt" '^daily_analytics +checkpoint +[0-9]+, head +[0-9]+: 0 events' "the lag after catching up"
expect_line "$scratch/run2.txt" '^retried create of T-[0-9]+-P: answered from its record \(version 1, position [0-9]+, event [0-9a-f-]+\), recorded once' "a retried command was answered from its record"
expect_line "$scratch/run2.txt" "^ben, not the assignee, completing: aggregate .Task.: stream .Task-T-[0-9]+-P.: command .CompleteTask. denied to care_team .ben.: only the assigned member or the task's coordinator may complete it" "the task policy denied a member who does not have the task"
expect_line "$scratch/run2.txt" '^fay, a relative, completing: command .CompleteTask.: actor kind .family. is unknown \(known: care_coordinator, care_team\)' "the application refused an unknown kind of actor"
expect_line "$scratch/run2.txt" '^someone without an actor completing: command .CompleteTask. has no actor' "the application refused a command without an actor"
expect_line "$scratch/run2.txt" '^the audit record of T-[0-9]+-P holds 1 denial' "the denial is in the audit record"
expect_line "$scratch/run2.txt" '^retried completion of T-[0-9]+-P: the same answer \(version 3, event [0-9a-f-]+\), one TaskCompleted in the stream' "a retried completion recorded once"
expect_line "$scratch/run2.txt" '^GetTaskById T-[0-9]+-P, at least position [0-9]+: \[done\] by amira \(read model at position [0-9]+, [0-9]+ event\(s\) behind the log, fresh\)' "a query waited for its own write"
expect_line "$scratch/run2.txt" '^FindOpenTasksByCoordinator dana, page 1 of 2 \(4 open in all; read model at position [0-9]+' "a paged query answered with its freshness"
expect_line "$scratch/run2.txt" '^POST /commands/CreateTask as dana -> 201 Created: Task-T-002-H at version 1' "a command over HTTP created its stream"
expect_line "$scratch/run2.txt" '^POST /commands/AssignTask as dana, If-Match "1" -> 412: stream .Task-T-002-H. is at version 2.* \(ETag "2"\)' "a stale If-Match was refused with 412"
expect_line "$scratch/run2.txt" "^POST /commands/CompleteTask as ben -> 403: only the assigned member or the task's coordinator may complete it" "a denial over HTTP"
expect_line "$scratch/run2.txt" '^POST /commands/CompleteTask as amira, Idempotency-Key [0-9a-f-]+ -> 200 \(version 3\), retried -> 200 with the same answer; the stream holds 1 TaskCompleted' "a retried Idempotency-Key recorded once"
expect_line "$scratch/run2.txt" '^GET /queries/GetTaskById\?task_id=T-002-H&minPosition=[0-9]+ -> 200: completed by amira \(read model at position [0-9]+, fresh\)' "a query over HTTP waited for its own write"
expect_line "$scratch/run2.txt" '^GET /events\?streamType=Task as dana: hung up after 1 event, resumed with Last-Event-ID [0-9]+: saw positions \[[0-9]+, [0-9]+, [0-9]+\], each once, in order' "an SSE subscriber resumed and saw every event once"
expect_line "$scratch/run2.txt" '^GET /console/ -> 200 \(the console\); as olga: head [0-9]+, 3 projections: coordinator_task_list at [0-9]+, member_task_history at [0-9]+, daily_analytics at [0-9]+$' "the operator's console was served and answered over HTTP"
expect_line "$scratch/run2.txt" '^GET /metrics -> [0-9]+ series; factum_commands_total\{command="CompleteTask",aggregate="Task",outcome="denied"\} 1; event_store_size_bytes [1-9][0-9]*$' "the service's metrics were scraped over HTTP"
expect_line "$scratch/run1.txt" '^C-legacy: EvidenceRecorded v1 \(income_monthly 1750\) read as income 1750.00 a month; decided: eligible' "a check an older release stored was read through its upcast"
expect_line "$scratch/run2.txt" '^C-legacy is stored from an earlier run: version 4, decided: true' "the second eligibility run found the first's check"
expect_line "$scratch/run2.txt" '^tom +home_care +C-[0-9]+-1: ineligible: aged 40 with income 2300.00 a month: home care needs 65 or over, or at most 1800.00' "a check was decided ineligible, with its reason"
expect_line "$scratch/run2.txt" '^deciding C-[0-9]+-refused with no evidence: refused: no income evidence recorded' "a decision without evidence was refused"
expect_line "$scratch/run2.txt" '^ChecksOfMember tom: 4 check\(s\) \(read model at position [0-9]+, 0 event\(s\) behind\)' "the eligibility read model answered with both runs' checks"
expect_line "$scratch/run2.txt" '^MemberRegistered as stored: \{"email":"pii:v2:[^"]*","member_id":"M-[0-9]+-maria","phone":"pii:v2:bundled"' "a member's personal fields were sealed at rest"
expect_line "$scratch/run2.txt" '^export of M-[0-9]+-maria: 5 event\(s\), holds m.lopez@example.net: yes; as CloudEvents \(application/cloudevents-batch\+json\): 5 event\(s\), holds m.lopez@example.net: yes' "the data access request was exported, as JSON and as CloudEvents"
expect_line "$scratch/run2.txt" '^M-[0-9]+-maria after forgetting: registered, email "", phone "\[forgotten\]", consents 0' "a forgotten member still loads, with the replacements"
expect_line "$scratch/run2.txt" '^verify_signed after forgetting: [0-9]+ events in [0-9]+ streams verified: intact' "both runs' signed checkpoints verified after forgetting"
expect_line "$scratch/run2.txt" "^inclusion of M-[0-9]+-maria's first event \(position [0-9]+\) in the checkpoint of [0-9]+ events: proven" "a forgotten member's event was proven in the checkpoint"
expect_line "$scratch/run2.txt" '^store .*course-enrolment.sqlite3: the courses of run [0-9]{2,};' "the second course-enrolment run added to the first's history"
expect_line "$scratch/run2.txt" '^  ada-[0-9]+ cannot take rust-[0-9]+: ada-[0-9]+ takes 3 courses already, the most a student takes' "a student over her course limit was refused with the reason"
expect_line "$scratch/run2.txt" '^    (linus|margaret)-[0-9]+ took it \(decided [0-9]+ times?, position [0-9]+\)' "one racer took the last seat"
expect_line "$scratch/run2.txt" '^    (linus|margaret)-[0-9]+ was told: course rust-[0-9]+ is full: its 2 seats are taken' "the other racer was told why"
cargo run --quiet --locked -p factum-example-care-tasks --bin care-tasks -- --db "$scratch/demo/care-tasks.sqlite3" --rebuild > "$scratch/rebuild.txt"
for projection in coordinator_task_list member_task_history daily_analytics; do
    expect_line "$scratch/rebuild.txt" "^rebuilt $projection +[1-9][0-9]* events applied, 0 parked" "$projection was rebuilt"
done

step "the committed schemas are up to date and keep the published contract"
cargo run --quiet --locked -p factum-example-orders --bin orders -- --registry > "$scratch/registry.json"
cargo run --quiet --locked -p factum-codegen --features cli --bin factum -- schema generate --registry "$scratch/registry.json" --out schemas/orders --check \
    --title "Order service" --description "The order lifecycle of the example shop."
cargo run --quiet --locked -p factum-codegen --features cli --bin factum -- schema lint --registry "$scratch/registry.json" --deny-warnings
# Against the release record, not the last commit: regenerating and committing a changed
# schema leaves the record as it was released, so the change is still refused. New
# versions are released with `factum schema release` (see README).
cargo run --quiet --locked -p factum-codegen --features cli --bin factum -- schema check --registry "$scratch/registry.json" --published schemas/orders-released.json --event OrderShipped=full
# The record only grows: every committed version of it is kept unchanged in today's.
if git rev-parse --git-dir > /dev/null 2>&1; then
    for rev in $(git rev-list HEAD -- schemas/orders-released.json); do
        git show "$rev:schemas/orders-released.json" > "$scratch/released-$rev.json"
        cargo run --quiet --locked -p factum-codegen --features cli --bin factum -- schema check --registry schemas/orders-released.json --published "$scratch/released-$rev.json" --event OrderShipped=full \
            || { echo "schemas/orders-released.json changed what commit $rev released"; exit 1; }
    done
elif [ "${CI:-}" = true ]; then
    echo "not a git checkout: the release record's history cannot be checked (CI=true)"; exit 1
else
    echo "not a git checkout: the release record's history is not checked"
fi

step "all tests passed"
# One closing line for all the test binaries above.
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "%d passed, %d failed\n", passed, failed }' "$test_log"
