//! Running a command with identity on SQLite: `Repository::execute_with` with a context
//! (actor, tenant, fresh command id), a policy and the command record, against plain
//! `Repository::execute`, against the same command through the `Application` with
//! `ContextRules` middleware, and against the same work done with rusqlite by hand.
//!
//! Group `execute_sqlite`, one function per contender, one file each (created by
//! `SqliteStore::open`, so all four have the same schema; WAL, `synchronous = FULL`,
//! foreign keys on):
//!
//! - `factum/context_policy_record`: `execute_with(Deposit, ctx)` on a repository with a
//!   policy (the actor must be a `customer` and the account's owner); `ctx` names the
//!   actor and a tenant and has a fresh command id.
//! - `factum/plain`: `execute(Deposit)` on a repository without a policy, no actor. The
//!   command record is written on every execute (it cannot be turned off), so this
//!   differs from the first by the context's entries and the policy only.
//! - `factum/application`: the first one's command and context through
//!   `Application::execute`, with `ContextRules` (actor kinds, actor required) as
//!   middleware and the policy-bearing repository.
//! - `raw/rusqlite`: one write transaction with rusqlite's cached statements, mirroring
//!   what factum's SQLite `append_command` runs plus the load: `BEGIN IMMEDIATE`, look the
//!   command id up in `commands`, read the stream row, read the stream's events and
//!   decode and apply them by hand, the policy's check, the decision, `UPDATE` the
//!   stream's version, `INSERT` the event with its JSON metadata, `INSERT` the command
//!   record (the same SHA-256 fingerprint factum stores), `COMMIT`.
//!
//! Every iteration sends one `Deposit` to an account of its own whose stream holds
//! exactly three events (`AccountOpened`, two `Deposited`) and records a fourth. The
//! accounts are seeded, untimed, in blocks of 256 per transaction by the same raw code
//! on every file; the commands and contexts are built outside the timed routine
//! (`iter_batched`).
//!
//! Group `execute_sqlite_stages` is diagnostics, not contenders: the stages of factum's
//! `execute_with` timed alone on a file of their own (`command_outcome` of an unknown id,
//! `Repository::load` of a three-event stream, `append_command` of one event with its
//! record, an empty `spawn_blocking` round trip), and `raw/factum_shaped`: the statements
//! and transactions factum runs (record looked up on a reader connection, the stream read
//! in a read transaction there, then the write transaction, which looks both up again),
//! by hand on one thread; `raw/factum_shaped_one_connection` runs them all on the writer
//! connection.
//!
//! With `FACTUM_EXECUTE_PAIRED=<rounds>` set, the bench runs no criterion group: it
//! alternates the four contenders command by command for that many rounds (who goes
//! first rotates) and prints latency percentiles, so that a disk stall falls on all four
//! alike.
//!
//! Before timing, the bench checks on every file that the commands wrote one event each,
//! with the actor, tenant and command id (as causation id) in its metadata, and one
//! command record per command (read back through `SqliteStore`), that factum and raw
//! store the same fingerprint, and that a repeated command id on the factum side is
//! answered with the first outcome without writing. Run with
//! `cargo bench -p factum-benches --bench execute_sqlite`; the figures are recorded in
//! `BENCHMARKS.md` at the workspace root.

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use factum::application::{Application, ContextRules};
use factum::prelude::*;
use factum::store::{CommandRecord, SqliteStore};
use factum::uuid::Uuid;
use rusqlite::Connection;

#[path = "execute/account.rs"]
mod account;
#[path = "shared/sqlite.rs"]
mod sqlite;

use account::*;
use sqlite::raw_connection;
type Repo = Repository<Account, SqliteStore>;

/// A command a side ran in the checks: its account, its context, its event's id.
type Written = (String, CommandContext, Uuid);

/// The checks before timing: each side writes one event per command with the context's
/// metadata, and one command record.
#[allow(clippy::too_many_arguments)]
fn check(
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
    policed: &Repo,
    plain: &Repo,
    application: &Application<SqliteStore>,
    raw: &Connection,
    seeders: [&Seeder; 4],
) {
    const COMMANDS: usize = 3;
    let [policed_seeder, plain_seeder, application_seeder, raw_seeder] = seeders;
    // The same accounts on every file, so the fingerprints can be compared.
    let mut written: Vec<(&str, Vec<Written>)> = Vec::new();

    let mut side = Vec::new();
    for _ in 0..COMMANDS {
        let account = policed_seeder.account();
        let ctx = identity();
        let executed = runtime
            .block_on(policed.execute_with(
                Deposit {
                    account: account.clone(),
                    amount: AMOUNT,
                },
                ctx.clone(),
            ))
            .expect("executes");
        assert_eq!(executed.version, 4);
        assert_eq!(executed.state.balance, 3 * AMOUNT);
        assert_eq!(executed.event_ids.len(), 1);
        side.push((account, ctx, executed.event_ids[0]));
    }
    // A repeated command id is answered from its record, without writing.
    let (account, ctx, event_id) = &side[0];
    let again = runtime
        .block_on(policed.execute_with(
            Deposit {
                account: account.clone(),
                amount: AMOUNT,
            },
            ctx.clone(),
        ))
        .expect("answers");
    assert_eq!(again.event_ids, vec![*event_id]);
    assert_eq!(again.version, 4);
    assert_eq!(again.command_id, ctx.command_id);
    // A stranger is denied.
    let denied = runtime.block_on(policed.execute_with(
        Deposit {
            account: policed_seeder.account(),
            amount: AMOUNT,
        },
        CommandContext::new().actor(Actor::new("customer", "someone-else")),
    ));
    assert!(matches!(denied, Err(RepositoryError::Denied { .. })));
    written.push(("factum/context_policy_record", side));

    let mut side = Vec::new();
    for _ in 0..COMMANDS {
        let account = plain_seeder.account();
        let executed = runtime
            .block_on(plain.execute(Deposit {
                account: account.clone(),
                amount: AMOUNT,
            }))
            .expect("executes");
        assert_eq!(executed.version, 4);
        // The context `execute` made: no actor, no tenant.
        let ctx = CommandContext::new().command_id(executed.command_id);
        side.push((account, ctx, executed.event_ids[0]));
    }
    written.push(("factum/plain", side));

    let mut side = Vec::new();
    for _ in 0..COMMANDS {
        let account = application_seeder.account();
        let ctx = identity();
        let outcome = runtime
            .block_on(application.execute(
                Deposit {
                    account: account.clone(),
                    amount: AMOUNT,
                },
                ctx.clone(),
            ))
            .expect("executes");
        assert_eq!(outcome.version, 4);
        side.push((account, ctx, outcome.event_ids[0]));
    }
    let refused = runtime.block_on(application.execute(
        Deposit {
            account: application_seeder.account(),
            amount: AMOUNT,
        },
        CommandContext::new(),
    ));
    assert!(refused.is_err(), "ContextRules requires an actor");
    written.push(("factum/application", side));

    let mut side = Vec::new();
    for _ in 0..COMMANDS {
        let account = raw_seeder.account();
        let ctx = identity();
        let outcome = raw_execute(raw, &account, AMOUNT, &ctx).expect("executes");
        let RawOutcome::Executed { version, event_id } = outcome else {
            panic!("executed before: {outcome:?}");
        };
        assert_eq!(version, 4);
        side.push((account, ctx, event_id));
    }
    let (account, ctx, _) = &side[0];
    assert_eq!(
        raw_execute(raw, account, AMOUNT, ctx),
        Ok(RawOutcome::AlreadyExecuted { version: 4 })
    );
    written.push(("raw/rusqlite", side));

    // Read every file back through the store.
    let files = ["policed.db", "plain.db", "application.db", "raw.db"];
    let mut fingerprints = Vec::new();
    for ((name, side), file) in written.iter().zip(files) {
        let store = runtime
            .block_on(SqliteStore::open(dir.join(file)))
            .expect("open");
        let mut fingerprints_of_side = Vec::new();
        for (account, ctx, event_id) in side {
            let stream_id = Repo::stream_id(account);
            let events = runtime
                .block_on(store.read_stream(&stream_id, 1, 100))
                .expect("read");
            assert_eq!(events.len(), 4, "{name}: the stream holds 3 + 1 events");
            let event = &events[3];
            assert_eq!(event.event_id, *event_id, "{name}");
            assert_eq!(event.name, "Deposited", "{name}");
            assert_eq!(event.payload.get(), r#"{"amount":100}"#, "{name}");
            assert_eq!(event.metadata, ctx.event_metadata(), "{name}");
            assert_eq!(event.metadata.causation_id, Some(ctx.command_id), "{name}");
            let outcome = runtime
                .block_on(store.command_outcome(ctx.command_id))
                .expect("read")
                .unwrap_or_else(|| panic!("{name}: the command is recorded"));
            assert_eq!(outcome.stream_id, stream_id, "{name}");
            assert_eq!(outcome.stream_version, 4, "{name}");
            assert_eq!(outcome.event_ids, vec![*event_id], "{name}");
            assert_eq!(outcome.last_position, Some(event.position), "{name}");
            assert_eq!(outcome.first_position, Some(event.position), "{name}");
            fingerprints_of_side.push(outcome.fingerprint);
        }
        drop(store);
        let connection = Connection::open(dir.join(file)).expect("open");
        let (records, events): (i64, i64) = connection
            .query_row(
                "SELECT (SELECT count(*) FROM commands),
                        (SELECT count(*) FROM events WHERE stream_version = 4)",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .expect("count");
        assert_eq!(
            (records, events),
            (COMMANDS as i64, COMMANDS as i64),
            "{name}: one record and one event per command, none for a repeat or a denial"
        );
        fingerprints.push(fingerprints_of_side);
    }
    // The same account name and amount give the same digest on every side (the accounts
    // are numbered alike in every file).
    for side in &fingerprints[1..] {
        assert_eq!(side, &fingerprints[0]);
    }
}

fn execute_sqlite(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
    let dir = tempfile::tempdir_in(std::env::temp_dir()).expect("a temporary directory");
    let dir = dir.path();
    let open = |file: &str| {
        runtime
            .block_on(SqliteStore::open(dir.join(file)))
            .expect("open")
    };
    let policed = Repo::new(open("policed.db")).with_policy(policy);
    let plain = Repo::new(open("plain.db"));
    let application_store = open("application.db");
    let application = Application::builder(application_store.clone())
        .middleware(
            ContextRules::new()
                .actor_kinds(["customer"])
                .require_actor(),
        )
        .aggregate(Repo::new(application_store).with_policy(policy))
        .build()
        .expect("the application");
    // The raw file gets the same schema, then is written by hand.
    drop(open("raw.db"));
    let raw = raw_connection(&dir.join("raw.db"));

    let seeders = [
        Seeder::new(&dir.join("policed.db"), "acct", SEED_BLOCK),
        Seeder::new(&dir.join("plain.db"), "acct", SEED_BLOCK),
        Seeder::new(&dir.join("application.db"), "acct", SEED_BLOCK),
        Seeder::new(&dir.join("raw.db"), "acct", SEED_BLOCK),
    ];
    check(
        &runtime,
        dir,
        &policed,
        &plain,
        &application,
        &raw,
        [&seeders[0], &seeders[1], &seeders[2], &seeders[3]],
    );
    let [policed_seeder, plain_seeder, application_seeder, raw_seeder] = &seeders;
    if let Some(rounds) = std::env::var("FACTUM_EXECUTE_PAIRED")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
    {
        paired(
            rounds,
            &runtime,
            &policed,
            &plain,
            &application,
            &raw,
            &seeders,
        );
        return;
    }

    let mut group = c.benchmark_group("execute_sqlite");
    group.throughput(Throughput::Elements(1));
    group.bench_function("factum/context_policy_record", |b| {
        b.to_async(&runtime).iter_batched(
            || {
                (
                    Deposit {
                        account: policed_seeder.account(),
                        amount: AMOUNT,
                    },
                    identity(),
                )
            },
            |(command, ctx)| {
                let policed = &policed;
                async move { policed.execute_with(command, ctx).await.expect("executes") }
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("factum/plain", |b| {
        b.to_async(&runtime).iter_batched(
            || Deposit {
                account: plain_seeder.account(),
                amount: AMOUNT,
            },
            |command| {
                let plain = &plain;
                async move { plain.execute(command).await.expect("executes") }
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("factum/application", |b| {
        b.to_async(&runtime).iter_batched(
            || {
                (
                    Deposit {
                        account: application_seeder.account(),
                        amount: AMOUNT,
                    },
                    identity(),
                )
            },
            |(command, ctx)| {
                let application = &application;
                async move { application.execute(command, ctx).await.expect("executes") }
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("raw/rusqlite", |b| {
        b.iter_batched(
            || (raw_seeder.account(), identity()),
            |(account, ctx)| raw_execute(&raw, &account, AMOUNT, &ctx).expect("executes"),
            BatchSize::SmallInput,
        );
    });
    group.finish();
    stages(c, &runtime, dir);
}

/// The four contenders alternated command by command (who goes first rotates), each
/// command timed on its own: a disk stall then hits all four alike instead of one
/// criterion window. Prints latency percentiles.
fn paired(
    rounds: usize,
    runtime: &tokio::runtime::Runtime,
    policed: &Repo,
    plain: &Repo,
    application: &Application<SqliteStore>,
    raw: &Connection,
    seeders: &[Seeder; 4],
) {
    const NAMES: [&str; 4] = [
        "factum/context_policy_record",
        "factum/plain",
        "factum/application",
        "raw/rusqlite",
    ];
    let deposit = |seeder: &Seeder| Deposit {
        account: seeder.account(),
        amount: AMOUNT,
    };
    let mut times: [Vec<Duration>; 4] = Default::default();
    for round in 0..rounds {
        let mut policed_input = Some((deposit(&seeders[0]), identity()));
        let mut plain_input = Some(deposit(&seeders[1]));
        let mut application_input = Some((deposit(&seeders[2]), identity()));
        let mut raw_input = Some((seeders[3].account(), identity()));
        for turn in 0..4 {
            let which = (round + turn) % 4;
            let started = Instant::now();
            match which {
                0 => {
                    let (command, ctx) = policed_input.take().expect("an input");
                    drop(
                        runtime
                            .block_on(policed.execute_with(command, ctx))
                            .expect("executes"),
                    );
                }
                1 => {
                    let command = plain_input.take().expect("an input");
                    drop(runtime.block_on(plain.execute(command)).expect("executes"));
                }
                2 => {
                    let (command, ctx) = application_input.take().expect("an input");
                    drop(
                        runtime
                            .block_on(application.execute(command, ctx))
                            .expect("executes"),
                    );
                }
                _ => {
                    let (account, ctx) = raw_input.take().expect("an input");
                    raw_execute(raw, &account, AMOUNT, &ctx).expect("executes");
                }
            }
            times[which].push(started.elapsed());
        }
    }
    let micros = |duration: Duration| duration.as_secs_f64() * 1e6;
    let mut medians = [0.0; 4];
    println!("paired, {rounds} rounds, latency per command in µs");
    println!("| contender | p50 | p90 | p99 | mean |");
    for (which, times) in times.iter_mut().enumerate() {
        times.sort();
        let at = |q: f64| micros(times[((times.len() - 1) as f64 * q).round() as usize]);
        let mean = micros(times.iter().sum::<Duration>()) / times.len() as f64;
        medians[which] = at(0.5);
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            NAMES[which],
            at(0.5),
            at(0.9),
            at(0.99),
            mean
        );
    }
    for which in 0..3 {
        println!(
            "raw p50 / {} p50: {:.2}x",
            NAMES[which],
            medians[3] / medians[which]
        );
    }
}

/// Diagnostics: where factum's time goes. Each stage of `execute_with` on its own, on a
/// file of its own, and factum's statements run by hand on one thread.
fn stages(c: &mut Criterion, runtime: &tokio::runtime::Runtime, dir: &Path) {
    let path = dir.join("stages.db");
    let store = runtime.block_on(SqliteStore::open(&path)).expect("open");
    let repository = Repo::new(store.clone());
    // One account per seeding transaction: every timed read follows a write by another
    // connection, as in `execute`, where the previous command's commit precedes it.
    let seeder = Seeder::new(&path, "stage", 1);
    // The writer's own commit precedes an append in `execute`: seeded in blocks.
    let append_seeder = Seeder::new(&path, "append", SEED_BLOCK);
    let shaped_path = dir.join("shaped.db");
    drop(
        runtime
            .block_on(SqliteStore::open(&shaped_path))
            .expect("open"),
    );
    let writer = raw_connection(&shaped_path);
    let reader = Connection::open(&shaped_path).expect("open");
    reader
        .busy_timeout(Duration::from_secs(5))
        .expect("busy_timeout");
    let shaped_seeder = Seeder::new(&shaped_path, "acct", SEED_BLOCK);
    let account = shaped_seeder.account();
    assert_eq!(
        raw_factum_shaped(&writer, &reader, &account, AMOUNT, &identity()),
        4
    );

    let mut group = c.benchmark_group("execute_sqlite_stages");
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw/factum_shaped", |b| {
        b.iter_batched(
            || (shaped_seeder.account(), identity()),
            |(account, ctx)| raw_factum_shaped(&writer, &reader, &account, AMOUNT, &ctx),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("raw/factum_shaped_one_connection", |b| {
        b.iter_batched(
            || (shaped_seeder.account(), identity()),
            |(account, ctx)| raw_factum_shaped(&writer, &writer, &account, AMOUNT, &ctx),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("factum/command_outcome_miss", |b| {
        b.to_async(runtime).iter_batched(
            || {
                seeder.account();
                Uuid::now_v7()
            },
            |command_id| {
                let store = &store;
                async move {
                    let outcome = store.command_outcome(command_id).await.expect("reads");
                    assert!(outcome.is_none());
                }
            },
            BatchSize::PerIteration,
        );
    });
    group.bench_function("factum/load_3_events", |b| {
        b.to_async(runtime).iter_batched(
            || seeder.account(),
            |account| {
                let repository = &repository;
                async move {
                    let loaded = repository.load(&account).await.expect("loads");
                    assert_eq!(loaded.version, 3);
                }
            },
            BatchSize::PerIteration,
        );
    });
    group.bench_function("factum/append_command", |b| {
        b.to_async(runtime).iter_batched(
            || {
                let ctx = identity();
                let event = NewEvent::new(
                    "Deposited",
                    1,
                    serde_json::value::to_raw_value(&RawDeposited { amount: AMOUNT })
                        .expect("JSON"),
                    ctx.event_metadata(),
                );
                let record = CommandRecord::new(ctx.command_id, fingerprint("Deposit", "{}"));
                (Repo::stream_id(&append_seeder.account()), event, record)
            },
            |(stream_id, event, record)| {
                let store = &store;
                async move {
                    store
                        .append_command(
                            &stream_id,
                            "Account",
                            ExpectedVersion::Exact(3),
                            vec![event],
                            record,
                        )
                        .await
                        .expect("appends")
                }
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("tokio/spawn_blocking_round_trip", |b| {
        b.to_async(runtime).iter(|| async {
            tokio::task::spawn_blocking(|| ())
                .await
                .expect("the task ran")
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = execute_sqlite
}
criterion_main!(benches);
