//! Run manifests: one JSON object per pipeline run under `_runs/`, holding
//! lineage (each step's inputs and outputs) and history (rows, rejects,
//! timings, outcome).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use lake_table::{Commit, Lake, Layer};

/// Version of the project that wrote a manifest.
pub const PROJECT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A new run id: sortable by start time, then random (data file names do
/// not depend on it: each has a UUID of its own).
pub fn new_run_id() -> String {
    let now = Utc::now();
    let random = uuid::Uuid::new_v4().as_u128() as u32 & 0xff_ffff;
    format!("{}-{random:06x}", now.format("%Y%m%dT%H%M%S%3fZ"))
}

/// One table version a step read or wrote: the lineage of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableVersion {
    /// `layer/table`, e.g. `gold/kpi_summary`.
    pub table: String,
    pub version: i64,
    /// The date read or written.
    pub date: NaiveDate,
}

impl From<&Commit> for TableVersion {
    fn from(commit: &Commit) -> Self {
        TableVersion {
            table: commit.table.to_string(),
            version: commit.version,
            date: commit.date,
        }
    }
}

impl std::fmt::Display for TableVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@v{} ({})", self.table, self.version, self.date)
    }
}

/// What one step of a run did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub name: String,
    /// Sources read outside the lake, such as
    /// `postgresql://host:5432/northwind/public.orders`.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Table versions read.
    #[serde(default)]
    pub reads: Vec<TableVersion>,
    /// Table versions committed.
    #[serde(default)]
    pub writes: Vec<TableVersion>,
    pub rows_in: u64,
    pub rows_out: u64,
    #[serde(default)]
    pub rejects: BTreeMap<String, u64>,
    pub duration_ms: u64,
    pub attempts: u32,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Succeeded,
    Failed,
    /// Not run because an input step failed.
    Skipped,
}

/// The manifest of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunManifest {
    pub run_id: String,
    pub project_version: String,
    pub date: NaiveDate,
    /// The batch source, without credentials.
    pub source: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: Outcome,
    pub steps: Vec<StepRecord>,
}

impl RunManifest {
    /// The record of the step named `name`, if the run had one.
    pub fn step(&self, name: &str) -> Option<&StepRecord> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// The version of `table` (`layer/table`) this run committed last.
    pub fn written(&self, table: &str) -> Option<&TableVersion> {
        self.steps
            .iter()
            .flat_map(|s| &s.writes)
            .filter(|w| w.table == table)
            .max_by_key(|w| w.version)
    }

    fn key(run_id: &str) -> String {
        format!("{run_id}.json")
    }

    /// Writes the manifest to `_runs/{run_id}.json`.
    pub fn save(&self, lake: &Lake) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).context("encoding the run manifest")?;
        lake.put(Layer::Runs, &Self::key(&self.run_id), Bytes::from(json))
    }

    /// Reads the most recent run manifests, newest first.
    pub fn recent(lake: &Lake, limit: usize) -> Result<Vec<RunManifest>> {
        Self::newest_first(lake, limit)?.collect()
    }

    /// The keys of the last `limit` manifests under `_runs/`, newest first
    /// (run ids sort by start time).
    pub fn keys_newest_first(lake: &Lake, limit: usize) -> Result<Vec<String>> {
        let mut keys: Vec<String> = lake
            .list(Layer::Runs, "")?
            .into_iter()
            .map(|o| o.key)
            .filter(|key| key.ends_with(".json"))
            .collect();
        keys.sort_by(|a, b| b.cmp(a));
        keys.truncate(limit);
        Ok(keys)
    }

    /// The manifest stored under `_runs/{key}`.
    pub fn read(lake: &Lake, key: &str) -> Result<RunManifest> {
        let bytes = lake
            .get(Layer::Runs, key)?
            .with_context(|| format!("run manifest _runs/{key} vanished"))?;
        serde_json::from_slice(&bytes).with_context(|| format!("_runs/{key} is not a run manifest"))
    }

    /// The last `limit` manifests, newest first, each read when the
    /// iterator reaches it.
    fn newest_first(
        lake: &Lake,
        limit: usize,
    ) -> Result<impl Iterator<Item = Result<RunManifest>> + '_> {
        Ok(Self::keys_newest_first(lake, limit)?
            .into_iter()
            .map(move |key| Self::read(lake, &key)))
    }
}
