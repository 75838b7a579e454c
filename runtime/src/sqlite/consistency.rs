//! What the consistency checker (`factum::projection::check_consistency`) reads of a
//! SQLite read model: every table of a projection version's file with its rows as SQL
//! literals.

use std::path::Path;

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};

use crate::projection::Contents;

/// Each table of the file (factum's own and SQLite's left out) with its rows as sorted
/// SQLite literals.
pub(super) fn tables_of(file: &Path) -> rusqlite::Result<Contents> {
    let connection = Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let names: Vec<String> = connection
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table'
             AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'factum_%' ORDER BY name",
        )?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut tables = Contents::new();
    for name in names {
        let rows = rows_of(&connection, &name)?;
        tables.insert(name, rows);
    }
    Ok(tables)
}

fn rows_of(connection: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut statement =
        connection.prepare(&format!("SELECT * FROM \"{}\"", table.replace('"', "\"\"")))?;
    let columns = statement.column_count();
    let mut rows: Vec<String> = statement
        .query_map([], |row| {
            let values = (0..columns)
                .map(|index| row.get::<_, Value>(index).map(|value| literal(&value)))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(format!("({})", values.join(", ")))
        })?
        .collect::<Result<_, _>>()?;
    rows.sort();
    Ok(rows)
}

/// A value as SQLite would write it in SQL.
fn literal(value: &Value) -> String {
    match value {
        Value::Null => "NULL".to_owned(),
        Value::Integer(integer) => integer.to_string(),
        Value::Real(real) => format!("{real:?}"),
        Value::Text(text) => format!("'{}'", text.replace('\'', "''")),
        Value::Blob(blob) => format!(
            "X'{}'",
            blob.iter()
                .map(|byte| format!("{byte:02X}"))
                .collect::<String>()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_sqlite_s() {
        assert_eq!(literal(&Value::Text("it's".into())), "'it''s'");
        assert_eq!(literal(&Value::Blob(vec![0xab, 1])), "X'AB01'");
        assert_eq!(literal(&Value::Real(1.5)), "1.5");
        assert_eq!(literal(&Value::Null), "NULL");
    }
}
