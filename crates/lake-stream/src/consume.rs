//! The consumer loop that feeds one stage of a query from a Kafka topic in
//! a consumer group: partitions resume from the stage's checkpoints (not
//! from Kafka's committed offsets), micro-batches run on the trigger, and
//! `available-now` stops once every assigned partition is processed up to
//! the high watermark found when it was assigned.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;

use crate::processor::{BatchReport, Processor, SourceMessage};
use crate::run::{KafkaRunOptions, KafkaSettings, Trigger};

/// What the consumer loop needs of a stage.
pub trait Stage: Send + 'static {
    /// Takes a partition over; returns the offset to read from.
    fn assign(&mut self, partition: i32) -> Result<i64>;
    fn revoke(&mut self, partition: i32);
    /// The owned partitions and their next offsets.
    fn positions(&self) -> Vec<(i32, i64)>;
    /// Messages held back for a later batch.
    fn carried(&self) -> usize;
    fn process(&mut self, messages: Vec<SourceMessage>) -> Result<BatchReport>;
    /// Sees a message as soon as it is polled, before it is buffered for
    /// the next micro-batch.
    fn accept(&mut self, _message: &SourceMessage) -> Result<()> {
        Ok(())
    }
    /// The stage's view of one message of its topic.
    fn message(
        &self,
        partition: i32,
        offset: i64,
        timestamp_ms: Option<i64>,
        value: Option<&[u8]>,
    ) -> SourceMessage;
    /// The messages left behind the high watermarks, at most once a second.
    fn record_lag(&mut self, _lag: Option<i64>) -> Result<()> {
        Ok(())
    }
}

impl Stage for Processor {
    fn assign(&mut self, partition: i32) -> Result<i64> {
        Processor::assign(self, partition)
    }
    fn revoke(&mut self, partition: i32) {
        Processor::revoke(self, partition)
    }
    fn positions(&self) -> Vec<(i32, i64)> {
        self.owned().map(|s| (s.partition, s.next_offset)).collect()
    }
    fn carried(&self) -> usize {
        Processor::carried(self)
    }
    fn process(&mut self, messages: Vec<SourceMessage>) -> Result<BatchReport> {
        Processor::process(self, messages)
    }
    fn message(
        &self,
        partition: i32,
        offset: i64,
        timestamp_ms: Option<i64>,
        value: Option<&[u8]>,
    ) -> SourceMessage {
        SourceMessage::routed(partition, offset, timestamp_ms, value)
    }
    fn record_lag(&mut self, lag: Option<i64>) -> Result<()> {
        if lag != self.status().lag {
            self.set_lag(lag);
            self.save_status()?;
        }
        Ok(())
    }
}

/// Shared between the poll loop and the rebalance callback (which runs
/// inside `poll`, on the same thread).
struct Shared<S> {
    stage: S,
    /// For available-now: the high watermark of each partition when it was
    /// assigned.
    targets: BTreeMap<i32, i64>,
    error: Option<anyhow::Error>,
}

struct StageContext<S> {
    topic: String,
    shared: Arc<Mutex<Shared<S>>>,
    watermark_timeout: Duration,
}

impl<S: Stage> ClientContext for StageContext<S> {}

impl<S: Stage> ConsumerContext for StageContext<S> {
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
                let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                for partition in partitions {
                    let next = match shared.stage.assign(partition) {
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
                        shared.error.get_or_insert(anyhow!(
                            "positioning partition {partition} of {}: {err}",
                            self.topic
                        ));
                    }
                    match consumer.fetch_watermarks(&self.topic, partition, self.watermark_timeout)
                    {
                        Ok((_, high)) => {
                            shared.targets.insert(partition, high);
                        }
                        Err(err) => {
                            shared.error.get_or_insert(anyhow!(
                                "reading the high watermark of partition {partition} of {}: {err}",
                                self.topic
                            ));
                        }
                    }
                }
                if let Err(err) = consumer.assign(tpl) {
                    shared
                        .error
                        .get_or_insert(anyhow!("assigning partitions of {}: {err}", self.topic));
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                for element in tpl.elements() {
                    shared.stage.revoke(element.partition());
                    shared.targets.remove(&element.partition());
                }
                let _ = consumer.unassign();
            }
            other => {
                shared.error.get_or_insert(anyhow!(
                    "consumer group rebalance on {} failed: {other:?}",
                    self.topic
                ));
                let _ = consumer.unassign();
            }
        }
    }
}

fn lock<S>(shared: &Mutex<Shared<S>>) -> std::sync::MutexGuard<'_, Shared<S>> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How long the source may pause before an available-now run processes
/// what it has.
const AVAILABLE_NOW_PAUSE: Duration = Duration::from_millis(300);

/// True when the stage owns partitions and it has, or the buffer holds,
/// every one's messages up to its target high watermark.
fn buffered_to_targets<S: Stage>(buffer: &[SourceMessage], shared: &Shared<S>) -> bool {
    let mut next: BTreeMap<i32, i64> = shared.stage.positions().into_iter().collect();
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

/// Where one stage reads.
pub struct Subscription<'a> {
    pub settings: &'a KafkaSettings,
    pub topic: String,
    pub group: String,
    /// For available-now: the topic is complete only once this says so
    /// (the internal topic, while the router still writes it); the high
    /// watermarks to reach are taken then. `None`: complete from the start.
    pub complete: Option<&'a (dyn Fn() -> bool + Sync)>,
}

/// Feeds `stage` from its topic until the trigger says stop (or `stop()`
/// says so), then returns the stage and the reports of its batches summed.
pub fn consume<S: Stage>(
    stage: S,
    subscription: &Subscription<'_>,
    options: &KafkaRunOptions,
    stop: &dyn Fn() -> bool,
    on_batch: &mut dyn FnMut(&BatchReport, &S),
) -> Result<(S, Vec<BatchReport>)> {
    let Subscription {
        settings,
        topic,
        group,
        complete,
    } = subscription;
    let mut targets_final = complete.is_none();
    let shared = Arc::new(Mutex::new(Shared {
        stage,
        targets: BTreeMap::new(),
        error: None,
    }));
    let context = StageContext {
        topic: topic.clone(),
        shared: shared.clone(),
        watermark_timeout: settings.connect_timeout,
    };
    let mut config = settings.client_config();
    config.set("group.id", group);
    let consumer: BaseConsumer<StageContext<S>> = config
        .create_with_context(context)
        .context("creating the Kafka consumer")?;
    consumer
        .subscribe(&[topic])
        .with_context(|| format!("subscribing to {topic}"))?;

    let highs = HighWatermarks::watch(settings, topic)?;
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
                let message = shared.stage.message(
                    message.partition(),
                    message.offset(),
                    message.timestamp().to_millis(),
                    message.payload(),
                );
                shared.stage.accept(&message)?;
                buffer.push(message);
                false
            }
            Some(Err(KafkaError::PartitionEOF(_))) => true,
            Some(Err(err)) => {
                tracing::warn!("Kafka ({topic}): {err}");
                true
            }
            None => true,
        };
        let stopping = stop();
        let due = match options.trigger {
            // Up to the high watermarks in as few batches as the source
            // allows: a batch is due when full, when every owned partition's
            // messages up to its watermark are in, or after a pause of the
            // source (each batch costs a few commits, whatever its size).
            // Messages the stage holds back (the next date's, those past
            // the end of a replayed batch) count too: the source may have
            // nothing more to say.
            Trigger::AvailableNow => {
                let held = lock(&shared).stage.carried() > 0;
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
            let mut shared = lock(&shared);
            let batch_timer = Instant::now();
            let report = shared.stage.process(std::mem::take(&mut buffer))?;
            // Messages left after the batch, at most once a second, from
            // the high watermarks another thread asks the brokers for (a
            // request per partition that takes a while on some brokers:
            // never on a batch's path).
            if last_lag_at.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                let positions = shared.stage.positions();
                highs.watch_partitions(positions.iter().map(|(p, _)| *p).collect());
                last_lag_at = Some(Instant::now());
                shared.stage.record_lag(highs.lag_behind(&positions))?;
            }
            if report.messages > 0 {
                tracing::info!(
                    "{topic}: micro-batch of {} messages in {:.3} s",
                    report.messages,
                    batch_timer.elapsed().as_secs_f64()
                );
            }
            commit_offsets(&consumer, topic, &shared.stage.positions());
            on_batch(&report, &shared.stage);
            reports.push(report);
            batch_started = Instant::now();
        }
        if stopping {
            break;
        }
        if options.trigger == Trigger::AvailableNow {
            let mut shared = lock(&shared);
            if !targets_final && complete.is_some_and(|complete| complete()) {
                // The topic is complete: its high watermarks now are the
                // ends to reach (partitions assigned later take theirs when
                // assigned).
                for (partition, _) in shared.stage.positions() {
                    let (_, high) = consumer
                        .fetch_watermarks(topic, partition, settings.connect_timeout)
                        .with_context(|| {
                            format!(
                                "reading the high watermark of partition {partition} of {topic}"
                            )
                        })?;
                    shared.targets.insert(partition, high);
                }
                targets_final = true;
            }
            ever_assigned |= !shared.stage.positions().is_empty();
            let caught_up = targets_final
                && buffer.is_empty()
                && shared.stage.carried() == 0
                && buffered_to_targets(&buffer, &shared);
            if caught_up {
                break;
            }
            if !ever_assigned && started.elapsed() > options.assignment_timeout {
                bail!(
                    "no partition of {topic} was assigned to group {group} within {} s",
                    options.assignment_timeout.as_secs()
                );
            }
        }
    }
    drop(consumer);
    let shared = Arc::try_unwrap(shared)
        .map_err(|_| anyhow!("the consumer of {topic} still holds its stage"))?
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    Ok((shared.stage, reports))
}

/// The high watermarks of a topic's partitions, asked for once a second by
/// a thread of their own.
struct HighWatermarks {
    partitions: Arc<Mutex<Vec<i32>>>,
    highs: Arc<Mutex<BTreeMap<i32, i64>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl HighWatermarks {
    fn watch(settings: &KafkaSettings, topic: &str) -> Result<Self> {
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
        let topic = topic.to_string();
        std::thread::Builder::new()
            .name("high-watermarks".into())
            .spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let wanted = partitions.lock().map(|p| p.clone()).unwrap_or_default();
                    for partition in wanted {
                        if let Ok((_, high)) =
                            client.fetch_watermarks(&topic, partition, Duration::from_secs(2))
                            && let Ok(mut highs) = highs.lock()
                        {
                            highs.insert(partition, high);
                        }
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            })
            .context("starting the high-watermark thread")?;
        Ok(watcher)
    }

    fn watch_partitions(&self, wanted: Vec<i32>) {
        if let Ok(mut partitions) = self.partitions.lock() {
            *partitions = wanted;
        }
    }

    /// Messages of the owned partitions not yet processed (high watermarks
    /// less next offsets); `None` when no watermark is known yet.
    fn lag_behind(&self, positions: &[(i32, i64)]) -> Option<i64> {
        let highs = self.highs.lock().ok()?;
        let mut behind = 0;
        let mut known = false;
        for (partition, next) in positions {
            if let Some(high) = highs.get(partition) {
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
    topic: &str,
    positions: &[(i32, i64)],
) {
    let mut tpl = TopicPartitionList::new();
    for (partition, next) in positions {
        if *next > 0 {
            let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*next));
        }
    }
    if tpl.count() > 0
        && let Err(err) = consumer.commit(&tpl, CommitMode::Async)
    {
        tracing::warn!("committing offsets of {topic} to Kafka: {err}");
    }
}
