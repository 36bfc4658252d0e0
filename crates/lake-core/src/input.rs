//! Reading a layer's input partition with the checks every consumer makes:
//! the partition of the run date (or the latest before it), the columns the
//! consumer needs present with usable types, and only those columns read.

use anyhow::Result;
use chrono::NaiveDate;
use polars::prelude::*;

use crate::layer::Layer;
use crate::partition::{Manifest, PartitionRef, read_partition, resolve_input};
use crate::schema::{Expect, require_columns};
use crate::storage::Lake;

/// A partition read as input of a step.
pub struct Input {
    pub partition: PartitionRef,
    pub manifest: Manifest,
    pub frame: DataFrame,
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

/// Resolves, checks and reads `layer/table` for a run dated `date`.
pub fn read_input(
    lake: &Lake,
    layer: Layer,
    table: &str,
    date: NaiveDate,
    needed: &[(&str, Expect)],
    columns: Columns<'_>,
) -> Result<Input> {
    let (partition, manifest) = resolve_input(lake, layer, table, date)?;
    require_columns(&format!("{layer}/{table}"), &manifest.schema, needed)?;
    let mut wanted: Vec<String> = needed.iter().map(|(name, _)| name.to_string()).collect();
    let projection = match columns {
        Columns::All => None,
        Columns::Needed => Some(wanted),
        Columns::NeededAnd(extra) => {
            for name in extra {
                if manifest.schema.iter().any(|c| c.name == *name)
                    && !wanted.iter().any(|w| w == name)
                {
                    wanted.push(name.to_string());
                }
            }
            Some(wanted)
        }
    };
    let frame = read_partition(lake, &partition, &manifest, projection.as_deref())?;
    Ok(Input {
        partition,
        manifest,
        frame,
    })
}
