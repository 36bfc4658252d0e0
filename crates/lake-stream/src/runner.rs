//! Running a stream query: a source ([`crate::source`]) feeds
//! micro-batches to the processor under the one loop, [`drive`].
//!
//! - [`run_kafka`]: a consumer in a consumer group reading each owned
//!   partition of the source topic and of the internal topic its forwarded
//!   copies go to ([`crate::route`]); `available-now` reads every assigned
//!   partition up to its high watermarks, then stops; `interval` runs
//!   micro-batches until SIGINT or SIGTERM, then finishes its batch and
//!   checkpoints.
//! - [`run_embedded`]: the built-in producer in process, for a lake with no
//!   Kafka.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use lake_table::Lake;
use rdkafka::consumer::BaseConsumer;

use crate::claim::{SourceClaim, SourceKind, claim};
use crate::config::{KafkaRunOptions, KafkaSettings, StreamConfig, Trigger};
use crate::drive::{LoopOptions, drive};
use crate::event::DlqReason;
use crate::generator::ProducerReport;
use crate::processor::{BatchReport, Processor};
use crate::route::{Forwarder, ensure_internal_topic, internal_topic};
use crate::source::context::lock;
pub use crate::source::embedded::EmbeddedOptions;
use crate::source::embedded::EmbeddedSource;
use crate::source::kafka::KafkaSource;
use crate::views::LiveTotals;

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    /// Source messages forwarded to their home partition.
    pub forwarded: u64,
    pub batches: u64,
    /// Messages aggregated (forwarded ones, and copies forwarded again
    /// after a crash, not included).
    pub messages: u64,
    /// Copies forwarded again after a crash, skipped.
    pub replayed: u64,
    pub counted: u64,
    pub rejected: BTreeMap<DlqReason, u64>,
    /// The live totals over every partition at the end.
    pub live: LiveTotals,
}

impl RunSummary {
    /// The messages sent to the DLQ by reason, as run manifests record
    /// them (`dlq:{reason}`).
    pub fn dlq_counts(&self) -> BTreeMap<String, u64> {
        self.rejected
            .iter()
            .map(|(reason, count)| (format!("dlq:{}", reason.as_str()), *count))
            .collect()
    }

    fn add(&mut self, report: &BatchReport) {
        if report.messages + report.forwarded > 0 {
            self.batches += 1;
        }
        self.messages += report.messages;
        self.forwarded += report.forwarded;
        self.replayed += report.replayed;
        self.counted += report.counted;
        for (reason, count) in &report.rejected {
            *self.rejected.entry(*reason).or_insert(0) += count;
        }
    }
}

/// Runs the query on the topic until the trigger says stop or `stop` is
/// raised; returns what was done. Creates the internal topic, with as many
/// partitions as the source, unless it exists. Refused when the lake's
/// stream tables hold another source ([`crate::claim`]); the live views
/// and status start from the query's checkpoints.
pub fn run_kafka(
    lake: &Lake,
    settings: &KafkaSettings,
    config: StreamConfig,
    options: &KafkaRunOptions,
    stop: Arc<AtomicBool>,
    on_batch: &mut dyn FnMut(&BatchReport, &Processor),
) -> Result<RunSummary> {
    let probe: BaseConsumer = settings
        .client_config()
        .create()
        .context("creating a Kafka client")?;
    let partitions = settings.check_topic(&probe)?.len() as i32;
    drop(probe);
    let internal_partitions = ensure_internal_topic(settings, partitions)?;
    if internal_partitions != partitions {
        bail!(
            "{} has {internal_partitions} partitions and {} has {partitions}: they must have as many \
             (each partition forwards copies to the same partition of the other); recreate {0} \
             with {partitions} partitions while no lake-stream runs, after a last run has drained it",
            internal_topic(&settings.topic),
            settings.topic
        );
    }
    claim(
        lake,
        &config.query,
        &SourceClaim {
            kind: SourceKind::Kafka,
            topic: settings.topic.clone(),
            source: config.source.clone(),
        },
    )?;
    let forwarder = Forwarder::new(settings, partitions)?;
    let mut processor = Processor::new(lake, config)
        .with_forwarder(forwarder)
        .with_max_clock_skew(options.max_clock_skew);
    processor.resume()?;
    let processor = Arc::new(Mutex::new(processor));
    let mut source = KafkaSource::subscribe(processor.clone(), settings, options)?;
    let loop_options = LoopOptions {
        trigger: options.trigger,
        max_batch: options.max_batch,
    };
    let reports = drive(
        &mut source,
        &processor,
        loop_options,
        &|| stop.load(Ordering::SeqCst),
        on_batch,
    )?;
    // Leaves the group before the final totals are merged.
    drop(source);
    summarize(&reports, &mut lock(&processor))
}

/// The run's counts, and the live totals over every partition at its end.
fn summarize(reports: &[BatchReport], processor: &mut Processor) -> Result<RunSummary> {
    let mut summary = RunSummary::default();
    reports.iter().for_each(|r| summary.add(r));
    summary.live = processor.refresh_live_totals()?.clone();
    Ok(summary)
}

/// Runs the query on events from the built-in producer, in process: a fixed
/// topic for a seed and date, so a rerun has nothing new to count. Refused
/// when the lake's stream tables hold another source ([`crate::claim`]).
pub fn run_embedded(
    lake: &Lake,
    config: StreamConfig,
    options: &EmbeddedOptions,
) -> Result<(RunSummary, ProducerReport)> {
    let name = config.source.clone();
    claim(
        lake,
        &config.query,
        &SourceClaim {
            kind: SourceKind::Embedded,
            topic: config.topic.clone(),
            source: config.source.clone(),
        },
    )?;
    let mut processor = Processor::new(lake, config);
    processor.resume()?;
    let processor = Arc::new(Mutex::new(processor));
    let mut source = EmbeddedSource::new(&mut *lock(&processor), &name, options)?;
    let loop_options = LoopOptions {
        trigger: Trigger::AvailableNow,
        max_batch: options.batch_size.max(1),
    };
    let reports = drive(
        &mut source,
        &processor,
        loop_options,
        &|| false,
        &mut |_, _| {},
    )?;
    let produced = source.finish();
    Ok((summarize(&reports, &mut lock(&processor))?, produced))
}
