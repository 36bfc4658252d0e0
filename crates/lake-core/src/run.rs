//! Run manifests: one JSON object per run under `_runs/`, holding lineage
//! (each step's inputs and outputs) and history (rows, rejects, timings,
//! outcome). A run is a pipeline run ([`RunKind::Batch`]) or a stream run
//! ([`RunKind::Stream`]: one `lake-stream run`).

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

/// What kind of run a manifest records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    /// A pipeline run (batch layers, and its stream stage when it has one);
    /// manifests written before runs had a kind are all batch runs.
    #[default]
    Batch,
    /// One `lake-stream run`: it writes the stream's tables only (bronze
    /// events, DLQ and the gold live views), never the batch figures.
    Stream,
}

/// The manifest of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunManifest {
    pub run_id: String,
    #[serde(default)]
    pub kind: RunKind,
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

    /// A batch run that succeeded and wrote gold: a run whose gold versions
    /// readers of several gold tables take together. A stream run writes
    /// the gold live views, but it is never one.
    pub fn is_complete_batch(&self) -> bool {
        self.kind == RunKind::Batch
            && self.outcome == Outcome::Succeeded
            && self
                .steps
                .iter()
                .flat_map(|s| &s.writes)
                .any(|w| w.table.starts_with("gold/"))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(kind: RunKind, outcome: Outcome, wrote: &str) -> RunManifest {
        let date = NaiveDate::from_ymd_opt(2026, 12, 8).unwrap();
        RunManifest {
            run_id: "20261208T010000000Z-000001".into(),
            kind,
            project_version: PROJECT_VERSION.into(),
            date,
            source: "generator".into(),
            started_at: Utc::now(),
            finished_at: Utc::now(),
            outcome,
            steps: vec![StepRecord {
                name: "a step".into(),
                sources: Vec::new(),
                reads: Vec::new(),
                writes: vec![TableVersion {
                    table: wrote.into(),
                    version: 3,
                    date,
                }],
                rows_in: 0,
                rows_out: 0,
                rejects: BTreeMap::new(),
                duration_ms: 1,
                attempts: 1,
                outcome,
                error: None,
            }],
        }
    }

    #[test]
    fn a_complete_batch_run_is_a_succeeded_batch_run_that_wrote_gold() {
        assert!(
            manifest(RunKind::Batch, Outcome::Succeeded, "gold/kpi_summary").is_complete_batch()
        );
        assert!(!manifest(RunKind::Batch, Outcome::Failed, "gold/kpi_summary").is_complete_batch());
        assert!(
            !manifest(RunKind::Batch, Outcome::Succeeded, "silver/sales_master")
                .is_complete_batch()
        );
        // A stream run writes the gold live views: still not a batch run.
        let stream = manifest(
            RunKind::Stream,
            Outcome::Succeeded,
            "gold/live_sales_by_country",
        );
        assert!(!stream.is_complete_batch());
    }

    #[test]
    fn a_manifest_without_a_kind_is_a_batch_run() {
        let stream = manifest(
            RunKind::Stream,
            Outcome::Succeeded,
            "gold/live_sales_by_country",
        );
        let json = serde_json::to_value(&stream).unwrap();
        assert_eq!(json["kind"], "stream");
        let mut older = json.clone();
        older.as_object_mut().unwrap().remove("kind");
        let read: RunManifest = serde_json::from_value(older).unwrap();
        assert_eq!(read.kind, RunKind::Batch);
        let read: RunManifest = serde_json::from_value(json).unwrap();
        assert_eq!(read, stream);
    }
}
