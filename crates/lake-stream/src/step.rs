//! The stream stage of `cargo xtask pipeline`: an available-now run on
//! Kafka when one is configured, else the built-in producer in process
//! (its checkpoints in `checkpoints/embedded_{query}/`, see
//! [`crate::claim::checkpoint_folder`]).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use chrono::NaiveDate;
use lake_core::dag::{Step, StepOutput};
use lake_core::run::TableVersion;
use lake_table::{Lake, Layer, Table, TableRef};

use crate::claim::{SourceKind, checkpoint_folder};
use crate::config::{
    DEFAULT_LATENESS, DLQ_TABLE, EVENTS_TABLE, KafkaRunOptions, KafkaSettings, LIVE_BY_COUNTRY,
    LIVE_BY_MINUTE, QUERY, StreamConfig, TOPIC,
};
use crate::generator::EventMix;
use crate::runner::{EmbeddedOptions, RunSummary, run_embedded, run_kafka};

/// Name of the DAG step.
pub const STEP: &str = "stream/ventes_temps_reel";

/// Where the pipeline's stream stage reads.
#[derive(Debug, Clone)]
pub enum StreamSource {
    Kafka(KafkaSettings),
    /// The built-in producer: this many events over the run date.
    Embedded {
        events: u64,
        seed: u64,
    },
}

fn output(lake: &Lake, summary: RunSummary, input: String) -> anyhow::Result<StepOutput> {
    // The outputs' versions after the run: what a reader of this run reads.
    let mut writes = Vec::new();
    for table in [
        TableRef::new(Layer::Bronze, EVENTS_TABLE),
        TableRef::new(Layer::Bronze, DLQ_TABLE),
        TableRef::new(Layer::Gold, LIVE_BY_COUNTRY),
        TableRef::new(Layer::Gold, LIVE_BY_MINUTE),
    ] {
        if let Some(snapshot) = Table::open(lake, table.clone())?.latest()?
            && let Some(date) = snapshot.latest_date()
        {
            writes.push(TableVersion {
                table: table.to_string(),
                version: snapshot.version(),
                date,
            });
        }
    }
    Ok(StepOutput {
        sources: vec![input],
        writes,
        rows_in: summary.messages,
        rows_out: summary.counted,
        rejects: summary.dlq_counts(),
        ..Default::default()
    })
}

/// The stream step of the pipeline run `run_id`, after `depends_on`: its
/// commits carry the pipeline's run id, whose manifest records the step
/// (the stage writes no manifest of its own).
pub fn pipeline_step(
    lake: &Lake,
    date: NaiveDate,
    run_id: &str,
    source: StreamSource,
    depends_on: Vec<String>,
) -> Step {
    let lake = lake.clone();
    let run_id = run_id.to_string();
    Step::new(STEP, depends_on, move |ctx| {
        let lateness = DEFAULT_LATENESS;
        match &source {
            StreamSource::Kafka(settings) => {
                let config = StreamConfig {
                    query: QUERY.into(),
                    topic: settings.topic.clone(),
                    source: settings.source_uri(),
                    allowed_lateness: lateness,
                    run_id: run_id.clone(),
                };
                let stop = Arc::new(AtomicBool::new(false));
                let mut seen = 0u64;
                let summary = run_kafka(
                    &lake,
                    settings,
                    config,
                    &KafkaRunOptions::default(),
                    stop,
                    &mut |report, _| {
                        seen += report.messages;
                        ctx.rows(seen);
                    },
                )?;
                output(&lake, summary, settings.source_uri())
            }
            StreamSource::Embedded { events, seed } => {
                let config = StreamConfig {
                    query: checkpoint_folder(QUERY, SourceKind::Embedded),
                    topic: TOPIC.into(),
                    source: format!("embedded://producer/{TOPIC}"),
                    allowed_lateness: lateness,
                    run_id: run_id.clone(),
                };
                let options = EmbeddedOptions {
                    events: *events,
                    partitions: 4,
                    seed: *seed,
                    mix: EventMix::default(),
                    batch_size: 2_000,
                    date,
                };
                let (summary, _) = run_embedded(&lake, config.clone(), &options)?;
                ctx.rows(summary.messages);
                output(&lake, summary, config.source)
            }
        }
    })
}
