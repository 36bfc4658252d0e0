//! Running a stream query: sources feed micro-batches to the stages.
//!
//! - [`run_kafka`]: the routing and aggregating stages, each a consumer in
//!   a consumer group ([`crate::consume`]); `available-now` reads every
//!   assigned partition up to the high watermark found when it was
//!   assigned, then stops; `interval` runs micro-batches until SIGINT or
//!   SIGTERM, then finishes its batch and checkpoints.
//! - [`run_embedded`]: the built-in producer in process, for a lake with no
//!   Kafka. Its generator sends every copy of an event to the partition of
//!   its id, as the router would, so it feeds the aggregating stage
//!   directly.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use chrono::{NaiveDate, TimeZone, Utc};
use lake_table::Lake;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

use crate::consume::{Subscription, consume};
use crate::event::DlqReason;
use crate::processor::{BatchReport, Processor, SourceMessage, StreamConfig};
use crate::producer::{EventGenerator, EventMix, ProducerReport};
use crate::route::{Router, ensure_internal_topic, internal_group, internal_topic};
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
    /// Source messages the routing stage republished.
    pub routed: u64,
    pub batches: u64,
    /// Messages the aggregating stage took (copies the router replayed
    /// after a crash not included).
    pub messages: u64,
    /// Copies the router replayed after a crash, skipped.
    pub replayed: u64,
    pub counted: u64,
    pub rejected: BTreeMap<DlqReason, u64>,
    /// The live totals over every partition at the end.
    pub live: LiveTotals,
}

impl RunSummary {
    fn add(&mut self, report: &BatchReport) {
        if report.messages > 0 {
            self.batches += 1;
        }
        self.messages += report.messages;
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
}

impl Default for KafkaRunOptions {
    fn default() -> Self {
        KafkaRunOptions {
            trigger: Trigger::AvailableNow,
            max_batch: 50_000,
            assignment_timeout: Duration::from_secs(30),
        }
    }
}

/// Runs the query on the topic: the routing stage (source topic to the
/// internal topic, consumer group `group`) and the aggregating stage
/// (internal topic to the lake, group `{group}.by-event-id`), until the
/// trigger says stop or `stop` is raised; returns what was done.
///
/// `interval` runs both stages at once, on two threads. `available-now`
/// routes every source partition up to its high watermark first, then
/// aggregates the internal topic up to its own: everything the run routed
/// is counted before it ends.
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
    let source_partitions = settings.check_topic(&probe)?;
    drop(probe);
    let internal_partitions = ensure_internal_topic(settings, source_partitions.len() as i32)?;
    let router = Router::new(lake, &config.query, settings, internal_partitions)?;
    let processor = Processor::new(lake, config);
    // Both stages at once, the router on a thread of its own; either one
    // failing stops the other. With available-now the aggregating stage
    // aggregates while the router writes, and ends at the internal topic's
    // high watermarks taken once the router has ended.
    let halt = Arc::new(AtomicBool::new(false));
    let routed_all = Arc::new(AtomicBool::new(false));
    let router_thread = {
        let (stop, halt, routed_all) = (stop.clone(), halt.clone(), routed_all.clone());
        let settings = settings.clone();
        let options = options.clone();
        std::thread::Builder::new()
            .name("router".into())
            .spawn(move || {
                let routing = Subscription {
                    settings: &settings,
                    topic: settings.topic.clone(),
                    group: settings.group.clone(),
                    complete: None,
                };
                let should_stop = || stop.load(Ordering::SeqCst) || halt.load(Ordering::SeqCst);
                let result = consume(router, &routing, &options, &should_stop, &mut |_, _| {});
                match &result {
                    Ok(_) => routed_all.store(true, Ordering::SeqCst),
                    Err(_) => halt.store(true, Ordering::SeqCst),
                }
                result.map(|(_, reports)| reports.iter().map(|r| r.messages).sum::<u64>())
            })
            .context("starting the router thread")?
    };
    let router_done = || routed_all.load(Ordering::SeqCst);
    let aggregating = Subscription {
        settings,
        topic: internal_topic(&settings.topic),
        group: internal_group(&settings.group),
        complete: match options.trigger {
            Trigger::AvailableNow => Some(&router_done),
            Trigger::Interval(_) => None,
        },
    };
    let should_stop = || stop.load(Ordering::SeqCst) || halt.load(Ordering::SeqCst);
    let aggregated = consume(processor, &aggregating, options, &should_stop, on_batch);
    halt.store(true, Ordering::SeqCst);
    let routed = router_thread.join().map_err(|panic| {
        anyhow!(
            "the router panicked: {}",
            lake_core::error::panic_message(&panic)
        )
    })?;
    // The router's error first: the aggregating stage stopped because of it.
    let mut summary = RunSummary {
        routed: routed?,
        ..RunSummary::default()
    };
    let (processor, reports) = aggregated?;
    reports.iter().for_each(|r| summary.add(r));
    let mut processor = processor;
    summary.live = processor.refresh_live_totals()?.clone();
    Ok(summary)
}

/// Options of the in-process source.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    pub events: u64,
    pub partitions: i32,
    pub seed: u64,
    pub mix: EventMix,
    pub batch_size: usize,
    /// The day the events happen (spread over it).
    pub date: NaiveDate,
}

/// Runs the query on events from the built-in producer, in process: a fixed
/// topic for a seed and date, so a rerun has nothing new to count.
pub fn run_embedded(
    lake: &Lake,
    config: StreamConfig,
    options: &EmbeddedOptions,
) -> Result<(RunSummary, ProducerReport)> {
    let mut generator = EventGenerator::new(options.seed, options.partitions, options.mix)?;
    // Events spread over the run date up to now: the live view of a run
    // dated today never shows events from the future. (A run dated in the
    // future gets its events at the start of that day.)
    let day_start = Utc.from_utc_datetime(&options.date.and_hms_opt(0, 0, 0).unwrap_or_default());
    let window_ms = (Utc::now() - day_start)
        .num_milliseconds()
        .clamp(1, 86_400_000);
    let step_ms = (window_ms / options.events.max(1) as i64).max(0);
    let mut offsets = vec![0i64; options.partitions as usize];
    let mut messages = Vec::with_capacity(options.events as usize);
    for i in 0..options.events {
        let now = day_start + chrono::Duration::milliseconds(i as i64 * step_ms);
        let message = generator.next_message(now);
        let offset = &mut offsets[message.partition as usize];
        messages.push(SourceMessage::direct(
            message.partition,
            *offset,
            Some(now.timestamp_millis()),
            Some(message.payload),
        ));
        *offset += 1;
    }
    let mut processor = Processor::new(lake, config);
    for partition in 0..options.partitions {
        processor.assign(partition)?;
    }
    let mut summary = RunSummary::default();
    for batch in messages.chunks(options.batch_size.max(1)) {
        let report = processor.process(batch.to_vec())?;
        summary.add(&report);
    }
    while processor.carried() > 0 {
        let report = processor.process(Vec::new())?;
        summary.add(&report);
    }
    summary.live = processor.refresh_live_totals()?.clone();
    Ok((summary, generator.report().clone()))
}
