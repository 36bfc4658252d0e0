//! What the lake holds, as the API shows it: tables and committed
//! partitions per layer, and the frames of partitions, cached by the
//! identity of their `_SUCCESS` manifest (a rewrite gives a new run id and
//! write time). Manifests are resolved at most once a second per table, so
//! a new partition or a rewrite shows within a second.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::{DateTime, NaiveDate, Utc};
use lake_core::partition::{Manifest, committed_dates, read_manifest, read_partition, tables};
use lake_core::{Lake, Layer, PartitionRef};
use polars::prelude::DataFrame;
use serde::Serialize;

/// The layers whose tables the API serves.
pub const DATA_LAYERS: [Layer; 3] = [Layer::Bronze, Layer::Silver, Layer::Gold];

/// One committed partition.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionInfo {
    pub date: NaiveDate,
    pub rows: u64,
    pub files: usize,
    pub bytes: u64,
    pub written_at: DateTime<Utc>,
    pub run_id: String,
}

/// A table with at least one committed partition.
#[derive(Debug, Clone, Serialize)]
pub struct TableInfo {
    pub layer: Layer,
    /// The table's folder, e.g. `_rejects/sales_master`.
    pub table: String,
    /// Its name in SQL, e.g. `silver._rejects.sales_master`.
    pub sql_name: String,
    pub partitions: Vec<PartitionInfo>,
}

/// A partition's frame with where it came from.
#[derive(Clone)]
pub struct PartitionData {
    pub partition: PartitionRef,
    pub manifest: Arc<Manifest>,
    pub frame: Arc<DataFrame>,
}

/// The SQL name of a table: `layer.table`, `/` read as `.`.
pub fn sql_name(layer: Layer, table: &str) -> String {
    format!("{layer}.{}", table.replace('/', "."))
}

/// A table name as a client may give it: letters, digits, `_`, and one
/// `/` after a `_`-folder. Anything else (`..`, absolute paths) is refused
/// before it reaches the store.
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

type CacheKey = (Layer, String, NaiveDate);
type Resolved = Option<(PartitionRef, Manifest)>;
/// A table's partition of a date, or its latest (`None`).
type ManifestKey = (Layer, String, Option<NaiveDate>);

/// How long a resolved manifest is reused: a new partition or a rewrite
/// shows within this, and a busy endpoint does not list and read the
/// store on every request.
const MANIFEST_TTL: Duration = Duration::from_secs(1);

/// Reads partitions of the lake, keeping the last frame of each.
pub struct Catalog {
    lake: Lake,
    frames: Mutex<HashMap<CacheKey, PartitionData>>,
    manifests: Mutex<HashMap<ManifestKey, (Instant, Resolved)>>,
}

impl Catalog {
    pub fn new(lake: Lake) -> Self {
        Catalog {
            lake,
            frames: Mutex::new(HashMap::new()),
            manifests: Mutex::new(HashMap::new()),
        }
    }

    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// Tables of a layer with their committed partitions, by name.
    pub fn tables(&self, layer: Layer) -> Result<Vec<TableInfo>> {
        let mut out = Vec::new();
        let mut names = tables(&self.lake, layer)?;
        names.sort();
        for table in names {
            let mut partitions = Vec::new();
            for date in committed_dates(&self.lake, layer, &table)? {
                let partition = PartitionRef::new(layer, &table, date);
                if let Some(manifest) = read_manifest(&self.lake, &partition)? {
                    partitions.push(PartitionInfo {
                        date,
                        rows: manifest.row_count,
                        files: manifest.files.len(),
                        bytes: manifest.files.iter().map(|f| f.bytes).sum(),
                        written_at: manifest.written_at,
                        run_id: manifest.run_id,
                    });
                }
            }
            if !partitions.is_empty() {
                out.push(TableInfo {
                    layer,
                    sql_name: sql_name(layer, &table),
                    table,
                    partitions,
                });
            }
        }
        Ok(out)
    }

    /// The committed partition of `date`, or the latest one; `None` when
    /// there is none (the caller says which).
    pub fn manifest(&self, layer: Layer, table: &str, date: Option<NaiveDate>) -> Result<Resolved> {
        let key = (layer, table.to_string(), date);
        {
            let manifests = self.manifests.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, resolved)) = manifests.get(&key)
                && at.elapsed() < MANIFEST_TTL
            {
                return Ok(resolved.clone());
            }
        }
        let resolved = self.resolve(layer, table, date)?;
        self.manifests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (Instant::now(), resolved.clone()));
        Ok(resolved)
    }

    fn resolve(&self, layer: Layer, table: &str, date: Option<NaiveDate>) -> Result<Resolved> {
        let date = match date {
            Some(date) => date,
            None => match committed_dates(&self.lake, layer, table)?.last() {
                Some(date) => *date,
                None => return Ok(None),
            },
        };
        let partition = PartitionRef::new(layer, table, date);
        Ok(read_manifest(&self.lake, &partition)?.map(|m| (partition, m)))
    }

    /// A partition's frame: from the cache while its manifest is the same.
    pub fn read(
        &self,
        layer: Layer,
        table: &str,
        date: Option<NaiveDate>,
    ) -> Result<Option<PartitionData>> {
        let Some((partition, manifest)) = self.manifest(layer, table, date)? else {
            return Ok(None);
        };
        self.frame(partition, manifest).map(Some)
    }

    /// The frame of a resolved partition: from the cache while its
    /// manifest is the same.
    pub fn frame(&self, partition: PartitionRef, manifest: Manifest) -> Result<PartitionData> {
        let key = (partition.layer, partition.table.clone(), partition.date);
        {
            let frames = self.lock();
            if let Some(cached) = frames.get(&key)
                && cached.manifest.run_id == manifest.run_id
                && cached.manifest.written_at == manifest.written_at
            {
                return Ok(cached.clone());
            }
        }
        let frame = read_partition(&self.lake, &partition, &manifest, None)?;
        let data = PartitionData {
            partition,
            manifest: Arc::new(manifest),
            frame: Arc::new(frame),
        };
        self.lock().insert(key, data.clone());
        Ok(data)
    }

    /// Names of a layer's tables (their folders), without reading any
    /// manifest.
    pub fn table_names(&self, layer: Layer) -> Result<Vec<String>> {
        tables(&self.lake, layer)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, PartitionData>> {
        self.frames
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_from_clients_are_checked() {
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
    fn sql_names_read_folders_as_dots() {
        assert_eq!(sql_name(Layer::Gold, "rfm"), "gold.rfm");
        assert_eq!(
            sql_name(Layer::Silver, "_rejects/sales_master"),
            "silver._rejects.sales_master"
        );
    }
}
