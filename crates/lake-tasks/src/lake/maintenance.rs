//! `cargo xtask lake optimize` and `cargo xtask lake vacuum`.

use std::fmt::Write;
use std::time::Duration;

use anyhow::Result;
use chrono::NaiveDate;
use lake_table::maintenance::{compact, vacuum};
use lake_table::{Lake, Table, TableRef};

/// Compacts the small files of `date` (every date when `None`) of each table.
pub fn optimize(
    lake: &Lake,
    tables: &[TableRef],
    date: Option<NaiveDate>,
    target_bytes: u64,
) -> Result<String> {
    let run_id = lake_core::run::new_run_id();
    let mut out = String::new();
    for table in tables {
        let Some(snapshot) = Table::open(lake, table.clone())?.latest()? else {
            continue;
        };
        let dates = match date {
            Some(date) => vec![date],
            None => snapshot.dates(),
        };
        for date in dates {
            match compact(lake, table, date, target_bytes, &run_id)? {
                Some(commit) => writeln!(
                    out,
                    "{table} {date}: {} files rewritten into {} (v{})",
                    commit.removed_files, commit.files, commit.version
                )?,
                None => writeln!(out, "{table} {date}: nothing to compact")?,
            }
        }
    }
    Ok(out)
}

/// Vacuums each table.
pub fn vacuum_tables(
    lake: &Lake,
    tables: &[TableRef],
    retain: Duration,
    dry_run: bool,
    allow_short_retention: bool,
) -> Result<String> {
    let mut out = String::new();
    let verb = if dry_run { "would delete" } else { "deleted" };
    for table in tables {
        let report = vacuum(lake, table, retain, dry_run, allow_short_retention)?;
        writeln!(out, "{table}: {verb} {} files", report.files.len())?;
        for file in &report.files {
            writeln!(out, "  {file}")?;
        }
    }
    Ok(out)
}
