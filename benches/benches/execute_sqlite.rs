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

use std::cell::Cell;
use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use factum::application::{Application, ContextRules};
use factum::authorization::Decision;
use factum::prelude::*;
use factum::store::{CommandRecord, SqliteStore};
use factum::uuid::Uuid;
use rusqlite::{Connection, OptionalExtension, params};

/// The owner every seeded account has, and the actor of the commands with identity.
const OWNER: &str = "customer-7";
/// The tenant of the commands with identity.
const TENANT: &str = "tenant-1";
/// The amount each command deposits.
const AMOUNT: u64 = 100;
/// Accounts seeded per transaction.
const SEED_BLOCK: usize = 256;

// The aggregate: an account that takes deposits up to a limit.

/// An account was opened.
#[event(name = "AccountOpened")]
#[derive(Debug, Clone, PartialEq)]
pub struct AccountOpened {
    /// Who owns it.
    pub owner: String,
    /// The highest balance it may hold.
    pub limit: u64,
}

/// Money was deposited.
#[event(name = "Deposited")]
#[derive(Debug, Clone, PartialEq)]
pub struct Deposited {
    /// How much.
    pub amount: u64,
}

/// The account's events.
#[derive(Events, Debug, Clone, PartialEq)]
pub enum AccountEvent {
    /// Opened.
    Opened(AccountOpened),
    /// Deposited.
    Deposited(Deposited),
}

/// Deposit money.
#[command(name = "Deposit")]
#[derive(Debug, Clone)]
pub struct Deposit {
    /// The account.
    #[aggregate_id]
    pub account: String,
    /// How much.
    pub amount: u64,
}

/// The account's commands.
#[derive(Commands)]
pub enum AccountCommand {
    /// Deposit.
    Deposit(Deposit),
}

/// Why a deposit is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The account is not open.
    NotOpen,
    /// The deposit would take the balance over the limit.
    OverLimit,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotOpen => "the account is not open",
            Self::OverLimit => "over the limit",
        })
    }
}

impl std::error::Error for Refused {}

/// The account's state.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Account {
    open: bool,
    owner: String,
    balance: u64,
    limit: u64,
}

#[aggregate(name = "Account", events = AccountEvent, commands = AccountCommand, error = Refused)]
impl Account {
    #[handle]
    fn deposit(&self, command: Deposit) -> Result<Deposited, Refused> {
        decide(self.open, self.balance, self.limit, command.amount)?;
        Ok(Deposited {
            amount: command.amount,
        })
    }

    #[apply]
    fn opened(&mut self, event: &AccountOpened) {
        self.open = true;
        self.owner.clone_from(&event.owner);
        self.limit = event.limit;
    }

    #[apply]
    fn deposited(&mut self, event: &Deposited) {
        self.balance += event.amount;
    }
}

/// The decision, shared by the aggregate and the raw baseline.
fn decide(open: bool, balance: u64, limit: u64, amount: u64) -> Result<(), Refused> {
    if !open {
        return Err(Refused::NotOpen);
    }
    if balance + amount > limit {
        return Err(Refused::OverLimit);
    }
    Ok(())
}

/// The policy: a customer may deposit to their own account.
fn policy(ctx: &CommandContext, _: &AccountCommand, state: &Account) -> Decision {
    Decision::allow_if(
        ctx.actor_of("customer")
            .is_some_and(|actor| actor.id == state.owner),
        "only the account's owner may deposit",
    )
}

/// A command's context with identity: the owner as actor, a tenant, a fresh command id.
fn identity() -> CommandContext {
    CommandContext::new()
        .actor(Actor::new("customer", OWNER))
        .tenant(TENANT)
}

// The raw baseline's own types.

#[derive(serde::Serialize, serde::Deserialize)]
struct RawOpened {
    owner: String,
    limit: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct RawDeposited {
    amount: u64,
}

#[derive(serde::Serialize)]
struct RawDeposit<'a> {
    account: &'a str,
    amount: u64,
}

#[derive(Default)]
struct RawAccount {
    open: bool,
    owner: String,
    balance: u64,
    limit: u64,
}

/// What the raw `execute` answers.
#[derive(Debug, PartialEq, Eq)]
enum RawOutcome {
    /// Written now: the stream's version and the event's id.
    Executed { version: u64, event_id: Uuid },
    /// Recorded before: the stored version.
    AlreadyExecuted { version: u64 },
}

/// The raw baseline's connection: the settings `SqliteStore::open` gives its writer.
fn raw_connection(path: &Path) -> Connection {
    let connection = Connection::open(path).expect("open");
    connection
        .busy_timeout(Duration::from_secs(5))
        .expect("busy_timeout");
    let mode: String = connection
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .expect("journal_mode");
    assert_eq!(mode, "wal");
    connection
        .pragma_update(None, "synchronous", "FULL")
        .expect("synchronous");
    connection
        .pragma_update(None, "foreign_keys", "ON")
        .expect("foreign_keys");
    connection
}

/// SHA-256 of the command's name, a NUL and its JSON, in lowercase hex: the digest
/// factum records.
fn fingerprint(name: &str, json: &str) -> String {
    use sha2::Digest;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hasher = sha2::Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([0]);
    hasher.update(json.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in hasher.finalize().iter() {
        hex.push(HEX[usize::from(byte >> 4)] as char);
        hex.push(HEX[usize::from(byte & 15)] as char);
    }
    hex
}

fn begin(connection: &Connection) {
    connection
        .prepare_cached("BEGIN IMMEDIATE")
        .and_then(|mut begin| begin.execute([]))
        .expect("begin");
}

fn run(connection: &Connection, statement: &str) {
    connection
        .prepare_cached(statement)
        .and_then(|mut run| run.execute([]))
        .expect(statement);
}

/// The command's recorded stream version, if it is recorded.
fn lookup_command(connection: &Connection, command_id: Uuid) -> Option<i64> {
    connection
        .prepare_cached("SELECT stream_version FROM commands WHERE command_id = ?1")
        .and_then(|mut select| {
            select
                .query_row(params![command_id.as_bytes().as_slice()], |row| row.get(0))
                .optional()
        })
        .expect("select command")
}

/// The stream's row: key, type, version.
fn stream_row(connection: &Connection, stream_id: &str) -> Option<(i64, String, i64)> {
    connection
        .prepare_cached("SELECT stream_key, stream_type, version FROM streams WHERE stream_id = ?1")
        .and_then(|mut select| {
            select
                .query_row(params![stream_id], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .optional()
        })
        .expect("select stream")
}

/// Applies one stored event to the hand-written state.
fn raw_apply(state: &mut RawAccount, name: &str, schema_version: u32, payload: &str) {
    match (name, schema_version) {
        ("AccountOpened", 1) => {
            let opened: RawOpened = serde_json::from_str(payload).expect("decodes");
            state.open = true;
            state.owner = opened.owner;
            state.limit = opened.limit;
        }
        ("Deposited", 1) => {
            let deposited: RawDeposited = serde_json::from_str(payload).expect("decodes");
            state.balance += deposited.amount;
        }
        other => panic!("unknown event {other:?}"),
    }
}

/// The stream's events, decoded and applied as they are stepped: the three columns a
/// replay needs.
fn raw_replay(connection: &Connection, key: i64) -> RawAccount {
    let mut state = RawAccount::default();
    let mut select = connection
        .prepare_cached(
            "SELECT name, schema_version, payload FROM events
             WHERE stream_key = ?1 ORDER BY stream_version",
        )
        .expect("prepare");
    let mut rows = select.query(params![key]).expect("query");
    while let Some(row) = rows.next().expect("step") {
        let name = row.get_ref(0).and_then(|v| Ok(v.as_str()?)).expect("name");
        let schema_version: u32 = row.get(1).expect("schema_version");
        let payload = row
            .get_ref(2)
            .and_then(|v| Ok(v.as_str()?))
            .expect("payload");
        raw_apply(&mut state, name, schema_version, payload);
    }
    state
}

/// The policy's check and the decision, by hand.
fn raw_decide(ctx: &CommandContext, state: &RawAccount, amount: u64) -> Result<(), String> {
    let allowed = ctx
        .actor
        .as_ref()
        .is_some_and(|actor| actor.kind == "customer" && actor.id == state.owner);
    if !allowed {
        return Err("only the account's owner may deposit".to_owned());
    }
    decide(state.open, state.balance, state.limit, amount).map_err(|refused| refused.to_string())
}

/// The writes of a deposit (inside the caller's write transaction): the stream's row,
/// the event with its metadata, the command record. Returns the event's id.
fn raw_write(
    connection: &Connection,
    stream_id: &str,
    stream_key: Option<i64>,
    new_version: u64,
    amount: u64,
    ctx: &CommandContext,
    fingerprint: &str,
) -> Uuid {
    let payload = serde_json::to_string(&RawDeposited { amount }).expect("JSON");
    let metadata = serde_json::to_string(&Metadata {
        correlation_id: Some(ctx.correlation_id.unwrap_or(ctx.command_id)),
        causation_id: Some(ctx.command_id),
        actor: ctx.actor.as_ref().map(|actor| actor.id.clone()),
        actor_kind: ctx.actor.as_ref().map(|actor| actor.kind.clone()),
        tenant: ctx.tenant.clone(),
        extra: Default::default(),
    })
    .expect("metadata");
    let event_id = Uuid::now_v7();
    let key = match stream_key {
        Some(key) => {
            connection
                .prepare_cached("UPDATE streams SET version = ?2 WHERE stream_key = ?1")
                .and_then(|mut update| update.execute(params![key, new_version as i64]))
                .expect("update");
            key
        }
        None => {
            connection
                .prepare_cached(
                    "INSERT INTO streams (stream_id, stream_type, version) VALUES (?1, ?2, ?3)",
                )
                .and_then(|mut insert| {
                    insert.execute(params![stream_id, "Account", new_version as i64])
                })
                .expect("insert stream");
            connection.last_insert_rowid()
        }
    };
    connection
        .prepare_cached(
            "INSERT INTO events (stream_key, stream_version, event_id, name, schema_version,
                                 payload, metadata, timestamp_s, timestamp_ns)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .and_then(|mut insert| {
            insert.execute(params![
                key,
                new_version as i64,
                event_id.as_bytes().as_slice(),
                "Deposited",
                1,
                payload,
                metadata,
                ctx.issued_at.timestamp(),
                ctx.issued_at.timestamp_subsec_nanos(),
            ])
        })
        .expect("insert event");
    let position = connection.last_insert_rowid();
    let recorded_at = factum::envelope::now();
    connection
        .prepare_cached(
            "INSERT INTO commands (command_id, fingerprint, recorded_at_s, recorded_at_ns,
                                   stream_id, stream_version, first_position, last_position,
                                   event_ids)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .and_then(|mut insert| {
            insert.execute(params![
                ctx.command_id.as_bytes().as_slice(),
                fingerprint,
                recorded_at.timestamp(),
                recorded_at.timestamp_subsec_nanos(),
                stream_id,
                new_version as i64,
                position,
                position,
                event_id.as_bytes().as_slice(),
            ])
        })
        .expect("insert command");
    event_id
}

/// The raw `execute`: the deposit `ctx` carries `amount` to `account`, in one write
/// transaction.
fn raw_execute(
    connection: &Connection,
    account: &str,
    amount: u64,
    ctx: &CommandContext,
) -> Result<RawOutcome, String> {
    let stream_id = format!("Account-{account}");
    let json = serde_json::to_string(&RawDeposit { account, amount }).expect("JSON");
    let fingerprint = fingerprint("Deposit", &json);
    begin(connection);
    if let Some(version) = lookup_command(connection, ctx.command_id) {
        run(connection, "ROLLBACK");
        return Ok(RawOutcome::AlreadyExecuted {
            version: version as u64,
        });
    }
    let stream = stream_row(connection, &stream_id);
    let (state, version) = match &stream {
        Some((key, stream_type, version)) => {
            assert_eq!(stream_type, "Account");
            (raw_replay(connection, *key), *version as u64)
        }
        None => (RawAccount::default(), 0),
    };
    if let Err(refused) = raw_decide(ctx, &state, amount) {
        run(connection, "ROLLBACK");
        return Err(refused);
    }
    let event_id = raw_write(
        connection,
        &stream_id,
        stream.map(|(key, _, _)| key),
        version + 1,
        amount,
        ctx,
        &fingerprint,
    );
    run(connection, "COMMIT");
    Ok(RawOutcome::Executed {
        version: version + 1,
        event_id,
    })
}

/// Diagnostic, not a contender: the statements and transactions factum runs, by hand on
/// one thread. The record looked up on a reader connection; the stream read on it in a
/// read transaction, every column a `RecordedEvent` holds; then the write transaction on
/// the writer connection, looking the record and the stream row up again.
fn raw_factum_shaped(
    writer: &Connection,
    reader: &Connection,
    account: &str,
    amount: u64,
    ctx: &CommandContext,
) -> u64 {
    let stream_id = format!("Account-{account}");
    let json = serde_json::to_string(&RawDeposit { account, amount }).expect("JSON");
    let fingerprint = fingerprint("Deposit", &json);
    assert_eq!(lookup_command(reader, ctx.command_id), None);
    run(reader, "BEGIN");
    let (key, _, version) = stream_row(reader, &stream_id).expect("a seeded stream");
    let mut state = RawAccount::default();
    {
        let mut select = reader
            .prepare_cached(
                "SELECT e.position, e.stream_version, e.event_id, e.name, e.schema_version,
                        e.payload, e.metadata, e.timestamp_s, e.timestamp_ns
                 FROM events e WHERE e.stream_key = ?1 AND e.stream_version >= ?2
                 ORDER BY e.stream_version LIMIT ?3",
            )
            .expect("prepare");
        let mut rows = select.query(params![key, 1, i64::MAX]).expect("query");
        let mut copy = Vec::new();
        while let Some(row) = rows.next().expect("step") {
            copy.clear();
            let _: i64 = row.get(0).expect("position");
            let _: i64 = row.get(1).expect("version");
            copy.extend_from_slice(row.get_ref(2).and_then(|v| Ok(v.as_blob()?)).expect("id"));
            let name = row.get_ref(3).and_then(|v| Ok(v.as_str()?)).expect("name");
            let schema_version: u32 = row.get(4).expect("schema_version");
            let payload = row
                .get_ref(5)
                .and_then(|v| Ok(v.as_str()?))
                .expect("payload");
            copy.extend_from_slice(
                row.get_ref(6)
                    .and_then(|v| Ok(v.as_str()?))
                    .expect("metadata")
                    .as_bytes(),
            );
            let _: i64 = row.get(7).expect("seconds");
            let _: i64 = row.get(8).expect("nanoseconds");
            raw_apply(&mut state, name, schema_version, payload);
        }
    }
    run(reader, "COMMIT");
    raw_decide(ctx, &state, amount).expect("allowed");
    begin(writer);
    assert_eq!(lookup_command(writer, ctx.command_id), None);
    let (key, _, current) = stream_row(writer, &stream_id).expect("a seeded stream");
    assert_eq!(current, version);
    raw_write(
        writer,
        &stream_id,
        Some(key),
        version as u64 + 1,
        amount,
        ctx,
        &fingerprint,
    );
    run(writer, "COMMIT");
    version as u64 + 1
}

/// Seeds accounts `{prefix}-{from}` .. `{prefix}-{to - 1}` into a file, in one transaction:
/// each stream `AccountOpened` and two `Deposited`, as factum would store them.
fn seed(connection: &Connection, prefix: &str, from: usize, to: usize) {
    let metadata = serde_json::to_string(&identity().event_metadata()).expect("metadata");
    let opened = serde_json::to_string(&RawOpened {
        owner: OWNER.to_owned(),
        limit: u64::MAX / 2,
    })
    .expect("JSON");
    let deposited = serde_json::to_string(&RawDeposited { amount: AMOUNT }).expect("JSON");
    let at = factum::envelope::now();
    begin(connection);
    for n in from..to {
        let stream_id = format!("Account-{prefix}-{n}");
        connection
            .prepare_cached(
                "INSERT INTO streams (stream_id, stream_type, version) VALUES (?1, 'Account', 3)",
            )
            .and_then(|mut insert| insert.execute(params![stream_id]))
            .expect("insert stream");
        let key = connection.last_insert_rowid();
        let mut insert = connection
            .prepare_cached(
                "INSERT INTO events (stream_key, stream_version, event_id, name, schema_version,
                                     payload, metadata, timestamp_s, timestamp_ns)
                 VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6, ?7, ?8)",
            )
            .expect("prepare");
        for (version, name, payload) in [
            (1, "AccountOpened", &opened),
            (2, "Deposited", &deposited),
            (3, "Deposited", &deposited),
        ] {
            insert
                .execute(params![
                    key,
                    version,
                    Uuid::now_v7().as_bytes().as_slice(),
                    name,
                    payload,
                    metadata,
                    at.timestamp(),
                    at.timestamp_subsec_nanos(),
                ])
                .expect("insert event");
        }
    }
    run(connection, "COMMIT");
}

/// Hands out seeded accounts of one file, seeding a block whenever it runs out.
struct Seeder {
    connection: Connection,
    prefix: &'static str,
    block: usize,
    next: Cell<usize>,
    seeded: Cell<usize>,
}

impl Seeder {
    /// Seeds `block` accounts at a time.
    fn new(path: &Path, prefix: &'static str, block: usize) -> Self {
        Self {
            connection: raw_connection(path),
            prefix,
            block,
            next: Cell::new(0),
            seeded: Cell::new(0),
        }
    }

    /// A fresh account whose stream holds three events.
    fn account(&self) -> String {
        let next = self.next.get();
        if next == self.seeded.get() {
            seed(&self.connection, self.prefix, next, next + self.block);
            self.seeded.set(next + self.block);
        }
        self.next.set(next + 1);
        format!("{}-{next}", self.prefix)
    }
}

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
