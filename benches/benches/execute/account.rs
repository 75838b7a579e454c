//! The account both command benches run (`execute_sqlite`, `http_sqlite`): the
//! aggregate, its policy and context, and the raw baseline's code doing the same work
//! with rusqlite by hand, with the seeding of accounts.
#![allow(dead_code)] // Each bench uses its part.

use std::cell::Cell;
use std::fmt;
use std::path::Path;

use factum::authorization::Decision;
use factum::prelude::*;
use factum::uuid::Uuid;
use rusqlite::{Connection, OptionalExtension, params};

use super::sqlite::raw_connection;

/// The owner every seeded account has, and the actor of the commands with identity.
pub const OWNER: &str = "customer-7";
/// The tenant of the commands with identity.
pub const TENANT: &str = "tenant-1";
/// The amount each command deposits.
pub const AMOUNT: u64 = 100;
/// Accounts seeded per transaction.
pub const SEED_BLOCK: usize = 256;

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
    pub open: bool,
    pub owner: String,
    pub balance: u64,
    pub limit: u64,
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
pub fn decide(open: bool, balance: u64, limit: u64, amount: u64) -> Result<(), Refused> {
    if !open {
        return Err(Refused::NotOpen);
    }
    if balance + amount > limit {
        return Err(Refused::OverLimit);
    }
    Ok(())
}

/// The policy: a customer may deposit to their own account.
pub fn policy(ctx: &CommandContext, _: &AccountCommand, state: &Account) -> Decision {
    Decision::allow_if(
        ctx.actor_of("customer")
            .is_some_and(|actor| actor.id == state.owner),
        "only the account's owner may deposit",
    )
}

/// A command's context with identity: the owner as actor, a tenant, a fresh command id.
pub fn identity() -> CommandContext {
    CommandContext::new()
        .actor(Actor::new("customer", OWNER))
        .tenant(TENANT)
}

// The raw baseline's own types.

#[derive(serde::Serialize, serde::Deserialize)]
pub struct RawOpened {
    pub owner: String,
    pub limit: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct RawDeposited {
    pub amount: u64,
}

#[derive(serde::Serialize)]
pub struct RawDeposit<'a> {
    pub account: &'a str,
    pub amount: u64,
}

#[derive(Default)]
pub struct RawAccount {
    pub open: bool,
    pub owner: String,
    pub balance: u64,
    pub limit: u64,
}

/// What the raw `execute` answers.
#[derive(Debug, PartialEq, Eq)]
pub enum RawOutcome {
    /// Written now: the stream's version and the event's id.
    Executed { version: u64, event_id: Uuid },
    /// Recorded before: the stored version.
    AlreadyExecuted { version: u64 },
}

/// SHA-256 of the command's name, a NUL and its JSON, in lowercase hex: the digest
/// factum records.
pub fn fingerprint(name: &str, json: &str) -> String {
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

pub fn begin(connection: &Connection) {
    connection
        .prepare_cached("BEGIN IMMEDIATE")
        .and_then(|mut begin| begin.execute([]))
        .expect("begin");
}

pub fn run(connection: &Connection, statement: &str) {
    connection
        .prepare_cached(statement)
        .and_then(|mut run| run.execute([]))
        .expect(statement);
}

/// The command's recorded stream version, if it is recorded.
pub fn lookup_command(connection: &Connection, command_id: Uuid) -> Option<i64> {
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
pub fn stream_row(connection: &Connection, stream_id: &str) -> Option<(i64, String, i64)> {
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
pub fn raw_apply(state: &mut RawAccount, name: &str, schema_version: u32, payload: &str) {
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
pub fn raw_replay(connection: &Connection, key: i64) -> RawAccount {
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
pub fn raw_decide(ctx: &CommandContext, state: &RawAccount, amount: u64) -> Result<(), String> {
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
pub fn raw_write(
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
        traceparent: None,
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
pub fn raw_execute(
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
pub fn raw_factum_shaped(
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
pub fn seed(connection: &Connection, prefix: &str, from: usize, to: usize) {
    let metadata = serde_json::to_string(&identity().event_metadata()).expect("metadata");
    let opened = serde_json::to_string(&RawOpened {
        owner: OWNER.to_owned(),
        limit: u64::MAX / 2,
    })
    .expect("JSON");
    let deposited = serde_json::to_string(&RawDeposited { amount: AMOUNT }).expect("JSON");
    let at = factum::envelope::now();
    begin(connection);
    // Positions and hashes as a factum store writes them, so that factum appends chain
    // to the seeded events (see `factum::integrity::chain`).
    let mut position: i64 = connection
        .query_row(
            "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),
                        coalesce((SELECT max(position) FROM events), 0))",
            [],
            |row| row.get(0),
        )
        .expect("the last position");
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
                "INSERT INTO events (position, stream_key, stream_version, event_id, name,
                                     schema_version, payload, metadata, timestamp_s,
                                     timestamp_ns, hash, predecessor)
                 VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7, ?8, ?9, ?10, ?11)",
            )
            .expect("prepare");
        let mut predecessor = factum::integrity::GENESIS;
        for (version, name, payload) in [
            (1i64, "AccountOpened", &opened),
            (2, "Deposited", &deposited),
            (3, "Deposited", &deposited),
        ] {
            position += 1;
            let event_id = Uuid::now_v7();
            let hash = factum::integrity::event_hash(
                &predecessor,
                &factum::integrity::StoredFields {
                    event_id: event_id.as_bytes(),
                    position,
                    stream_id: stream_id.as_bytes(),
                    stream_type: b"Account",
                    stream_version: version,
                    name: name.as_bytes(),
                    schema_version: 1,
                    timestamp_seconds: at.timestamp(),
                    timestamp_nanos: i64::from(at.timestamp_subsec_nanos()),
                    metadata: Some(metadata.as_bytes()),
                    payload: payload.as_bytes(),
                    tags: None,
                },
            );
            insert
                .execute(params![
                    position,
                    key,
                    version,
                    event_id.as_bytes().as_slice(),
                    name,
                    payload,
                    metadata,
                    at.timestamp(),
                    at.timestamp_subsec_nanos(),
                    hash.as_slice(),
                    predecessor.as_slice(),
                ])
                .expect("insert event");
            predecessor = hash;
        }
    }
    run(connection, "COMMIT");
}

/// Hands out seeded accounts of one file, seeding a block whenever it runs out.
pub struct Seeder {
    pub connection: Connection,
    pub prefix: &'static str,
    pub block: usize,
    pub next: Cell<usize>,
    pub seeded: Cell<usize>,
}

impl Seeder {
    /// Seeds `block` accounts at a time.
    pub fn new(path: &Path, prefix: &'static str, block: usize) -> Self {
        Self {
            connection: raw_connection(path),
            prefix,
            block,
            next: Cell::new(0),
            seeded: Cell::new(0),
        }
    }

    /// A fresh account whose stream holds three events.
    pub fn account(&self) -> String {
        let next = self.next.get();
        if next == self.seeded.get() {
            seed(&self.connection, self.prefix, next, next + self.block);
            self.seeded.set(next + self.block);
        }
        self.next.set(next + 1);
        format!("{}-{next}", self.prefix)
    }
}
