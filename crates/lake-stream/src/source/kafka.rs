//! Kafka as a source, in a consumer group: one consumer reads both lanes
//! of each owned partition `p` (source partition `p` and internal
//! partition `p`, which the range assignment gives to the same member
//! since both topics have as many partitions), partitions resume from the
//! query's checkpoints (not from Kafka's committed offsets), and an
//! `available-now` run is finished once every owned partition is processed
//! up to the high watermarks of its source found when it was assigned, and
//! of its internal partition found once its forwards were acknowledged.

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

use crate::config::{KafkaRunOptions, KafkaSettings};
use crate::message::{Lane, SourceMessage};
use crate::route::internal_topic;
use crate::source::context::{Lag, SharedContext, Source, SourceContext, lock};

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
    /// The processor the partitions are assigned to and revoked from.
    processor: SharedContext,
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
            let resume = lock(&self.processor).assign(partition)?;
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
                let mut processor = lock(&self.processor);
                for partition in partitions {
                    processor.revoke(partition);
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

/// True when the processor owns partitions (at `positions`) and has, or
/// the buffer holds, every one's messages of `lane` up to its target.
fn reached(
    lane: Lane,
    buffer: &[SourceMessage],
    shared: &Shared,
    positions: &[(Lane, i32, i64)],
) -> bool {
    let mut next: BTreeMap<i32, i64> = positions
        .iter()
        .filter(|(l, _, _)| *l == lane)
        .map(|(_, p, n)| (*p, *n))
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
fn at_targets(buffer: &[SourceMessage], shared: &Shared, positions: &[(Lane, i32, i64)]) -> bool {
    reached(Lane::Source, buffer, shared, positions)
        && (!shared.internal_targets || reached(Lane::Internal, buffer, shared, positions))
}

/// The query's two topics, read by one consumer of its group.
pub struct KafkaSource {
    // Dropped first: its rebalance callback holds `shared`.
    consumer: BaseConsumer<QueryContext>,
    shared: Arc<Mutex<Shared>>,
    processor: SharedContext,
    topics: Topics,
    settings: KafkaSettings,
    assignment_timeout: Duration,
    highs: HighWatermarks,
    started: Instant,
    ever_assigned: bool,
    last_lag_at: Option<Instant>,
}

impl KafkaSource {
    /// Subscribes to the query's topics; partitions come with the group's
    /// assignments, as `processor` takes them over.
    pub fn subscribe(
        processor: SharedContext,
        settings: &KafkaSettings,
        options: &KafkaRunOptions,
    ) -> Result<Self> {
        let topics = Topics {
            source: settings.topic.clone(),
            internal: internal_topic(&settings.topic),
        };
        let shared = Arc::new(Mutex::new(Shared {
            targets: BTreeMap::new(),
            internal_targets: false,
            error: None,
        }));
        let context = QueryContext {
            topics: topics.clone(),
            group: settings.group.clone(),
            shared: shared.clone(),
            processor: processor.clone(),
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
        Ok(KafkaSource {
            consumer,
            shared,
            processor,
            topics,
            settings: settings.clone(),
            assignment_timeout: options.assignment_timeout,
            highs: HighWatermarks::watch(settings)?,
            started: Instant::now(),
            ever_assigned: false,
            last_lag_at: None,
        })
    }

    /// Every source message is processed and its forwards are acknowledged
    /// (each batch flushes them, and the loop once nothing is pending,
    /// [`crate::drive::drive`]): the internal partitions' high watermarks
    /// now are the ends to reach (partitions assigned later take theirs
    /// when assigned).
    fn take_internal_targets(
        &self,
        shared: &mut Shared,
        positions: &[(Lane, i32, i64)],
    ) -> Result<()> {
        for &(lane, partition, _) in positions {
            if lane != Lane::Internal {
                continue;
            }
            let (_, high) = self
                .consumer
                .fetch_watermarks(
                    &self.topics.internal,
                    partition,
                    self.settings.connect_timeout,
                )
                .with_context(|| {
                    format!(
                        "reading the high watermark of partition {partition} of {}",
                        self.topics.internal
                    )
                })?;
            shared.targets.insert((Lane::Internal, partition), high);
        }
        shared.internal_targets = true;
        Ok(())
    }
}

impl Source for KafkaSource {
    fn name(&self) -> &str {
        &self.topics.source
    }

    fn poll(&mut self, wait: Duration) -> Result<Option<SourceMessage>> {
        let polled = self.consumer.poll(wait);
        if let Some(err) = lock(&self.shared).error.take() {
            return Err(err);
        }
        match polled {
            Some(Ok(message)) => {
                let timestamp_ms = message.timestamp().to_millis();
                Ok(Some(match self.topics.lane(message.topic()) {
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
                }))
            }
            Some(Err(KafkaError::PartitionEOF(_))) | None => Ok(None),
            Some(Err(err)) => {
                tracing::warn!("Kafka ({}): {err}", self.topics.source);
                Ok(None)
            }
        }
    }

    fn at_end(&mut self, buffer: &[SourceMessage]) -> bool {
        let shared = lock(&self.shared);
        at_targets(buffer, &shared, &lock(&self.processor).positions())
    }

    fn finished(&mut self, buffer: &[SourceMessage], carried: usize) -> Result<bool> {
        let shared = self.shared.clone();
        let mut shared = lock(&shared);
        let positions = lock(&self.processor).positions();
        let settled = buffer.is_empty() && carried == 0;
        if !shared.internal_targets && settled && reached(Lane::Source, buffer, &shared, &positions)
        {
            self.take_internal_targets(&mut shared, &positions)?;
        }
        self.ever_assigned = self.ever_assigned || !positions.is_empty();
        if shared.internal_targets && settled && at_targets(buffer, &shared, &positions) {
            return Ok(true);
        }
        if !self.ever_assigned && self.started.elapsed() > self.assignment_timeout {
            bail!(
                "no partition of {} was assigned to group {} within {} s",
                self.topics.source,
                self.settings.group,
                self.assignment_timeout.as_secs()
            );
        }
        Ok(false)
    }

    /// Commits the checkpointed offsets to Kafka too (for lag monitoring),
    /// and reads the messages left behind, at most once a second, from
    /// the high watermarks another thread asks the brokers for (a request
    /// per partition that takes a while on some brokers: never on a batch's
    /// path).
    fn after_batch(&mut self) -> Result<Option<Lag>> {
        let positions = lane_positions(&self.topics, &*lock(&self.processor));
        let mut lag = None;
        if self
            .last_lag_at
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(1))
        {
            self.highs
                .watch_partitions(positions.iter().map(|(t, p, _)| (t.clone(), *p)).collect());
            self.last_lag_at = Some(Instant::now());
            lag = Some(self.highs.lag_behind(&positions));
        }
        commit_offsets(&self.consumer, &positions);
        Ok(lag)
    }
}

/// The next offset of each lane of each owned partition, by topic.
fn lane_positions(topics: &Topics, processor: &dyn SourceContext) -> Vec<(String, i32, i64)> {
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
