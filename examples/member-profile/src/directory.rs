//! Every member's current email address, in a SQLite read model: what a mailing job
//! reads. It holds personal data outside the log, so forgetting a member is not done
//! until it is rebuilt (the rebuild reads the forgotten member's address as `""`).

use factum::prelude::*;
use factum::sqlite::SqliteTx;
use factum::sqlite::rusqlite::{self, Connection, OptionalExtension};

use crate::{EmailChanged, MemberRegistered};

/// The projection; its read model is named [`MemberDirectory::NAME`].
#[derive(Debug, Default)]
pub struct MemberDirectory;

#[projection(name = "member_directory", version = 1)]
impl MemberDirectory {
    #[setup]
    async fn tables(&mut self, tx: &mut SqliteTx) -> Result<(), ProjectionError> {
        tx.execute_batch("CREATE TABLE members (member_id TEXT PRIMARY KEY, email TEXT NOT NULL)")?;
        Ok(())
    }

    #[on]
    async fn registered(
        &mut self,
        e: &Recorded<MemberRegistered>,
        tx: &mut SqliteTx,
    ) -> Result<(), ProjectionError> {
        set_email(tx, &e.member_id, &e.email)
    }

    #[on]
    async fn email_changed(
        &mut self,
        e: &Recorded<EmailChanged>,
        tx: &mut SqliteTx,
    ) -> Result<(), ProjectionError> {
        set_email(tx, &e.member_id, &e.email)
    }
}

fn set_email(tx: &SqliteTx, member_id: &str, email: &str) -> Result<(), ProjectionError> {
    tx.prepare_cached(
        "INSERT INTO members (member_id, email) VALUES (?1, ?2)
         ON CONFLICT (member_id) DO UPDATE SET email = excluded.email",
    )?
    .execute((member_id, email))?;
    Ok(())
}

/// The member's address as the directory holds it, if the member is in it.
pub fn email_of(reader: &Connection, member_id: &str) -> rusqlite::Result<Option<String>> {
    reader
        .prepare_cached("SELECT email FROM members WHERE member_id = ?1")?
        .query_row([member_id], |row| row.get(0))
        .optional()
}
