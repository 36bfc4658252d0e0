//! The consumer loop that feeds the aggregating stage from Kafka, in a
//! consumer group: one consumer reads both lanes of each owned partition
//! `p` (source partition `p` and internal partition `p`, which the range
//! assignment gives to the same member since both topics have as many
//! partitions), partitions resume from the query's checkpoints (not from
//! Kafka's committed offsets), micro-batches run on the trigger, and
//! `available-now` stops once every owned partition is processed up to
//! the high watermarks of its source found when it was assigned, and of
//! its internal partition found once its forwards were acknowledged.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;

use crate::processor::{BatchReport, Lane, Processor, SourceMessage};
use crate::route::internal_topic;
use crate::run::{KafkaRunOptions, KafkaSettings, Trigger};

/// The two topics a query reads.
#[derive(Debug, Clone)]
struct Topics {
    source: String,
    internal: String,
}

impl Topics {
    fn of(&self, lane: Lane) -> &str {
        match lane {
            Lane::Source => &self.source,
            Lane::Internal => &self.internal,
        }
    }

    fn lane(&self, topic: &str) -> Lane {
        if topic == self.source {
            Lane::Source
        } else {
            Lane::Internal
        }
    }
}

/// Shared between the poll loop and the rebalance callback (which runs
/// inside `poll`, on the same thread).
struct Shared {
    processor: Processor,
    /// For available-now: the offset each lane of each owned partition must
    /// reach (the high watermark of its source when it was assigned; of its
    /// internal partition once the internal targets are taken).
    targets: BTreeMap<(Lane, i32), i64>,
    /// For available-now: the internal lanes' targets are taken (every
    /// source message is processed and its forwards acknowledged).
    internal_targets: bool,
    error: Option<anyhow::Error>,
}

struct QueryContext {
    topics: Topics,
    group: String,
    shared: Arc<Mutex<Shared>>,
    watermark_timeout: Duration,
}

impl ClientContext for QueryContext {}

impl QueryContext {
    /// Takes over the partitions of an assignment, which must hold the same
    /// partitions of both topics; positions each lane at its checkpoint.
    fn assign(
        &self,
        consumer: &BaseConsumer<Self>,
        shared: &mut Shared,
        tpl: &mut TopicPartitionList,
    ) -> Result<()> {
        let mut lanes: BTreeMap<Lane, BTreeSet<i32>> = BTreeMap::new();
        for element in tpl.elements() {
            lanes
                .entry(self.topics.lane(element.topic()))
                .or_default()
                .insert(element.partition());
        }
        let source = lanes.remove(&Lane::Source).unwrap_or_default();
        let internal = lanes.remove(&Lane::Internal).unwrap_or_default();
        if source != internal {
            bail!(
                "group {} assigned partitions {source:?} of {} and {internal:?} of {}: a process \
                 must own the same partitions of both (co-partitioned); every process of the group \
                 must run this lake-stream, whose consumers use the range assignment",
                self.group,
                self.topics.source,
                self.topics.internal
            );
        }
        for partition in source {
            let resume = shared.processor.assign(partition)?;
            for (lane, next) in [
                (Lane::Source, resume.source),
                (Lane::Internal, resume.internal),
            ] {
                let topic = self.topics.of(lane);
                let offset = if next > 0 {
                    Offset::Offset(next)
                } else {
                    Offset::Beginning
                };
                tpl.set_partition_offset(topic, partition, offset)
                    .map_err(|err| {
                        anyhow!("positioning partition {partition} of {topic}: {err}")
                    })?;
                if lane == Lane::Source || shared.internal_targets {
                    let (_, high) = consumer
                        .fetch_watermarks(topic, partition, self.watermark_timeout)
                        .with_context(|| {
                            format!(
                                "reading the high watermark of partition {partition} of {topic}"
                            )
                        })?;
                    shared.targets.insert((lane, partition), high);
                }
            }
        }
        consumer
            .assign(tpl)
            .map_err(|err| anyhow!("assigning partitions of {}: {err}", self.topics.source))
    }
}

impl ConsumerContext for QueryContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let mut shared = lock(&self.shared);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                // Each partition resumes from its checkpoint, not from Kafka's
                // committed offset: the checkpoint is the source of truth.
                if let Err(err) = self.assign(consumer, &mut shared, tpl) {
                    shared.error.get_or_insert(err);
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let partitions: BTreeSet<i32> =
                    tpl.elements().iter().map(|e| e.partition()).collect();
                for partition in partitions {
                    shared.processor.revoke(partition);
                    shared.targets.remove(&(Lane::Source, partition));
                    shared.targets.remove(&(Lane::Internal, partition));
                }
                let _ = consumer.unassign();
            }
            other => {
                shared.error.get_or_insert(anyhow!(
                    "consumer group rebalance on {} failed: {other:?}",
                    self.topics.source
                ));
                let _ = consumer.unassign();
            }
        }
    }
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How long the source may pause before an available-now run processes
/// what it has.
const AVAILABLE_NOW_PAUSE: Duration = Duration::from_millis(300);

/// True when the processor owns partitions and has, or the buffer holds,
/// every one's messages of `lane` up to its target.
fn reached(lane: Lane, buffer: &[SourceMessage], shared: &Shared) -> bool {
    let mut next: BTreeMap<i32, i64> = shared
        .processor
        .positions()
        .into_iter()
        .filter(|(l, _, _)| *l == lane)
        .map(|(_, p, n)| (p, n))
        .collect();
    for message in buffer.iter().filter(|m| m.lane == lane) {
        if let Some(n) = next.get_mut(&message.partition) {
            *n = (*n).max(message.offset + 1);
        }
    }
    !next.is_empty()
        && next.iter().all(|(p, n)| {
            shared
                .targets
                .get(&(lane, *p))
                .is_some_and(|high| n >= high)
        })
}

/// Every lane that has targets is reached.
fn at_targets(buffer: &[SourceMessage], shared: &Shared) -> bool {
    reached(Lane::Source, buffer, shared)
        && (!shared.internal_targets || reached(Lane::Internal, buffer, shared))
}

/// Feeds `processor` from the query's topics until the trigger says stop
/// (or `stop()` says so), then returns it and the reports of its batches.
pub fn consume(
    processor: Processor,
    settings: &KafkaSettings,
    options: &KafkaRunOptions,
    stop: &dyn Fn() -> bool,
    on_batch: &mut dyn FnMut(&BatchReport, &Processor),
) -> Result<(Processor, Vec<BatchReport>)> {
    let topics = Topics {
        source: settings.topic.clone(),
        internal: internal_topic(&settings.topic),
    };
    let shared = Arc::new(Mutex::new(Shared {
        processor,
        targets: BTreeMap::new(),
        internal_targets: false,
        error: None,
    }));
    let context = QueryContext {
        topics: topics.clone(),
        group: settings.group.clone(),
        shared: shared.clone(),
        watermark_timeout: settings.connect_timeout,
    };
    let mut config = settings.client_config();
    // Range gives a member the same partitions of both topics (they have
    // as many partitions, and every member subscribes to both).
    config.set("partition.assignment.strategy", "range");
    let consumer: BaseConsumer<QueryContext> = config
        .create_with_context(context)
        .context("creating the Kafka consumer")?;
    consumer
        .subscribe(&[&topics.source, &topics.internal])
        .with_context(|| format!("subscribing to {} and {}", topics.source, topics.internal))?;

    let highs = HighWatermarks::watch(settings)?;
    let mut reports = Vec::new();
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
                let mut shared = lock(&shared);
                let timestamp_ms = message.timestamp().to_millis();
                let mut message = match topics.lane(message.topic()) {
                    Lane::Source => SourceMessage::direct(
                        message.partition(),
                        message.offset(),
                        timestamp_ms,
                        message.payload().map(<[u8]>::to_vec),
                    ),
                    Lane::Internal => SourceMessage::routed(
                        message.partition(),
                        message.offset(),
                        timestamp_ms,
                        message.payload(),
                    ),
                };
                shared.processor.accept(&mut message)?;
                buffer.push(message);
                false
            }
            Some(Err(KafkaError::PartitionEOF(_))) => true,
            Some(Err(err)) => {
                tracing::warn!("Kafka ({}): {err}", topics.source);
                true
            }
            None => true,
        };
        let stopping = stop();
        let due = match options.trigger {
            // Up to the high watermarks in as few batches as the source
            // allows: a batch is due when full, when every owned partition's
            // messages up to its targets are in, or after a pause of the
            // source (each batch costs a few commits, whatever its size).
            // Messages the processor holds back (the next date's, those
            // past the end of a replayed batch) count too: the source may
            // have nothing more to say.
            Trigger::AvailableNow => {
                let held = lock(&shared).processor.carried() > 0;
                (!buffer.is_empty() || held)
                    && (buffer.len() >= options.max_batch
                        || (idle
                            && (buffer.is_empty()
                                || last_message_at.elapsed() >= AVAILABLE_NOW_PAUSE
                                || at_targets(&buffer, &lock(&shared)))))
            }
            // A batch every interval from the start of the previous one (or
            // at once when that one took longer), as Spark's processing-time
            // trigger: a batch's duration does not add to the wait.
            Trigger::Interval(every) => {
                batch_started.elapsed() >= every || buffer.len() >= options.max_batch
            }
        };
        if due || stopping {
            let mut shared = lock(&shared);
            let batch_timer = Instant::now();
            batch_started = batch_timer;
            let report = shared.processor.process(std::mem::take(&mut buffer))?;
            // Messages left after the batch, at most once a second, from
            // the high watermarks another thread asks the brokers for (a
            // request per partition that takes a while on some brokers:
            // never on a batch's path).
            let positions = lane_positions(&topics, &shared.processor);
            if last_lag_at.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                highs.watch_partitions(positions.iter().map(|(t, p, _)| (t.clone(), *p)).collect());
                last_lag_at = Some(Instant::now());
                let lag = highs.lag_behind(&positions);
                if lag != shared.processor.status().lag {
                    shared.processor.set_lag(lag);
                    shared.processor.save_status()?;
                }
            }
            if report.messages + report.forwarded > 0 {
                tracing::info!(
                    "{}: micro-batch of {} messages ({} forwarded) in {:.3} s",
                    topics.source,
                    report.messages,
                    report.forwarded,
                    batch_timer.elapsed().as_secs_f64()
                );
            }
            commit_offsets(&consumer, &positions);
            on_batch(&report, &shared.processor);
            reports.push(report);
        }
        if stopping {
            break;
        }
        if options.trigger == Trigger::AvailableNow {
            let mut shared = lock(&shared);
            let settled = buffer.is_empty() && shared.processor.carried() == 0;
            if !shared.internal_targets && settled && reached(Lane::Source, &buffer, &shared) {
                // Every source message is processed and its forwards are
                // acknowledged (each batch flushes them): the internal
                // partitions' high watermarks now are the ends to reach
                // (partitions assigned later take theirs when assigned).
                shared.processor.flush_forwards()?;
                for (lane, partition, _) in shared.processor.positions() {
                    if lane != Lane::Internal {
                        continue;
                    }
                    let (_, high) = consumer
                        .fetch_watermarks(&topics.internal, partition, settings.connect_timeout)
                        .with_context(|| {
                            format!(
                                "reading the high watermark of partition {partition} of {}",
                                topics.internal
                            )
                        })?;
                    shared.targets.insert((Lane::Internal, partition), high);
                }
                shared.internal_targets = true;
            }
            ever_assigned = ever_assigned || !shared.processor.positions().is_empty();
            if shared.internal_targets && settled && at_targets(&buffer, &shared) {
                break;
            }
            if !ever_assigned && started.elapsed() > options.assignment_timeout {
                bail!(
                    "no partition of {} was assigned to group {} within {} s",
                    topics.source,
                    settings.group,
                    options.assignment_timeout.as_secs()
                );
            }
        }
    }
    drop(consumer);
    let shared = Arc::try_unwrap(shared)
        .map_err(|_| {
            anyhow!(
                "the consumer of {} still holds its processor",
                topics.source
            )
        })?
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    Ok((shared.processor, reports))
}

/// The next offset of each lane of each owned partition, by topic.
fn lane_positions(topics: &Topics, processor: &Processor) -> Vec<(String, i32, i64)> {
    processor
        .positions()
        .into_iter()
        .map(|(lane, partition, next)| (topics.of(lane).to_string(), partition, next))
        .collect()
}

/// The high watermarks of the owned partitions of both topics, asked for
/// once a second by a thread of their own.
struct HighWatermarks {
    partitions: Arc<Mutex<Vec<(String, i32)>>>,
    highs: Arc<Mutex<BTreeMap<(String, i32), i64>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl HighWatermarks {
    fn watch(settings: &KafkaSettings) -> Result<Self> {
        let client: BaseConsumer = settings
            .client_config()
            .create()
            .context("creating the Kafka client that reads the high watermarks")?;
        let watcher = HighWatermarks {
            partitions: Arc::default(),
            highs: Arc::default(),
            stop: Arc::default(),
        };
        let (partitions, highs, stop) = (
            watcher.partitions.clone(),
            watcher.highs.clone(),
            watcher.stop.clone(),
        );
        std::thread::Builder::new()
            .name("high-watermarks".into())
            .spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let wanted = partitions.lock().map(|p| p.clone()).unwrap_or_default();
                    for (topic, partition) in wanted {
                        if let Ok((_, high)) =
                            client.fetch_watermarks(&topic, partition, Duration::from_secs(2))
                            && let Ok(mut highs) = highs.lock()
                        {
                            highs.insert((topic, partition), high);
                        }
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            })
            .context("starting the high-watermark thread")?;
        Ok(watcher)
    }

    fn watch_partitions(&self, wanted: Vec<(String, i32)>) {
        if let Ok(mut partitions) = self.partitions.lock() {
            *partitions = wanted;
        }
    }

    /// Messages of the owned partitions not yet processed (high watermarks
    /// less next offsets); `None` when no watermark is known yet.
    fn lag_behind(&self, positions: &[(String, i32, i64)]) -> Option<i64> {
        let highs = self.highs.lock().ok()?;
        let mut behind = 0;
        let mut known = false;
        for (topic, partition, next) in positions {
            if let Some(high) = highs.get(&(topic.clone(), *partition)) {
                known = true;
                behind += (high - next).max(0);
            }
        }
        known.then_some(behind)
    }
}

impl Drop for HighWatermarks {
    fn drop(&mut self) {
        // The thread ends after its current round.
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Commits the checkpointed offsets to Kafka too, for lag monitoring.
fn commit_offsets<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    positions: &[(String, i32, i64)],
) {
    let mut tpl = TopicPartitionList::new();
    for (topic, partition, next) in positions {
        if *next > 0 {
            let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*next));
        }
    }
    if tpl.count() > 0
        && let Err(err) = consumer.commit(&tpl, CommitMode::Async)
    {
        tracing::warn!("committing offsets to Kafka: {err}");
    }
}
