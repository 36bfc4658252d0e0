//! A snapshot exported for other connections to import (`pg_export_snapshot()`
//! then `SET TRANSACTION SNAPSHOT`, as `pg_dump -j` does), so that copies
//! made on several connections read one state of the database.

use anyhow::Result;

use crate::error::query_error;
use crate::url::PgUrl;

/// An exported snapshot, alive as long as the transaction that exported it:
/// the exporting connection stays open, idle inside that transaction, until
/// this is dropped.
pub struct ExportedSnapshot {
    _holder: postgres::Client,
    id: String,
}

impl ExportedSnapshot {
    /// Opens a read-only repeatable-read transaction on a connection of its
    /// own and exports its snapshot.
    pub fn export(url: &PgUrl) -> Result<ExportedSnapshot> {
        let what = "exporting the snapshot the tables are copied at";
        let mut holder = url.connect()?;
        holder
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .map_err(|err| query_error(err, what))?;
        let id: String = holder
            .query_one("SELECT pg_export_snapshot()", &[])
            .map_err(|err| query_error(err, what))?
            .get(0);
        Ok(ExportedSnapshot {
            _holder: holder,
            id,
        })
    }

    /// The id another transaction imports with `SET TRANSACTION SNAPSHOT`.
    pub fn id(&self) -> &str {
        &self.id
    }
}
