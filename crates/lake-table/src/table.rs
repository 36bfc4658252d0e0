//! Tables of the lake: a name in a layer, and the Delta log at its root
//! (data contract, section 2).
//!
//! Every table lives at `{layer}/{table}/` with its log in `_delta_log/`
//! and is partitioned by one column, `run_date`; its data files sit under
//! `{layer}/{table}/{YYYY-MM-DD}/` (Delta takes partition values from the
//! log, so the folder names are only a convention of this lake: a date
//! another engine wrote may sit under its `run_date=YYYY-MM-DD/`, and is
//! read, replaced, compacted and vacuumed the same).

use std::fmt;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use deltalake_core::DeltaTableError;
use deltalake_core::logstore::{LogStoreRef, StorageConfig, default_logstore};
use object_store::ObjectStore;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use serde::{Deserialize, Serialize};

use crate::layer::Layer;
use crate::storage::Lake;

/// The column every table is partitioned by: the run date.
pub const PARTITION_COLUMN: &str = "run_date";

/// A table's address: its layer and its name, which may hold one `/` for
/// the tables kept in `_`-folders (`_rejects/sales_master`,
/// `_dlq/ventes_temps_reel`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableRef {
    pub layer: Layer,
    pub name: String,
}

impl TableRef {
    pub fn new(layer: Layer, name: impl Into<String>) -> Self {
        TableRef {
            layer,
            name: name.into(),
        }
    }

    /// Parses `layer/table`, e.g. `silver/_rejects/sales_master`.
    pub fn parse(text: &str) -> Result<TableRef> {
        let (layer, name) = text
            .trim()
            .split_once('/')
            .ok_or_else(|| anyhow!("{text:?} is not a table (expected layer/table)"))?;
        let layer: Layer = layer.parse()?;
        if !matches!(layer, Layer::Bronze | Layer::Silver | Layer::Gold) {
            bail!("{text:?}: tables live in bronze, silver or gold");
        }
        if !valid_table_name(name) {
            bail!("{text:?}: {name:?} is not a table name of the lake");
        }
        Ok(TableRef::new(layer, name))
    }
}

impl fmt::Display for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.layer, self.name)
    }
}

/// A table name as the lake writes them: lowercase letters, digits and
/// `_`, and one `/` after a `_`-folder. Checked before a name given by a
/// person or a client reaches the store (an allow-list: `..`, absolute
/// paths and anything else are refused).
pub fn valid_table_name(table: &str) -> bool {
    let parts: Vec<&str> = table.split('/').collect();
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    match parts.as_slice() {
        [one] => part_ok(one) && !one.starts_with('_'),
        [folder, one] => folder.starts_with('_') && part_ok(folder) && part_ok(one),
        _ => false,
    }
}

/// An open table: where its log is. Opening does no I/O.
#[derive(Clone)]
pub struct Table {
    lake: Lake,
    table: TableRef,
    log_store: LogStoreRef,
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Table({})", self.table)
    }
}

impl Table {
    pub fn open(lake: &Lake, table: TableRef) -> Result<Table> {
        let url = lake.folder_url(table.layer, &table.name)?;
        let root_store = lake.url_store(table.layer);
        let prefix = Path::from_url_path(url.path())
            .with_context(|| format!("{url} is not a valid table location"))?;
        let prefixed: Arc<dyn ObjectStore> = Arc::new(PrefixStore::new(root_store.clone(), prefix));
        let log_store = default_logstore(prefixed, root_store, &url, &StorageConfig::default());
        Ok(Table {
            lake: lake.clone(),
            table,
            log_store,
        })
    }

    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    pub fn table_ref(&self) -> &TableRef {
        &self.table
    }

    pub(crate) fn log_store(&self) -> &LogStoreRef {
        &self.log_store
    }
}

/// A delta-rs error as an anyhow error; storage failures that may pass
/// when retried carry the [`crate::error::Transient`] marker.
pub(crate) fn delta_error(err: DeltaTableError) -> anyhow::Error {
    let transient = matches!(
        &err,
        DeltaTableError::ObjectStore { source } if crate::error::may_pass_when_retried(source)
    );
    let err = anyhow!("{err}");
    if transient {
        err.context(crate::error::Transient("storage error".into()))
    } else {
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_checked_against_the_allow_list() {
        for ok in [
            "kpi_summary",
            "rfm",
            "_rejects/sales_master",
            "_dlq/ventes_temps_reel",
        ] {
            assert!(valid_table_name(ok), "{ok}");
        }
        for bad in [
            "",
            "..",
            "../silver",
            "/etc",
            "_rejects",
            "a/b",
            "_rejects/../x",
            "Kpi",
            "kpi summary",
            "_a/_b/c",
        ] {
            assert!(!valid_table_name(bad), "{bad}");
        }
    }

    #[test]
    fn table_refs_parse_and_print() {
        let t = TableRef::parse("silver/_rejects/sales_master").unwrap();
        assert_eq!(t, TableRef::new(Layer::Silver, "_rejects/sales_master"));
        assert_eq!(t.to_string(), "silver/_rejects/sales_master");
        for bad in ["orders", "checkpoints/x", "gold/../x", "bronze/"] {
            assert!(TableRef::parse(bad).is_err(), "{bad}");
        }
    }
}
