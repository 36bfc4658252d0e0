//! Running a stream query: sources feed micro-batches to the processor.
//!
//! - [`run_kafka`]: a consumer in a consumer group; `available-now` reads
//!   every assigned partition up to the high watermark found when it was
//!   assigned, then stops; `interval` runs micro-batches until SIGINT or
//!   SIGTERM, then finishes its batch and checkpoints.
//! - [`run_embedded`]: the built-in producer in process, for a lake with no
//!   Kafka; the same processor after the source.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use chrono::{NaiveDate, TimeZone, Utc};
use lake_table::Lake;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;

use crate::event::DlqReason;
use crate::processor::{BatchReport, Processor, SourceMessage, StreamConfig};
use crate::producer::{EventGenerator, EventMix, ProducerReport};
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
    pub batches: u64,
    pub messages: u64,
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

/// Shared between the poll loop and the rebalance callback (which runs
/// inside `poll`, on the same thread).
struct Shared {
    processor: Processor,
    /// For available-now: the high watermark of each partition when it was
    /// assigned.
    targets: BTreeMap<i32, i64>,
    error: Option<anyhow::Error>,
}

struct LakeContext {
    topic: String,
    shared: Arc<Mutex<Shared>>,
    watermark_timeout: Duration,
}

impl ClientContext for LakeContext {}

impl ConsumerContext for LakeContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let mut shared = match self.shared.lock() {
            Ok(shared) => shared,
            Err(poisoned) => poisoned.into_inner(),
        };
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                // Each partition resumes from its checkpoint, not from Kafka's
                // committed offset: the checkpoint is the source of truth.
                let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                for partition in partitions {
                    let next = match shared.processor.assign(partition) {
                        Ok(next) => next,
                        Err(err) => {
                            shared.error.get_or_insert(err);
                            continue;
                        }
                    };
                    let offset = if next > 0 {
                        Offset::Offset(next)
                    } else {
                        Offset::Beginning
                    };
                    if let Err(err) = tpl.set_partition_offset(&self.topic, partition, offset) {
                        shared
                            .error
                            .get_or_insert(anyhow!("positioning partition {partition}: {err}"));
                    }
                    match consumer.fetch_watermarks(&self.topic, partition, self.watermark_timeout)
                    {
                        Ok((_, high)) => {
                            shared.targets.insert(partition, high);
                        }
                        Err(err) => {
                            shared.error.get_or_insert(anyhow!(
                                "reading the high watermark of partition {partition}: {err}"
                            ));
                        }
                    }
                }
                if let Err(err) = consumer.assign(tpl) {
                    shared
                        .error
                        .get_or_insert(anyhow!("assigning partitions: {err}"));
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                for element in tpl.elements() {
                    shared.processor.revoke(element.partition());
                    shared.targets.remove(&element.partition());
                }
                let _ = consumer.unassign();
            }
            other => {
                shared
                    .error
                    .get_or_insert(anyhow!("consumer group rebalance failed: {other:?}"));
                let _ = consumer.unassign();
            }
        }
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

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Consumes the topic in the consumer group until the trigger says stop
/// (or `stop` is raised), then returns what was done.
/// How long the source may pause before an available-now run processes
/// what it has.
const AVAILABLE_NOW_PAUSE: Duration = Duration::from_millis(300);

/// True when the buffer holds every owned partition's messages up to the
/// high watermark found at start.
fn buffered_to_targets(buffer: &[SourceMessage], shared: &Shared) -> bool {
    let mut next: BTreeMap<i32, i64> = shared
        .processor
        .owned()
        .map(|s| (s.partition, s.next_offset))
        .collect();
    for message in buffer {
        if let Some(n) = next.get_mut(&message.partition) {
            *n = (*n).max(message.offset + 1);
        }
    }
    !next.is_empty()
        && next
            .iter()
            .all(|(p, n)| shared.targets.get(p).is_some_and(|high| n >= high))
}

pub fn run_kafka(
    lake: &Lake,
    settings: &KafkaSettings,
    config: StreamConfig,
    options: &KafkaRunOptions,
    stop: Arc<AtomicBool>,
    on_batch: &mut dyn FnMut(&BatchReport, &Processor),
) -> Result<RunSummary> {
    let shared = Arc::new(Mutex::new(Shared {
        processor: Processor::new(lake, config),
        targets: BTreeMap::new(),
        error: None,
    }));
    let context = LakeContext {
        topic: settings.topic.clone(),
        shared: shared.clone(),
        watermark_timeout: settings.connect_timeout,
    };
    let consumer: BaseConsumer<LakeContext> = settings
        .client_config()
        .create_with_context(context)
        .context("creating the Kafka consumer")?;
    settings.check_topic(&consumer)?;
    consumer
        .subscribe(&[&settings.topic])
        .with_context(|| format!("subscribing to {}", settings.topic))?;

    let mut summary = RunSummary::default();
    let mut buffer: Vec<SourceMessage> = Vec::new();
    let mut batch_started = Instant::now();
    let started = Instant::now();
    let mut ever_assigned = false;
    let mut last_lag_at: Option<Instant> = None;
    let mut last_message_at = Instant::now();
    loop {
        let polled = consumer.poll(Duration::from_millis(100));
        if let Some(err) = lock(&shared).error.take() {
            return Err(err);
        }
        let idle = match polled {
            Some(Ok(message)) => {
                last_message_at = Instant::now();
                buffer.push(SourceMessage {
                    partition: message.partition(),
                    offset: message.offset(),
                    timestamp_ms: message.timestamp().to_millis(),
                    payload: message.payload().map(<[u8]>::to_vec),
                });
                false
            }
            Some(Err(KafkaError::PartitionEOF(_))) => true,
            Some(Err(err)) => {
                tracing::warn!("Kafka: {err}");
                true
            }
            None => true,
        };
        let stopping = stop.load(Ordering::SeqCst);
        let due = match options.trigger {
            // Up to the high watermarks in as few batches as the source
            // allows: a batch is due when full, when every owned partition's
            // messages up to its watermark are in, or after a pause of the
            // source (each batch costs a few commits, whatever its size).
            // Messages the processor holds back (the next date's, those past
            // the end of a replayed batch) count too: the source may have
            // nothing more to say.
            Trigger::AvailableNow => {
                let held = lock(&shared).processor.carried() > 0;
                (!buffer.is_empty() || held)
                    && (buffer.len() >= options.max_batch
                        || (idle
                            && (buffer.is_empty()
                                || last_message_at.elapsed() >= AVAILABLE_NOW_PAUSE
                                || buffered_to_targets(&buffer, &lock(&shared)))))
            }
            Trigger::Interval(every) => {
                batch_started.elapsed() >= every || buffer.len() >= options.max_batch
            }
        };
        if due || stopping {
            let report = {
                let mut shared = lock(&shared);
                let batch_timer = Instant::now();
                let report = shared.processor.process(std::mem::take(&mut buffer))?;
                // Messages left after the batch: a request per partition, at
                // most once a second; saved with the status when it changed.
                if last_lag_at.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                    let lag = lag_behind(&consumer, &settings.topic, &shared.processor);
                    last_lag_at = Some(Instant::now());
                    if lag != shared.processor.status().lag {
                        shared.processor.set_lag(lag);
                        shared.processor.save_status()?;
                    }
                }
                tracing::info!(
                    "micro-batch: {} messages in {:.3} s",
                    report.messages,
                    batch_timer.elapsed().as_secs_f64()
                );
                commit_offsets(&consumer, &settings.topic, &shared.processor);
                on_batch(&report, &shared.processor);
                report
            };
            summary.add(&report);
            batch_started = Instant::now();
        }
        if stopping {
            break;
        }
        if options.trigger == Trigger::AvailableNow {
            let shared = lock(&shared);
            let owned: Vec<(i32, i64)> = shared
                .processor
                .owned()
                .map(|s| (s.partition, s.next_offset))
                .collect();
            ever_assigned |= !owned.is_empty();
            let caught_up = !owned.is_empty()
                && owned
                    .iter()
                    .all(|(p, next)| shared.targets.get(p).is_some_and(|high| next >= high))
                && shared.processor.carried() == 0
                && buffer.is_empty();
            if caught_up {
                break;
            }
            if !ever_assigned && started.elapsed() > options.assignment_timeout {
                bail!(
                    "no partition of {} was assigned to group {} within {} s",
                    settings.topic,
                    settings.group,
                    options.assignment_timeout.as_secs()
                );
            }
        }
    }
    let shared = lock(&shared);
    summary.live = shared.processor.live_totals()?;
    Ok(summary)
}

/// Messages of the owned partitions not yet processed (high watermarks less
/// next offsets); `None` when no watermark could be had.
fn lag_behind(
    consumer: &BaseConsumer<LakeContext>,
    topic: &str,
    processor: &Processor,
) -> Option<i64> {
    let mut behind = 0;
    let mut known = false;
    for state in processor.owned() {
        if let Ok((_, high)) =
            consumer.fetch_watermarks(topic, state.partition, Duration::from_millis(500))
        {
            known = true;
            behind += (high - state.next_offset).max(0);
        }
    }
    known.then_some(behind)
}

/// Commits the checkpointed offsets to Kafka too, for lag monitoring.
fn commit_offsets(consumer: &BaseConsumer<LakeContext>, topic: &str, processor: &Processor) {
    let mut tpl = TopicPartitionList::new();
    for state in processor.owned() {
        if state.next_offset > 0 {
            let _ =
                tpl.add_partition_offset(topic, state.partition, Offset::Offset(state.next_offset));
        }
    }
    if tpl.count() > 0
        && let Err(err) = consumer.commit(&tpl, CommitMode::Async)
    {
        tracing::warn!("committing offsets to Kafka: {err}");
    }
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
        messages.push(SourceMessage {
            partition: message.partition,
            offset: *offset,
            timestamp_ms: Some(now.timestamp_millis()),
            payload: Some(message.payload),
        });
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
    summary.live = processor.live_totals()?;
    Ok((summary, generator.report().clone()))
}
