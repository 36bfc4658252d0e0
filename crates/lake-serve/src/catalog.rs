//! What the lake holds, as the API shows it: tables per layer with their
//! version and dates, and the frames of one date of a table at one
//! version, cached by (table, version, date).
//!
//! Gold tables are read at the versions a complete batch run wrote (its
//! run manifest records them), so a page never shows figures of two runs:
//! by default the run of the newest date that has one, for `?date=` that
//! date's ([`crate::batch_runs`]). Other tables, the stream's live views
//! and a gold date without a complete run are read at their latest version. Both are resolved at
//! most once a second, so a new run or a new commit shows within a second.
//!
//! The frames are kept in a cache bounded by bytes (`--sql-cache-mb`),
//! evicting the least recently used. Every method here does lake I/O and
//! blocks: call it on the blocking pool. No lock is held during I/O.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use lake_stream::config::{LIVE_BY_COUNTRY, LIVE_BY_MINUTE};
use lake_table::{At, DateAsked, Lake, Layer, Snapshot, Table, TableRef};
use polars::prelude::DataFrame;
use serde::Serialize;

use crate::batch_runs::{BatchRuns, ByDate};
use crate::cache::{ByteLru, CacheStats};

pub use lake_table::valid_table_name;

/// The layers whose tables the API serves.
pub const DATA_LAYERS: [Layer; 3] = [Layer::Bronze, Layer::Silver, Layer::Gold];

/// One date of a table.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionInfo {
    pub date: NaiveDate,
    pub rows: u64,
    pub files: usize,
    pub bytes: u64,
    /// When its newest file was written.
    pub written_at: Option<DateTime<Utc>>,
}

/// A table with at least one committed version.
#[derive(Debug, Clone, Serialize)]
pub struct TableInfo {
    pub layer: Layer,
    /// The table's folder, e.g. `_rejects/sales_master`.
    pub table: String,
    /// Its name in SQL, e.g. `silver._rejects.sales_master`.
    pub sql_name: String,
    /// Its latest version.
    pub version: i64,
    pub partitions: Vec<PartitionInfo>,
}

/// One date of a table at one version.
#[derive(Clone)]
pub struct PartitionData {
    pub table: TableRef,
    pub version: i64,
    pub date: NaiveDate,
    /// The run whose version this is, for gold tables read at a run.
    pub run_id: Option<String>,
    pub frame: Arc<DataFrame>,
}

/// The SQL name of a table: `layer.table`, `/` read as `.`.
pub fn sql_name(layer: Layer, table: &str) -> String {
    format!("{layer}.{}", table.replace('/', "."))
}

/// A table's date resolved to a version.
#[derive(Clone)]
pub struct Resolved {
    pub snapshot: Snapshot,
    pub date: NaiveDate,
    pub run_id: Option<String>,
}

/// A table's date of a date, or its latest (`None`).
type ResolveKey = (Layer, String, Option<NaiveDate>);
type FrameKey = (Layer, String, i64, NaiveDate);

/// How long a resolved version is reused: a new run or commit shows
/// within this, and a busy endpoint does not read logs on every request.
const RESOLVE_TTL: Duration = Duration::from_secs(1);
/// Default bound of the frame cache.
pub const DEFAULT_CACHE_BYTES: u64 = 256 * 1024 * 1024;

/// Reads tables of the lake, keeping the last frames read.
pub struct Catalog {
    lake: Lake,
    frames: Mutex<ByteLru<FrameKey, PartitionData>>,
    resolved: Mutex<HashMap<ResolveKey, (Instant, Option<Resolved>)>>,
    batch_runs: BatchRuns,
}

impl Catalog {
    /// A catalog whose frame cache holds at most [`DEFAULT_CACHE_BYTES`].
    pub fn new(lake: Lake) -> Self {
        Catalog::with_cache_limit(lake, DEFAULT_CACHE_BYTES)
    }

    /// A catalog whose frame cache holds at most `bytes` (estimated sizes
    /// of the frames in memory).
    pub fn with_cache_limit(lake: Lake, bytes: u64) -> Self {
        Catalog {
            batch_runs: BatchRuns::new(lake.clone(), RESOLVE_TTL),
            lake,
            frames: Mutex::new(ByteLru::new(bytes)),
            resolved: Mutex::new(HashMap::new()),
        }
    }

    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// Tables of a layer with their latest version and dates, by name.
    pub fn tables(&self, layer: Layer) -> Result<Vec<TableInfo>> {
        let mut out = Vec::new();
        for table in lake_table::tables(&self.lake, layer)? {
            let Some(snapshot) = Table::open(&self.lake, TableRef::new(layer, &table))?.latest()?
            else {
                continue;
            };
            let mut written: HashMap<NaiveDate, i64> = HashMap::new();
            for file in snapshot.files() {
                let newest = written.entry(file.date).or_insert(file.modified_ms);
                *newest = (*newest).max(file.modified_ms);
            }
            let partitions: Vec<PartitionInfo> = snapshot
                .date_summaries()
                .into_iter()
                .map(|(date, summary)| PartitionInfo {
                    date,
                    rows: summary.rows,
                    files: summary.files,
                    bytes: summary.bytes,
                    written_at: written
                        .get(&date)
                        .and_then(|ms| DateTime::from_timestamp_millis(*ms)),
                })
                .collect();
            if partitions.is_empty() {
                continue;
            }
            out.push(TableInfo {
                layer,
                sql_name: sql_name(layer, &table),
                table,
                version: snapshot.version(),
                partitions,
            });
        }
        Ok(out)
    }

    /// The newest complete batch run of each date.
    pub fn batch_runs(&self) -> Result<Arc<ByDate>> {
        self.batch_runs.by_date()
    }

    /// The version and date to read for a table: for a gold table, the
    /// version the complete batch run of `date` wrote (of the newest date
    /// that has one when `date` is `None`); else `date` (or the latest
    /// date) at the latest version. `None` when there is nothing to read.
    pub fn resolve(
        &self,
        layer: Layer,
        table: &str,
        date: Option<NaiveDate>,
    ) -> Result<Option<Resolved>> {
        let key = (layer, table.to_string(), date);
        {
            let resolved = self.resolved.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, found)) = resolved.get(&key)
                && at.elapsed() < RESOLVE_TTL
            {
                return Ok(found.clone());
            }
        }
        let found = self.resolve_now(layer, table, date)?;
        let mut resolved = self.resolved.lock().unwrap_or_else(|p| p.into_inner());
        // Only the last second's answers are kept: names and dates come
        // from clients, so the map must not grow with them.
        resolved.retain(|_, (at, _)| at.elapsed() < RESOLVE_TTL);
        resolved.insert(key, (Instant::now(), found.clone()));
        Ok(found)
    }

    fn resolve_now(
        &self,
        layer: Layer,
        table: &str,
        date: Option<NaiveDate>,
    ) -> Result<Option<Resolved>> {
        let handle = Table::open(&self.lake, TableRef::new(layer, table))?;
        // The stream's live views move on after every micro-batch, whatever
        // batch run wrote them last (a pipeline's stream stage): read at
        // their latest version, never pinned to a batch run.
        let live_view = [LIVE_BY_COUNTRY, LIVE_BY_MINUTE].contains(&table);
        if layer == Layer::Gold && !live_view {
            let name = format!("{layer}/{table}");
            let runs = self.batch_runs()?;
            let run = match date {
                None => runs.newest(),
                Some(date) => runs.of(date),
            };
            if let Some(run) = run
                && let Some(written) = run.written(&name)
            {
                let snapshot = handle
                    .at(At::Version(written.version))
                    .with_context(|| format!("reading {written} of run {}", run.run_id))?;
                return Ok(Some(Resolved {
                    snapshot,
                    date: written.date,
                    run_id: Some(run.run_id.clone()),
                }));
            }
        }
        let Some(snapshot) = handle.latest()? else {
            return Ok(None);
        };
        let asked = date.map_or(DateAsked::Latest, DateAsked::Exactly);
        let Some(date) = snapshot.date_seen(asked) else {
            return Ok(None);
        };
        Ok(Some(Resolved {
            snapshot,
            date,
            run_id: None,
        }))
    }

    /// One date of a table (see [`Catalog::resolve`]), from the cache
    /// while its version is the same.
    pub fn read(
        &self,
        layer: Layer,
        table: &str,
        date: Option<NaiveDate>,
    ) -> Result<Option<PartitionData>> {
        let Some(resolved) = self.resolve(layer, table, date)? else {
            return Ok(None);
        };
        self.frame(&resolved).map(Some)
    }

    /// The frame of a resolved date: from the cache while its version is
    /// the same.
    pub fn frame(&self, resolved: &Resolved) -> Result<PartitionData> {
        let table = resolved.snapshot.table_ref().clone();
        let version = resolved.snapshot.version();
        let key = (table.layer, table.name.clone(), version, resolved.date);
        if let Some(cached) = self.lock().get(&key) {
            return Ok(cached);
        }
        let frame = resolved
            .snapshot
            .scan(resolved.date)?
            .collect()
            .map_err(anyhow::Error::from)
            .with_context(|| format!("reading {table}@v{version} {}", resolved.date))?;
        let data = PartitionData {
            table,
            version,
            date: resolved.date,
            run_id: resolved.run_id.clone(),
            frame: Arc::new(frame),
        };
        let bytes = data.frame.estimated_size() as u64;
        let mut frames = self.lock();
        // One frame per table and date: an older version's goes.
        frames.remove_where(|(layer, name, _, date)| {
            *layer == key.0 && *name == key.1 && *date == key.3
        });
        frames.insert(key, data.clone(), bytes);
        Ok(data)
    }

    /// Names of a layer's tables (their folders), without reading any log.
    pub fn table_names(&self, layer: Layer) -> Result<Vec<String>> {
        lake_table::tables(&self.lake, layer)
    }

    /// The frame cache's size and counters.
    pub fn cache_stats(&self) -> CacheStats {
        self.lock().stats()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ByteLru<FrameKey, PartitionData>> {
        self.frames
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_names_read_folders_as_dots() {
        assert_eq!(sql_name(Layer::Gold, "rfm"), "gold.rfm");
        assert_eq!(
            sql_name(Layer::Silver, "_rejects/sales_master"),
            "silver._rejects.sales_master"
        );
    }
}
