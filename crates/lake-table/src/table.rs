//! Tables of the lake: a name in a layer, and the Delta log at its root
//! (data contract, section 2).
//!
//! Every table lives at `{layer}/{table}/` with its log in `_delta_log/`
//! and is partitioned by one column, `run_date`; its data files sit under
//! `{layer}/{table}/{YYYY-MM-DD}/` (Delta takes partition values from the
//! log, so the folder names are only a convention of this lake).

use std::fmt;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, Utc};
use deltalake_core::logstore::{LogStoreRef, StorageConfig, default_logstore};
use deltalake_core::table::state::DeltaTableState;
use deltalake_core::{DeltaTable, DeltaTableError};
use object_store::ObjectStore;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use serde::{Deserialize, Serialize};

use crate::layer::Layer;
use crate::snapshot::Snapshot;
use crate::storage::{Lake, block_on};

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

/// Which version of a table to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    Latest,
    Version(i64),
    /// The latest version committed at or before this time.
    Timestamp(DateTime<Utc>),
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

    /// The latest snapshot, or `None` when the table has no commit yet.
    pub fn latest(&self) -> Result<Option<Snapshot>> {
        // On a local lake, a table without a log folder is not there yet:
        // say so without asking delta-rs, which logs the miss as an error.
        let log = format!("{}/_delta_log", self.table.name);
        if let Some(path) = self.lake.local_path(self.table.layer, &log)
            && !path.exists()
        {
            return Ok(None);
        }
        match self.load(At::Latest) {
            Ok(snapshot) => Ok(Some(snapshot)),
            Err(err) if is_not_a_table(&err) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The cached state of the table brought up to date, when the lake
    /// handle keeps one; `None` to load it in full.
    fn update_cached(&self) -> Result<Option<Snapshot>> {
        let Some(cache) = self.lake.snapshot_cache() else {
            return Ok(None);
        };
        let Some(mut state) = cache.get(&self.table) else {
            return Ok(None);
        };
        let kept = state.version();
        block_on(state.update(self.log_store.as_ref(), None))
            .map_err(delta_error)
            .with_context(|| format!("bringing {} up to date", self.table))?;
        if state.version() != kept {
            cache.put(&self.table, state.clone());
        }
        Snapshot::from_state(self.clone(), state).map(Some)
    }

    /// Keeps `state` as the latest seen, when the lake handle caches states.
    pub(crate) fn remember(&self, state: &DeltaTableState) {
        if let Some(cache) = self.lake.snapshot_cache() {
            cache.put(&self.table, state.clone());
        }
    }

    /// The snapshot at `at`; an error naming the table when there is none:
    /// a time before its first commit is a [`NotYetCreated`] error (as
    /// Delta's readers answer, not version 0), a version past the latest
    /// names the versions there are.
    pub fn at(&self, at: At) -> Result<Snapshot> {
        if let At::Version(version) = at
            && version < 0
        {
            bail!(
                "{} has no version {version} (versions start at 0)",
                self.table
            );
        }
        let snapshot = match self.load(at) {
            Ok(snapshot) => snapshot,
            Err(err) => {
                if let At::Version(version) = at
                    && !is_not_a_table(&err)
                    && let Ok(Some(latest)) = self.latest()
                    && version > latest.version()
                {
                    bail!(
                        "{} has no version {version}: versions 0-{}",
                        self.table,
                        latest.version()
                    );
                }
                return Err(err);
            }
        };
        // delta-rs answers the first version for a time before it.
        if let At::Timestamp(asked) = at
            && snapshot.version() == 0
            && let Some(first_commit) = snapshot.committed_at()
            && asked < first_commit
        {
            return Err(anyhow!(NotYetCreated {
                table: self.table.to_string(),
                asked,
                first_commit,
            }));
        }
        Ok(snapshot)
    }

    fn load(&self, at: At) -> Result<Snapshot> {
        if at == At::Latest
            && let Some(snapshot) = self.update_cached()?
        {
            return Ok(snapshot);
        }
        let mut table = DeltaTable::new(self.log_store.clone());
        let loaded = block_on(async {
            match at {
                At::Latest => table.load().await,
                At::Version(version) => {
                    let version = u64::try_from(version).map_err(|_| {
                        DeltaTableError::Generic(format!("invalid version {version}"))
                    })?;
                    table.load_version(version as _).await
                }
                At::Timestamp(time) => table.load_with_datetime(time).await,
            }
        });
        match loaded {
            Ok(()) => {}
            Err(err) if names_no_table(&err) => {
                return Err(anyhow!(NotATable(self.table.to_string())));
            }
            Err(err) => {
                return Err(delta_error(err))
                    .with_context(|| format!("opening {} ({})", self.table, describe_at(at)));
            }
        }
        let state = table
            .snapshot()
            .map_err(delta_error)
            .with_context(|| format!("opening {}", self.table))?
            .clone();
        if at == At::Latest {
            self.remember(&state);
        }
        Snapshot::from_state(self.clone(), state)
    }
}

/// True when delta-rs says there is no table there: no log entry, or (on
/// a local lake) no folder yet.
fn names_no_table(err: &DeltaTableError) -> bool {
    matches!(err, DeltaTableError::NotATable(_))
        || err
            .to_string()
            .contains("Invalid table location: Path does not exist")
}

fn describe_at(at: At) -> String {
    match at {
        At::Latest => "latest version".into(),
        At::Version(v) => format!("version {v}"),
        At::Timestamp(t) => format!("as of {}", t.to_rfc3339()),
    }
}

/// The error of a table that has no commit yet.
#[derive(Debug)]
pub struct NotATable(pub String);

impl fmt::Display for NotATable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is not a table yet (no commit in its _delta_log)",
            self.0
        )
    }
}

impl std::error::Error for NotATable {}

/// True when `err` says the table has no commit.
pub fn is_not_a_table(err: &anyhow::Error) -> bool {
    err.downcast_ref::<NotATable>().is_some()
}

/// The error of a time before a table's first commit.
#[derive(Debug, Clone)]
pub struct NotYetCreated {
    pub table: String,
    pub asked: DateTime<Utc>,
    pub first_commit: DateTime<Utc>,
}

impl fmt::Display for NotYetCreated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} did not exist yet at {}: its first commit (version 0) was at {}",
            self.table,
            self.asked
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            self.first_commit
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        )
    }
}

impl std::error::Error for NotYetCreated {}

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
