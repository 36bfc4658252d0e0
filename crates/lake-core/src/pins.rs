//! The table versions one run reads: those its own steps committed, else
//! those pinned when the run started. Two runs on one lake and date (two
//! pipelines with different sources, say) then never mix: a step reads
//! what its run wrote even after the other run replaced the date, and a
//! run that reads a table it does not write reads it as it was at its
//! start, whatever commits land meanwhile.
//!
//! The versions stay readable: a replaced date's files are removed from
//! the log, not deleted, until vacuum's retention (7 days) has passed.

use std::collections::BTreeMap;
use std::sync::Mutex;

use anyhow::Result;
use lake_table::{Commit, Lake, Table, TableRef};

/// A run's table versions, shared by its steps.
#[derive(Debug, Default)]
pub struct RunPins {
    versions: Mutex<BTreeMap<String, i64>>,
}

impl RunPins {
    pub fn new() -> RunPins {
        RunPins::default()
    }

    /// Pins the latest version of each table the run reads and does not
    /// write (a table with no commit yet stays unpinned: its reader says
    /// there is nothing to read).
    pub fn pin_latest(&self, lake: &Lake, tables: &[TableRef]) -> Result<()> {
        for table in tables {
            if let Some(snapshot) = Table::open(lake, table.clone())?.latest()? {
                self.set(table, snapshot.version());
            }
        }
        Ok(())
    }

    /// A table version this run committed: its later steps read it.
    pub fn record(&self, commit: &Commit) {
        self.set(&commit.table, commit.version);
    }

    /// The version of `table` this run reads, when pinned.
    pub fn version(&self, table: &TableRef) -> Option<i64> {
        self.lock().get(&table.to_string()).copied()
    }

    /// Pins `table` at `version` (its first read in the run).
    pub fn pin(&self, table: &TableRef, version: i64) {
        self.set(table, version);
    }

    fn set(&self, table: &TableRef, version: i64) {
        self.lock().insert(table.to_string(), version);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, i64>> {
        // A map of plain values stays consistent whatever panicked.
        self.versions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lake_table::Layer;

    #[test]
    fn a_committed_version_overrides_the_pin_and_other_tables_stay_unpinned() {
        let pins = RunPins::new();
        let orders = TableRef::new(Layer::Bronze, "orders");
        pins.set(&orders, 3);
        assert_eq!(pins.version(&orders), Some(3));
        pins.record(&Commit {
            table: orders.clone(),
            version: 5,
            date: chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            rows: 1,
            files: 1,
            bytes: 1,
            removed_rows: 0,
            removed_files: 0,
        });
        assert_eq!(pins.version(&orders), Some(5));
        assert_eq!(
            pins.version(&TableRef::new(Layer::Bronze, "customers")),
            None
        );
    }
}
