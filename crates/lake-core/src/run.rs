//! Run manifests: one JSON object per pipeline run under `_runs/`, holding
//! lineage (each step's inputs and outputs) and history (rows, rejects,
//! timings, outcome).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::layer::Layer;
use crate::storage::Lake;

/// Version of the project that wrote a manifest.
pub const PROJECT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A new run id: sortable by start time, unique across processes.
pub fn new_run_id() -> String {
    let now = Utc::now();
    let entropy =
        (now.timestamp_subsec_nanos() as u64) ^ (std::process::id() as u64).rotate_left(32);
    format!(
        "{}-{:06x}",
        now.format("%Y%m%dT%H%M%S%3fZ"),
        entropy & 0xff_ffff
    )
}

/// What one step of a run did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub name: String,
    /// Partitions read, e.g. `bronze/orders/2026-11-26`, or a source such as
    /// `postgresql://host:5432/northwind/public.orders`.
    pub inputs: Vec<String>,
    /// Partitions committed.
    pub outputs: Vec<String>,
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
        let mut objects = lake.list(Layer::Runs, "")?;
        objects.sort_by(|a, b| b.key.cmp(&a.key));
        objects
            .into_iter()
            .filter(|o| o.key.ends_with(".json"))
            .take(limit)
            .map(|o| {
                let bytes = lake
                    .get(Layer::Runs, &o.key)?
                    .with_context(|| format!("run manifest {} vanished", o.key))?;
                serde_json::from_slice(&bytes)
                    .with_context(|| format!("_runs/{} is not a run manifest", o.key))
            })
            .collect()
    }
}
