//! Reading a step's input table with the checks every consumer makes: the
//! version its run reads ([`RunPins`]: the one the run committed or pinned,
//! else the latest, pinned from then on), the run date's rows (or the
//! latest date before it),
//! the columns the consumer needs present with usable types, and only
//! those columns scanned.

use anyhow::{Context, Result, anyhow};
use chrono::NaiveDate;
use lake_table::schema::{ColumnSpec, Expect, require_columns};
use lake_table::{At, DateAsked, Lake, Table, TableRef};
use polars::prelude::*;

use crate::pins::RunPins;
use crate::run::TableVersion;

/// One date of a table at one version, read as the input of a step.
pub struct Input {
    pub table: TableRef,
    pub version: i64,
    /// The date read: the run date, or the latest one before it.
    pub date: NaiveDate,
    /// The table's columns at that version.
    pub columns: Vec<ColumnSpec>,
    /// Rows of the date (from the files' statistics).
    pub rows: u64,
    /// The rows, lazily: nothing is read until the plan runs.
    pub frame: LazyFrame,
}

impl Input {
    /// What the run manifest records of this read.
    pub fn read(&self) -> TableVersion {
        TableVersion {
            table: self.table.to_string(),
            version: self.version,
            date: self.date,
        }
    }
}

fn count_rows(frame: &LazyFrame) -> Result<u64> {
    let counted = frame.clone().select([len()]).collect()?;
    let column = counted.column("len")?.cast(&DataType::UInt64)?;
    Ok(column.u64()?.get(0).unwrap_or(0))
}

/// Which columns to read.
pub enum Columns<'a> {
    /// Only the needed ones.
    Needed,
    /// Every column (e.g. to carry unknown columns into a rejects table).
    All,
    /// The needed ones plus these, when present.
    NeededAnd(&'a [&'a str]),
}

/// Resolves, checks and scans `table` for a run dated `date`, at the
/// version `pins` gives (the latest, pinned, when it gives none).
pub fn read_input(
    lake: &Lake,
    pins: &RunPins,
    table: TableRef,
    date: NaiveDate,
    needed: &[(&str, Expect)],
    columns: Columns<'_>,
) -> Result<Input> {
    let opened = Table::open(lake, table.clone())?;
    let snapshot = match pins.version(&table) {
        Some(version) => opened.at(At::Version(version)).with_context(|| {
            format!("reading {table} at v{version}, the version this run reads")
        })?,
        None => {
            let latest = opened
                .latest()?
                .ok_or_else(|| anyhow!("{table} has no committed version in {}", lake.url()))?;
            pins.pin(&table, latest.version());
            latest
        }
    };
    let chosen = snapshot
        .date_seen(DateAsked::RunDate(date))
        .ok_or_else(|| {
            anyhow!(
                "{table}@v{} holds no date on or before {date} in {}",
                snapshot.version(),
                lake.url()
            )
        })?;
    require_columns(&table.to_string(), snapshot.columns(), needed)?;
    let mut wanted: Vec<String> = needed.iter().map(|(name, _)| name.to_string()).collect();
    let projection = match columns {
        Columns::All => None,
        Columns::Needed => Some(wanted),
        Columns::NeededAnd(extra) => {
            for name in extra {
                if snapshot.columns().iter().any(|c| c.name == *name)
                    && !wanted.iter().any(|w| w == name)
                {
                    wanted.push(name.to_string());
                }
            }
            Some(wanted)
        }
    };
    let mut frame = snapshot.scan(chosen)?;
    if let Some(names) = projection {
        frame = frame.select(names.iter().map(|n| col(n.as_str())).collect::<Vec<_>>());
    }
    let rows = match snapshot.rows_of(chosen) {
        Some(rows) => rows,
        None => count_rows(&frame).with_context(|| format!("counting the rows of {table}"))?,
    };
    Ok(Input {
        rows,
        version: snapshot.version(),
        columns: snapshot.columns().to_vec(),
        table,
        date: chosen,
        frame,
    })
}
