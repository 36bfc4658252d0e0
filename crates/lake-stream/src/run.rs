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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use lake_table::Lake;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

use crate::event::DlqReason;
use crate::processor::{BatchReport, DEFAULT_MAX_CLOCK_SKEW, Processor, StreamConfig};
use crate::producer::ProducerReport;
use crate::route::{Forwarder, ensure_internal_topic, internal_topic};
pub use crate::source::embedded::EmbeddedOptions;
use crate::source::embedded::EmbeddedSource;
use crate::source::kafka::KafkaSource;
use crate::source::{LoopOptions, drive};
use crate::views::LiveTotals;

/// When micro-batches run and when the query stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Up to the high watermarks found at start, then stop.
    AvailableNow,
    /// A micro-batch per interval until a stop signal.
    Interval(Duration),
}

impl std::str::FromStr for Trigger {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        if s == "available-now" {
            return Ok(Trigger::AvailableNow);
        }
        let Some(raw) = s.strip_prefix("interval=") else {
            bail!(
                "unknown trigger {s:?}: expected available-now or interval=DURATION (e.g. interval=1s)"
            );
        };
        Ok(Trigger::Interval(parse_duration(raw)?))
    }
}

/// `500ms`, `1s`, `2m`, `1.5s`.
pub fn parse_duration(raw: &str) -> Result<Duration> {
    let raw = raw.trim();
    let (number, unit) = raw
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| raw.split_at(i))
        .ok_or_else(|| {
            anyhow!("invalid duration {raw:?}: expected a number and a unit (ms, s, m, h)")
        })?;
    let value: f64 = number.parse().map_err(|_| {
        anyhow!("invalid duration {raw:?}: expected a number and a unit (ms, s, m, h)")
    })?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => bail!("invalid duration {raw:?}: unit must be ms, s, m or h"),
    };
    if !(seconds.is_finite() && seconds > 0.0) {
        bail!("invalid duration {raw:?}: must be positive");
    }
    Ok(Duration::from_secs_f64(seconds))
}

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

/// Where Kafka is and how to talk to it.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    pub brokers: String,
    pub topic: String,
    pub group: String,
    /// librdkafka settings passed through (security.protocol, sasl.*, ssl.*...).
    pub extra: Vec<(String, String)>,
    /// How long to wait for the brokers before giving up.
    pub connect_timeout: Duration,
}

impl KafkaSettings {
    /// `_source` of the events read: `kafka://{brokers}/{topic}`.
    pub fn source_uri(&self) -> String {
        format!("kafka://{}/{}", self.brokers, self.topic)
    }

    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1000")
            // An idle partition answers a fetch after at most this: it bounds
            // the time a new event waits in the broker.
            .set("fetch.wait.max.ms", "100")
            .set(
                "socket.timeout.ms",
                (self.connect_timeout.as_millis().max(1000)).to_string(),
            );
        for (key, value) in &self.extra {
            config.set(key, value);
        }
        config
    }

    /// Fails with a clear error when the brokers cannot be reached within
    /// the connect timeout or the topic does not exist; else its partitions.
    pub fn check_topic<C: ConsumerContext, T: Consumer<C>>(
        &self,
        consumer: &T,
    ) -> Result<Vec<i32>> {
        let metadata = consumer
            .fetch_metadata(Some(&self.topic), self.connect_timeout)
            .map_err(|err| {
                anyhow!(
                    "cannot reach Kafka at {} within {} s: {err}",
                    self.brokers,
                    self.connect_timeout.as_secs_f64()
                )
            })?;
        let topic = metadata
            .topics()
            .iter()
            .find(|t| t.name() == self.topic)
            .ok_or_else(|| anyhow!("topic {} does not exist on {}", self.topic, self.brokers))?;
        if topic.error().is_some() || topic.partitions().is_empty() {
            bail!(
                "topic {} does not exist on {} (create it first, e.g. with {} partitions)",
                self.topic,
                self.brokers,
                4
            );
        }
        Ok(topic.partitions().iter().map(|p| p.id()).collect())
    }
}

/// Options of a Kafka run.
#[derive(Debug, Clone)]
pub struct KafkaRunOptions {
    pub trigger: Trigger,
    /// Most messages in one micro-batch.
    pub max_batch: usize,
    /// Available-now gives up when no partition is assigned within this.
    pub assignment_timeout: Duration,
    /// Events more than this ahead of their batch's processing time go to
    /// the DLQ as `future_time` (data contract, section 6). A run setting
    /// beside the lateness of [`StreamConfig`], kept here because this
    /// struct has a default.
    pub max_clock_skew: Duration,
}

impl Default for KafkaRunOptions {
    fn default() -> Self {
        KafkaRunOptions {
            trigger: Trigger::AvailableNow,
            max_batch: 50_000,
            assignment_timeout: Duration::from_secs(30),
            max_clock_skew: DEFAULT_MAX_CLOCK_SKEW,
        }
    }
}

/// Runs the query on the topic until the trigger says stop or `stop` is
/// raised; returns what was done. Creates the internal topic, with as many
/// partitions as the source, unless it exists.
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
    let forwarder = Forwarder::new(settings, partitions)?;
    let processor = Processor::new(lake, config)
        .with_forwarder(forwarder)
        .with_max_clock_skew(options.max_clock_skew);
    let mut source = KafkaSource::subscribe(processor, settings, options)?;
    let loop_options = LoopOptions {
        trigger: options.trigger,
        max_batch: options.max_batch,
    };
    let reports = drive(
        &mut source,
        loop_options,
        &|| stop.load(Ordering::SeqCst),
        on_batch,
    )?;
    let mut processor = source.close()?;
    summarize(&reports, &mut processor)
}

/// The run's counts, and the live totals over every partition at its end.
fn summarize(reports: &[BatchReport], processor: &mut Processor) -> Result<RunSummary> {
    let mut summary = RunSummary::default();
    reports.iter().for_each(|r| summary.add(r));
    summary.live = processor.refresh_live_totals()?.clone();
    Ok(summary)
}

/// Runs the query on events from the built-in producer, in process: a fixed
/// topic for a seed and date, so a rerun has nothing new to count.
pub fn run_embedded(
    lake: &Lake,
    config: StreamConfig,
    options: &EmbeddedOptions,
) -> Result<(RunSummary, ProducerReport)> {
    let processor = Processor::new(lake, config);
    let mut source = EmbeddedSource::new(processor, options)?;
    let loop_options = LoopOptions {
        trigger: Trigger::AvailableNow,
        max_batch: options.batch_size.max(1),
    };
    let reports = drive(&mut source, loop_options, &|| false, &mut |_, _| {})?;
    let (mut processor, produced) = source.finish();
    Ok((summarize(&reports, &mut processor)?, produced))
}
