//! The names bronze gives: its tables, their steps, and the check of a
//! list of tables a user asked for.

use anyhow::Result;
use lake_table::{Layer, TableRef};

/// The tables bronze copies, in the order they are ingested.
pub const TABLES: [&str; 6] = lake_northwind::TABLES;

/// Name of the bronze step copying `table`.
pub fn step_name(table: &str) -> String {
    format!("bronze/{table}")
}

/// Name of the step that commits the run's copies, all or none.
pub const COMMIT_STEP: &str = "bronze/commit";

/// The bronze table copying `table`.
pub fn table_ref(table: &str) -> TableRef {
    TableRef::new(Layer::Bronze, table)
}

/// Checks a list of table names against [`TABLES`].
pub fn check_tables(tables: &[String]) -> Result<()> {
    for table in tables {
        if !TABLES.contains(&table.as_str()) {
            anyhow::bail!(
                "unknown table {table:?} (bronze copies {})",
                TABLES.join(", ")
            );
        }
    }
    Ok(())
}
