//! The run manifest of a stream run (one `lake-stream run`): its
//! `_runs/{run_id}.json`, of kind [`RunKind::Stream`], under the run id
//! its commits carry, written when the run ends (stopped, at the end of
//! an available-now run, or failed; a process killed writes none). It has
//! one step, `stream/{query}`, with the versions the run committed last
//! to each table, the messages it processed and its DLQ counts. The
//! pipeline's stream stage writes none of its own: it is a step of the
//! pipeline's run, whose manifest records it under the run id its commits
//! carry ([`crate::step`]).

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use lake_core::error::one_line;
use lake_core::run::{Outcome, PROJECT_VERSION, RunKind, RunManifest, StepRecord, TableVersion};
use lake_table::Lake;

use crate::config::StreamConfig;
use crate::processor::Processor;
use crate::runner::RunSummary;

/// The name of a stream run's step for `query` (the pipeline's stream
/// step for the default query).
pub fn step_name(query: &str) -> String {
    format!("stream/{query}")
}

/// A stream run under way, recorded when it ends.
pub struct StreamRun {
    run_id: String,
    query: String,
    source: String,
    date: NaiveDate,
    started_at: DateTime<Utc>,
    /// The versions committed last, as of the latest batch.
    written: Vec<TableVersion>,
}

impl StreamRun {
    /// A run of `config` starting now.
    pub fn begin(config: &StreamConfig) -> StreamRun {
        let started_at = Utc::now();
        StreamRun {
            run_id: config.run_id.clone(),
            query: config.query.clone(),
            source: config.source.clone(),
            date: started_at.date_naive(),
            started_at,
            written: Vec::new(),
        }
    }

    /// After each batch: the versions the processor has committed so far.
    pub fn saw(&mut self, processor: &Processor) {
        self.written = processor.written();
    }

    /// The manifest of the run that ended with `result`.
    pub fn manifest(&self, result: &Result<RunSummary>) -> RunManifest {
        let finished_at = Utc::now();
        let outcome = match result {
            Ok(_) => Outcome::Succeeded,
            Err(_) => Outcome::Failed,
        };
        let summary = result.as_ref().ok();
        let step = StepRecord {
            name: step_name(&self.query),
            sources: vec![self.source.clone()],
            reads: Vec::new(),
            writes: self.written.clone(),
            rows_in: summary.map_or(0, |s| s.messages),
            rows_out: summary.map_or(0, |s| s.counted),
            rejects: summary.map_or_else(Default::default, RunSummary::dlq_counts),
            duration_ms: u64::try_from((finished_at - self.started_at).num_milliseconds())
                .unwrap_or(0),
            attempts: 1,
            outcome,
            error: result.as_ref().err().map(one_line),
        };
        RunManifest {
            run_id: self.run_id.clone(),
            kind: RunKind::Stream,
            project_version: PROJECT_VERSION.to_string(),
            date: self.date,
            source: self.source.clone(),
            started_at: self.started_at,
            finished_at,
            outcome,
            steps: vec![step],
        }
    }

    /// Writes the manifest of the run that ended with `result`.
    pub fn finish(&self, lake: &Lake, result: &Result<RunSummary>) -> Result<RunManifest> {
        let manifest = self.manifest(result);
        manifest
            .save(lake)
            .with_context(|| format!("saving the run manifest _runs/{}.json", self.run_id))?;
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::event::DlqReason;

    fn config() -> StreamConfig {
        StreamConfig {
            query: "ventes_temps_reel".into(),
            topic: "ventes-temps-reel".into(),
            source: "kafka://h:9092/ventes-temps-reel".into(),
            allowed_lateness: Duration::from_secs(600),
            run_id: "20261208T010000000Z-abcdef".into(),
        }
    }

    #[test]
    fn a_stream_run_is_recorded_as_one_and_never_as_a_batch_run() {
        let mut summary = RunSummary {
            messages: 12,
            counted: 10,
            ..RunSummary::default()
        };
        summary.rejected.insert(DlqReason::Duplicate, 2);
        let mut run = StreamRun::begin(&config());
        run.written = vec![TableVersion {
            table: "gold/live_sales_by_country".into(),
            version: 4,
            date: run.date,
        }];
        let manifest = run.manifest(&Ok(summary));
        assert_eq!(manifest.run_id, "20261208T010000000Z-abcdef");
        assert_eq!(manifest.kind, RunKind::Stream);
        assert_eq!(manifest.outcome, Outcome::Succeeded);
        let step = manifest.step("stream/ventes_temps_reel").unwrap();
        assert_eq!((step.rows_in, step.rows_out), (12, 10));
        assert_eq!(step.rejects["dlq:duplicate"], 2);
        assert_eq!(
            manifest
                .written("gold/live_sales_by_country")
                .unwrap()
                .version,
            4
        );
        assert!(!manifest.is_complete_batch());

        let failed = run.manifest(&Err(anyhow::anyhow!("the broker went away")));
        assert_eq!(failed.outcome, Outcome::Failed);
        assert_eq!(
            failed.steps[0].error.as_deref(),
            Some("the broker went away")
        );
    }
}
