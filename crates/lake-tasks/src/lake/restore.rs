//! `cargo xtask lake restore TABLE --version N`: Delta's `RESTORE`, one
//! commit that brings the table back to version N (see
//! [`lake_table::restore`]).

use anyhow::Result;
use lake_table::restore::restore_version;
use lake_table::{Lake, Table, TableRef};

use super::human_bytes;

/// Restores `table` to `version` and says what the commit did.
pub fn restore(lake: &Lake, table: &TableRef, version: i64) -> Result<String> {
    let run_id = lake_core::run::new_run_id();
    let restored = restore_version(&Table::open(lake, table.clone())?, version, &run_id)?;
    let metadata = if restored.metadata_restored {
        format!(", and v{}'s schema and properties", restored.restored)
    } else {
        String::new()
    };
    Ok(format!(
        "{table}: v{} restores v{}: {} files added back ({} rows, {}), {} removed ({} rows){}\n",
        restored.version,
        restored.restored,
        restored.added_files,
        restored.added_rows,
        human_bytes(restored.added_bytes),
        restored.removed_files,
        restored.removed_rows,
        metadata,
    ))
}
