//! The micro-batch processor: applies messages to partition states, writes
//! the outputs as Delta commits carrying the stream's transactions, then
//! checkpoints.
//!
//! A partition `p` reads two lanes: source partition `p`, and internal
//! partition `p`, where other partitions forward the copies whose event id
//! is at home here ([`crate::route`]). One micro-batch, over the partitions
//! it has messages for:
//! 1. [`Processor::plan`] takes each partition's messages of each lane from
//!    the lane's next offset, stopping at the first message of another
//!    date (a batch never spans two dates) or, for a batch being replayed,
//!    at the ends it recorded; each partition's batch gets its clock: the
//!    processing time taken once for the micro-batch (the source's clock,
//!    [`crate::source::Source::processing_time`]) and the allowed clock
//!    skew, or, for a batch being replayed, the clock it recorded;
//! 2. [`Processor::apply`] runs them through the partitions' states, the
//!    source lane in offset order, then the internal lane in offset order;
//!    a source message whose event id is at home elsewhere is forwarded
//!    there (as soon as it is polled, [`Processor::accept`]) and skipped;
//!    an event more than the skew ahead of the batch's processing time is
//!    rejected as from the future;
//!    batch `b` of partition `p` is the state's `batches + 1`;
//! 3. [`Processor::save_closed_windows`] adds the windows the batch closed
//!    (they left the states) to each partition's closed windows of the
//!    processing date ([`crate::closed`]); a replay closes the same
//!    windows with the same totals, written again as they are;
//! 4. the live views are merged over every partition's latest state (and
//!    the windows closed on the processing date);
//! 5. the outputs are committed, each on a thread of its own
//!    ([`commit_all`]): the counted events appended to
//!    `bronze/ventes_temps_reel` and the rejected ones to
//!    `bronze/_dlq/ventes_temps_reel` (one commit per table and date, with
//!    a Delta `txn` action, application `{query}/partition-{p}` and version
//!    `b`, per partition, and each partition's offsets of both lanes and
//!    its clock in the commit info), and the processing date of
//!    `gold/live_sales_by_country` and `gold/live_sales_by_minute`
//!    replaced;
//! 6. [`Processor::flush_forwards`] waits until the broker acknowledged
//!    every message forwarded; then [`Processor::checkpoint`] writes each
//!    partition's state (one put).
//!
//! A crash before 6 leaves batch `b` committed to some outputs and not
//! checkpointed. On assignment the processor finds `b` in the outputs'
//! transactions ([`Processor::assign`]), reads the batch's last offsets
//! and its clock from that commit, and replays exactly the same messages
//! against the same bound on the future (not the replay's own clock, which
//! could accept an event the first attempt refused): the state comes out
//! as it was, the outputs holding `b` already are not written again
//! (the live views are replaced by the same totals), and the copies it
//! forwards again are skipped at their home.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::stream_status::StreamStatus;
use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, NaiveDate, Utc};
use lake_table::history::find_transaction;
use lake_table::{AppendOutcome, DateWriter, Lake, Layer, Table, TableRef, Txn};
use polars::prelude::*;
use serde_json::{Value, json};

use crate::checkpoint::CheckpointStore;
use crate::closed::{ClosedWindowStore, Windows};
use crate::event::{DlqReason, Rejection, SalesEvent};
use crate::route::{Envelope, Forwarder, partition_of_event, routing_id};
use crate::state::{Outcome, PartitionState, TimeBounds};
use crate::views::{LiveTotals, merge_with_closed};

/// Bronze table of valid events.
pub const EVENTS_TABLE: &str = "ventes_temps_reel";
/// DLQ table, in the bronze root.
pub const DLQ_TABLE: &str = "_dlq/ventes_temps_reel";
/// Gold live views.
pub const LIVE_BY_COUNTRY: &str = "live_sales_by_country";
pub const LIVE_BY_MINUTE: &str = "live_sales_by_minute";

/// Key of the stream's entry in a commit's info.
const COMMIT_INFO_KEY: &str = "lakeStream";
/// Micro-batches between two compactions of the dates still written (at
/// a 200 ms interval, one every 20 s).
const OPEN_DATE_COMPACTION_BATCHES: u64 = 100;
/// Commits searched back for a batch committed before a crash.
const REPLAY_SEARCH: usize = 10_000;
/// The allowed clock skew when none is given (data contract, section 6):
/// events more than this ahead of the processing time are from the future.
pub const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// The topic a partition's message was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lane {
    /// The source topic.
    Source,
    /// The internal topic: copies forwarded from other source partitions.
    Internal,
}

/// One message of the query's input.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceMessage {
    pub lane: Lane,
    pub partition: i32,
    pub offset: i64,
    /// Message timestamp (milliseconds since the epoch), when the source has one.
    pub timestamp_ms: Option<i64>,
    pub payload: Option<Vec<u8>>,
    /// The source topic's partition and offset the message came from: its
    /// own for a message read from the source, the envelope's for one
    /// forwarded.
    pub origin: (i32, i64),
    /// For a source message: forwarded to its home partition (not
    /// aggregated here), once decided.
    pub away: Option<bool>,
}

impl SourceMessage {
    /// A message read straight from its source partition.
    pub fn direct(
        partition: i32,
        offset: i64,
        timestamp_ms: Option<i64>,
        payload: Option<Vec<u8>>,
    ) -> Self {
        SourceMessage {
            lane: Lane::Source,
            partition,
            offset,
            timestamp_ms,
            payload,
            origin: (partition, offset),
            away: None,
        }
    }

    /// A message of the internal topic: the forwarder's envelope unwrapped
    /// (a value that is not an envelope is taken as it is).
    pub fn routed(
        partition: i32,
        offset: i64,
        timestamp_ms: Option<i64>,
        value: Option<&[u8]>,
    ) -> Self {
        match value.and_then(Envelope::decode) {
            Some(envelope) => SourceMessage {
                lane: Lane::Internal,
                partition,
                offset,
                timestamp_ms,
                payload: envelope.payload,
                origin: (envelope.partition, envelope.offset),
                away: Some(false),
            },
            None => SourceMessage {
                lane: Lane::Internal,
                away: Some(false),
                ..SourceMessage::direct(partition, offset, timestamp_ms, value.map(<[u8]>::to_vec))
            },
        }
    }

    /// The date partitioning the message's outputs.
    fn date(&self, fallback: NaiveDate) -> NaiveDate {
        self.timestamp_ms
            .and_then(DateTime::from_timestamp_millis)
            .map(|t| t.date_naive())
            .unwrap_or(fallback)
    }
}

/// How a stream query runs.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Names the query's checkpoints (`checkpoints/{query}/`) and its
    /// transactions in the outputs' logs.
    pub query: String,
    pub topic: String,
    /// `_source` of the bronze events, e.g. `kafka://host:9092/ventes-temps-reel`.
    pub source: String,
    /// Events older than the latest event time minus this are late.
    pub allowed_lateness: Duration,
    /// Recorded in the commits of this process.
    pub run_id: String,
}

impl StreamConfig {
    fn lateness_micros(&self) -> i64 {
        self.allowed_lateness.as_micros() as i64
    }

    /// The application id of a source partition in the outputs' `txn` actions.
    pub fn app_id(&self, partition: i32) -> String {
        format!("{}/partition-{partition}", self.query)
    }
}

/// What one micro-batch did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchReport {
    pub messages: u64,
    pub counted: u64,
    pub rejected: BTreeMap<DlqReason, u64>,
    /// Copies forwarded again after a crash, skipped.
    pub replayed: u64,
    /// Source messages forwarded to their home partition.
    pub forwarded: u64,
    /// Messages held back for the next batch (another date, or past the
    /// end of a batch being replayed).
    pub carried: u64,
}

/// The last offsets of a batch in its partition's two lanes (`None`: the
/// batch took no message of that lane).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchEnds {
    source: Option<i64>,
    internal: Option<i64>,
}

/// What a batch judges future events by: its processing time, taken once
/// for the micro-batch (not per message, and not the time a replay runs),
/// and the allowed clock skew, both recorded in the batch's commits so
/// that a replay decides exactly as the first attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchClock {
    /// Microseconds since the epoch.
    processing_time: i64,
    /// Microseconds.
    max_clock_skew: i64,
}

impl BatchClock {
    /// The bounds of a batch with this clock; `None`: a batch first
    /// committed by a lake-stream with no bound on the future, replayed
    /// with none.
    fn bounds(clock: Option<BatchClock>, lateness_micros: i64) -> TimeBounds {
        let bounds = TimeBounds::lateness(lateness_micros);
        match clock {
            Some(clock) => bounds.not_after(clock.processing_time, clock.max_clock_skew),
            None => bounds,
        }
    }
}

/// A batch committed to some outputs before a crash, not checkpointed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Replay {
    batch: u64,
    /// The batch's last offsets, as its commit recorded.
    ends: BatchEnds,
    /// The batch's clock, as its commit recorded.
    clock: Option<BatchClock>,
    /// The output tables already holding it.
    done: BTreeSet<&'static str>,
}

/// The messages of one partition in one micro-batch, per lane in offset
/// order.
struct PartitionBatch {
    partition: i32,
    date: NaiveDate,
    clock: Option<BatchClock>,
    source: Vec<SourceMessage>,
    internal: Vec<SourceMessage>,
}

/// One partition's batch after its messages went through the state.
struct Applied {
    partition: i32,
    date: NaiveDate,
    batch: u64,
    clock: Option<BatchClock>,
    /// First and last offsets taken from each lane.
    source_range: Option<(i64, i64)>,
    internal_range: Option<(i64, i64)>,
    counted: Vec<(SourceMessage, SalesEvent)>,
    rejected: Vec<(SourceMessage, Rejection)>,
    /// Windows the batch closed (they left the state).
    closed: Windows,
    /// Output tables already holding this batch (a replay).
    done: BTreeSet<&'static str>,
}

/// Applies micro-batches for the partitions this process owns.
pub struct Processor {
    lake: Lake,
    config: StreamConfig,
    checkpoints: CheckpointStore,
    states: BTreeMap<i32, PartitionState>,
    /// Messages held for a later batch.
    carry: BTreeMap<i32, Vec<SourceMessage>>,
    replays: BTreeMap<i32, Replay>,
    /// Dates this process wrote, compacted while written and once closed.
    dates_written: BTreeSet<NaiveDate>,
    /// Micro-batches since the open dates were last compacted.
    batches_since_compaction: u64,
    /// A compaction runs in the background.
    compacting: Arc<AtomicBool>,
    /// The date of each owned partition's latest batch.
    partition_dates: BTreeMap<i32, NaiveDate>,
    /// What this process has done, saved after each batch for the serving
    /// layer and monitoring.
    status: StreamStatus,
    /// The partitions other processes own, as their last checkpoints said
    /// (read again only when a checkpoint changes).
    others: BTreeMap<i32, (String, PartitionState)>,
    closed_store: ClosedWindowStore,
    /// Each owned partition's closed windows of the latest view's date.
    closed: BTreeMap<i32, (NaiveDate, Windows)>,
    /// The other partitions' closed windows of the view's date, with their
    /// version tags (the date first).
    others_closed: BTreeMap<i32, (String, Windows)>,
    /// The live totals over every partition after the latest batch.
    live: LiveTotals,
    /// Sends source messages to their home partitions; `None` for a source
    /// that already sends every message to its home (the built-in one).
    forwarder: Option<Forwarder>,
    /// Per owned partition, the next source offset to forward: messages
    /// are forwarded as they arrive ([`Processor::accept`]), ahead of the
    /// checkpoint.
    forward_from: BTreeMap<i32, i64>,
    /// Events more than this ahead of a batch's processing time are from
    /// the future.
    max_clock_skew: Duration,
}

/// Where an owned partition resumes in each lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    pub source: i64,
    pub internal: i64,
}

impl Processor {
    pub fn new(lake: &Lake, config: StreamConfig) -> Self {
        let checkpoints = CheckpointStore::new(lake, &config.query);
        Processor {
            // The outputs' states kept between micro-batches: a commit
            // reads only the versions written since the last one, not the
            // log since its last checkpoint (which grows by a version per
            // batch up to the next checkpoint).
            lake: lake.with_snapshot_cache(),
            checkpoints,
            states: BTreeMap::new(),
            carry: BTreeMap::new(),
            replays: BTreeMap::new(),
            dates_written: BTreeSet::new(),
            batches_since_compaction: 0,
            compacting: Arc::default(),
            partition_dates: BTreeMap::new(),
            status: StreamStatus {
                query: config.query.clone(),
                ..StreamStatus::default()
            },
            others: BTreeMap::new(),
            closed_store: ClosedWindowStore::new(lake, &config.query),
            closed: BTreeMap::new(),
            others_closed: BTreeMap::new(),
            live: LiveTotals::default(),
            forwarder: None,
            forward_from: BTreeMap::new(),
            max_clock_skew: DEFAULT_MAX_CLOCK_SKEW,
            config,
        }
    }

    /// Refuses events more than `skew` ahead of a batch's processing time
    /// (default [`DEFAULT_MAX_CLOCK_SKEW`]).
    pub fn with_max_clock_skew(mut self, skew: Duration) -> Self {
        self.max_clock_skew = skew;
        self
    }

    /// Forwards the source messages whose event id is at home in another
    /// partition with `forwarder`.
    pub fn with_forwarder(mut self, forwarder: Forwarder) -> Self {
        self.forwarder = Some(forwarder);
        self
    }

    pub fn checkpoints(&self) -> &CheckpointStore {
        &self.checkpoints
    }

    pub fn config(&self) -> &StreamConfig {
        &self.config
    }

    /// Takes ownership of a partition from its checkpoint (or from the
    /// start), finding a batch committed after that checkpoint; returns
    /// the offsets to read from.
    pub fn assign(&mut self, partition: i32) -> Result<Resume> {
        let state = match self.checkpoints.load(partition)? {
            Some(checkpoint) => checkpoint.state,
            None => PartitionState::new(partition),
        };
        let next = Resume {
            source: state.next_offset,
            internal: state.next_internal_offset,
        };
        match self.committed_after_checkpoint(partition, state.batches + 1)? {
            Some(replay) => {
                tracing::info!(
                    "partition {partition}: batch {} was committed to {:?} before a crash; \
                     replaying from {next:?} to {:?}",
                    replay.batch,
                    replay.done,
                    replay.ends
                );
                self.replays.insert(partition, replay);
            }
            None => {
                self.replays.remove(&partition);
            }
        }
        self.states.insert(partition, state);
        self.carry.remove(&partition);
        self.forward_from.insert(partition, next.source);
        Ok(next)
    }

    /// Batch `batch` of `partition` in the outputs' logs: where it ends and
    /// which outputs hold it; `None` when none does.
    fn committed_after_checkpoint(&self, partition: i32, batch: u64) -> Result<Option<Replay>> {
        let app_id = self.config.app_id(partition);
        let mut replay: Option<Replay> = None;
        for name in [EVENTS_TABLE, DLQ_TABLE] {
            let table = Table::open(&self.lake, TableRef::new(Layer::Bronze, name))?;
            let Some(snapshot) = table.latest()? else {
                continue;
            };
            let Some(version) = snapshot.txn_version(&app_id)? else {
                continue;
            };
            if version < batch as i64 {
                continue;
            }
            if version > batch as i64 {
                bail!(
                    "bronze/{name} holds batch {version} of partition {partition} but its checkpoint \
                     is at batch {}: the checkpoints of query {} belong to another run of the \
                     outputs; reset the query (`lake-stream reset`) to start over",
                    batch - 1,
                    self.config.query
                );
            }
            let (_, actions) = find_transaction(&snapshot, &app_id, version, REPLAY_SEARCH)?
                .ok_or_else(|| {
                    anyhow!(
                        "bronze/{name} holds batch {batch} of partition {partition}, but its commit \
                         is not among the last {REPLAY_SEARCH} versions"
                    )
                })?;
            let (ends, clock) = recorded_batch(&actions, partition, batch)
                .with_context(|| {
                    format!("reading the commit of batch {batch} of partition {partition} in bronze/{name}")
                })?
                .ok_or_else(|| {
                    anyhow!("the commit of batch {batch} of partition {partition} in bronze/{name} does not record its offsets")
                })?;
            let entry = replay.get_or_insert(Replay {
                batch,
                ends,
                clock,
                done: BTreeSet::new(),
            });
            if (entry.ends, entry.clock) != (ends, clock) {
                bail!(
                    "batch {batch} of partition {partition} ends at offsets {:?} with clock {:?} in one \
                     output and {ends:?} with {clock:?} in bronze/{name}",
                    entry.ends,
                    entry.clock
                );
            }
            entry.done.insert(name);
        }
        Ok(replay)
    }

    /// Gives a partition up (its unprocessed messages are dropped: the next
    /// owner reads them again from the checkpoint).
    pub fn revoke(&mut self, partition: i32) {
        self.states.remove(&partition);
        self.carry.remove(&partition);
        self.replays.remove(&partition);
        self.partition_dates.remove(&partition);
        self.closed.remove(&partition);
        self.forward_from.remove(&partition);
    }

    pub fn owned(&self) -> impl Iterator<Item = &PartitionState> {
        self.states.values()
    }

    /// The next offset to process in each lane of each owned partition.
    pub fn positions(&self) -> Vec<(Lane, i32, i64)> {
        self.states
            .values()
            .flat_map(|s| {
                [
                    (Lane::Source, s.partition, s.next_offset),
                    (Lane::Internal, s.partition, s.next_internal_offset),
                ]
            })
            .collect()
    }

    /// Sees a message as soon as it is polled: a source message at home
    /// elsewhere is forwarded now, so it waits for no trigger here.
    pub fn accept(&mut self, message: &mut SourceMessage) -> Result<()> {
        if message.away.is_none() {
            message.away = Some(self.forward_if_away(message)?);
        }
        Ok(())
    }

    /// Forwards a source message whose event id is at home in another
    /// partition (once: offsets below `forward_from` were sent); true when
    /// it is not aggregated here. Without a forwarder every message is.
    fn forward_if_away(&mut self, message: &SourceMessage) -> Result<bool> {
        let Some(forwarder) = self.forwarder.as_mut() else {
            return Ok(false);
        };
        if message.lane != Lane::Source {
            return Ok(false);
        }
        // Not a valid event: the DLQ takes it where it is (the parse that
        // rejects it there is the one that gives the id).
        let Some(id) = routing_id(message.payload.as_deref()) else {
            return Ok(false);
        };
        let home = partition_of_event(&id, forwarder.partitions());
        if home == message.partition {
            return Ok(false);
        }
        if let Some(next) = self.forward_from.get_mut(&message.partition)
            && message.offset >= *next
        {
            forwarder.forward(
                home,
                &id,
                message.partition,
                message.offset,
                message.timestamp_ms,
                message.payload.as_deref(),
            )?;
            *next = message.offset + 1;
        }
        Ok(true)
    }

    /// Messages waiting for the next batch.
    pub fn carried(&self) -> usize {
        self.carry.values().map(Vec::len).sum()
    }

    /// Counters and timings so far.
    pub fn status(&self) -> &StreamStatus {
        &self.status
    }

    /// Records the messages behind the high watermarks (sources that know
    /// it); saved with the next status.
    pub fn set_lag(&mut self, lag: Option<i64>) {
        self.status.lag = lag;
    }

    /// Writes the status to `checkpoints/{query}/_status.json`.
    pub fn save_status(&mut self) -> Result<()> {
        self.status.updated_at = Some(Utc::now());
        self.status
            .save(&self.lake)
            .with_context(|| format!("saving the status of query {}", self.config.query))
    }

    /// Processes one micro-batch at the processing time of the wall clock
    /// ([`Self::process_at`]).
    pub fn process(&mut self, messages: Vec<SourceMessage>) -> Result<BatchReport> {
        self.process_at(messages, Utc::now())
    }

    /// Processes one micro-batch whose processing time is `processing_time`:
    /// events more than the allowed clock skew ahead of it are from the
    /// future (a batch being replayed uses the processing time it recorded
    /// instead). Messages of partitions not owned, or already processed
    /// (offset below the checkpoint), are ignored.
    pub fn process_at(
        &mut self,
        messages: Vec<SourceMessage>,
        processing_time: DateTime<Utc>,
    ) -> Result<BatchReport> {
        let started = std::time::Instant::now();
        // The live views' date stays the wall clock's (a source's clock
        // may run ahead of it: the built-in producer's, for a run dated in
        // the future).
        let today = Utc::now().date_naive();
        let mut report = BatchReport::default();
        let clock = BatchClock {
            processing_time: processing_time.timestamp_micros(),
            max_clock_skew: i64::try_from(self.max_clock_skew.as_micros()).unwrap_or(i64::MAX),
        };
        let batches = self.plan(messages, today, clock, &mut report);
        if batches.is_empty() {
            return Ok(report);
        }
        let mut step = StepTimer::new();
        let applied = self.apply(batches, &mut report)?;
        step.lap("apply");
        self.save_closed_windows(&applied, today)?;
        step.lap("closed windows");
        self.refresh_live_totals_for(today)?;
        step.lap("view merge");
        let outputs = self.outputs(&applied, today)?;
        step.lap("output frames");
        commit_all(&self.lake, &self.config, outputs)?;
        for part in &applied {
            self.dates_written.insert(part.date);
            self.partition_dates.insert(part.partition, part.date);
        }
        step.lap("output commits");
        self.flush_forwards()?;
        step.lap("forward flush");
        self.checkpoint(&applied)?;
        step.lap("checkpoints");
        self.record(&report, started.elapsed())?;
        step.lap("status");
        self.compact_dates();
        tracing::debug!(
            "micro-batch of {} messages: {}",
            report.messages,
            step.summary()
        );
        Ok(report)
    }

    /// Each owned partition's messages for this batch, per lane in offset
    /// order; the rest is carried to a later batch.
    fn plan(
        &mut self,
        messages: Vec<SourceMessage>,
        today: NaiveDate,
        clock: BatchClock,
        report: &mut BatchReport,
    ) -> Vec<PartitionBatch> {
        let mut by_partition: BTreeMap<i32, Vec<SourceMessage>> = std::mem::take(&mut self.carry);
        for message in messages {
            by_partition
                .entry(message.partition)
                .or_default()
                .push(message);
        }
        let mut batches = Vec::new();
        for (partition, messages) in by_partition {
            let Some(state) = self.states.get(&partition) else {
                continue;
            };
            let (mut source, mut internal): (Vec<_>, Vec<_>) =
                messages.into_iter().partition(|m| m.lane == Lane::Source);
            for (lane, next) in [
                (&mut source, state.next_offset),
                (&mut internal, state.next_internal_offset),
            ] {
                lane.sort_by_key(|m| m.offset);
                lane.dedup_by_key(|m| m.offset);
                lane.retain(|m| m.offset >= next);
            }
            let ends = match self.replays.get(&partition) {
                // A replay is the same messages as the first attempt: wait
                // until the source has delivered up to its last offsets.
                Some(replay) => match replayed_ends(&source, &internal, replay.ends) {
                    Some(ends) => ends,
                    None => {
                        tracing::debug!(
                            "partition {partition}: replaying batch {} up to {:?}: waiting",
                            replay.batch,
                            replay.ends
                        );
                        report.carried += (source.len() + internal.len()) as u64;
                        source.append(&mut internal);
                        self.carry.insert(partition, source);
                        continue;
                    }
                },
                None => same_date_ends(&source, &internal, today),
            };
            let mut later = source.split_off(ends.0);
            later.append(&mut internal.split_off(ends.1));
            if !later.is_empty() {
                report.carried += later.len() as u64;
                self.carry.insert(partition, later);
            }
            let Some(first) = source.first().or(internal.first()) else {
                continue;
            };
            let clock = match self.replays.get(&partition) {
                Some(replay) => replay.clock,
                None => Some(clock),
            };
            batches.push(PartitionBatch {
                partition,
                date: first.date(today),
                clock,
                source,
                internal,
            });
        }
        batches
    }

    /// Runs each partition's messages through its state: the source lane,
    /// then the internal lane.
    fn apply(
        &mut self,
        batches: Vec<PartitionBatch>,
        report: &mut BatchReport,
    ) -> Result<Vec<Applied>> {
        let lateness = self.config.lateness_micros();
        let mut out = Vec::with_capacity(batches.len());
        for PartitionBatch {
            partition,
            date,
            clock,
            mut source,
            internal,
        } in batches
        {
            let bounds = BatchClock::bounds(clock, lateness);
            for message in &mut source {
                if message.away.is_none() {
                    message.away = Some(self.forward_if_away(message)?);
                }
            }
            let state = self
                .states
                .get_mut(&partition)
                .ok_or_else(|| anyhow!("partition {partition} is not owned"))?;
            let batch = state.batches + 1;
            let range = |lane: &[SourceMessage]| match (lane.first(), lane.last()) {
                (Some(first), Some(last)) => Some((first.offset, last.offset)),
                _ => None,
            };
            let (source_range, internal_range) = (range(&source), range(&internal));
            let mut counted = Vec::new();
            let mut rejected = Vec::new();
            let mut take = |message: SourceMessage, outcome: Outcome| match outcome {
                Outcome::Counted { event, .. } => counted.push((message, event)),
                Outcome::Rejected(rejection) => rejected.push((message, rejection)),
                Outcome::Replayed => report.replayed += 1,
            };
            for message in source {
                if message.away == Some(true) {
                    state.skip_forwarded(message.offset);
                    report.forwarded += 1;
                    continue;
                }
                let outcome = state.apply(message.offset, message.payload.as_deref(), bounds);
                take(message, outcome);
            }
            for message in internal {
                let outcome = state.apply_routed(
                    message.offset,
                    message.origin,
                    message.payload.as_deref(),
                    bounds,
                );
                take(message, outcome);
            }
            state.prune(lateness);
            let closed = state.close_windows(lateness);
            report.messages += (counted.len() + rejected.len()) as u64;
            report.counted += counted.len() as u64;
            for (_, rejection) in &rejected {
                *report.rejected.entry(rejection.reason).or_insert(0) += 1;
            }
            let done = match self.replays.remove(&partition) {
                Some(replay) if replay.batch == batch => replay.done,
                Some(replay) => bail!(
                    "partition {partition}: batch {} was to be replayed, batch {batch} came",
                    replay.batch
                ),
                None => BTreeSet::new(),
            };
            out.push(Applied {
                partition,
                date,
                batch,
                clock,
                source_range,
                internal_range,
                counted,
                rejected,
                closed,
                done,
            });
        }
        Ok(out)
    }

    /// The commits of a batch: its events and rejects (one commit per
    /// table and date, carrying the transaction of each partition written)
    /// and the live views of `today`.
    fn outputs(&self, applied: &[Applied], today: NaiveDate) -> Result<Vec<Output>> {
        let ingested_at = Utc::now();
        let mut outputs = Vec::new();
        let dates: BTreeSet<NaiveDate> = applied.iter().map(|a| a.date).collect();
        for date in dates {
            let of_date: Vec<&Applied> = applied.iter().filter(|a| a.date == date).collect();
            for table in [EVENTS_TABLE, DLQ_TABLE] {
                let parts: Vec<&Applied> = of_date
                    .iter()
                    .copied()
                    .filter(|a| !a.done.contains(table))
                    .filter(|a| match table {
                        EVENTS_TABLE => !a.counted.is_empty(),
                        _ => !a.rejected.is_empty(),
                    })
                    .collect();
                if parts.is_empty() {
                    continue;
                }
                let frame = match table {
                    EVENTS_TABLE => events_frame(
                        parts.iter().flat_map(|a| a.counted.iter()),
                        ingested_at,
                        &self.config.source,
                    )?,
                    _ => dlq_frame(
                        parts.iter().flat_map(|a| a.rejected.iter()),
                        &self.config.topic,
                        ingested_at,
                    )?,
                };
                outputs.push(Output {
                    table: TableRef::new(Layer::Bronze, table),
                    date,
                    frame,
                    append: Some(self.transactions(&parts)),
                });
            }
        }
        for (table, frame) in [
            (LIVE_BY_COUNTRY, self.live.by_country_frame()?),
            (LIVE_BY_MINUTE, self.live.by_minute_frame()?),
        ] {
            outputs.push(Output {
                table: TableRef::new(Layer::Gold, table),
                date: today,
                frame,
                append: None,
            });
        }
        Ok(outputs)
    }

    /// The transactions of the partitions written to one output, and their
    /// offsets for the commit's info.
    fn transactions(&self, parts: &[&Applied]) -> (Vec<Txn>, Value) {
        let txns: Vec<Txn> = parts
            .iter()
            .map(|a| Txn {
                app_id: self.config.app_id(a.partition),
                version: a.batch as i64,
            })
            .collect();
        let batches: Vec<Value> = parts
            .iter()
            .map(|a| {
                json!({
                    "partition": a.partition,
                    "batch": a.batch,
                    "firstOffset": a.source_range.map(|r| r.0),
                    "lastOffset": a.source_range.map(|r| r.1),
                    "firstInternalOffset": a.internal_range.map(|r| r.0),
                    "lastInternalOffset": a.internal_range.map(|r| r.1),
                    // Null for a replay of a batch decided with no bound.
                    "processingTime": a.clock.and_then(|c| micros_to_rfc3339_exact(c.processing_time)),
                    "maxClockSkewMicros": a.clock.map(|c| c.max_clock_skew),
                })
            })
            .collect();
        (
            txns,
            json!({"query": self.config.query, "batches": batches}),
        )
    }

    /// Adds the windows each partition closed to its closed windows of
    /// `date` (the date whose live view the batch publishes), before the
    /// checkpoint: a replay closes the same windows with the same totals,
    /// written again as they are.
    fn save_closed_windows(&mut self, applied: &[Applied], date: NaiveDate) -> Result<()> {
        for part in applied.iter().filter(|a| !a.closed.is_empty()) {
            let windows =
                closed_windows_of(&mut self.closed, &self.closed_store, part.partition, date)?;
            for (key, totals) in &part.closed {
                windows.insert(key.clone(), totals.clone());
            }
            self.closed_store
                .save(part.partition, date, windows)
                .with_context(|| {
                    format!(
                        "saving the closed windows of partition {} for {date}",
                        part.partition
                    )
                })?;
        }
        Ok(())
    }

    /// Waits until the broker acknowledged every message forwarded, before
    /// the checkpoint moves the source offsets past them.
    pub fn flush_forwards(&mut self) -> Result<()> {
        let Some(forwarder) = self.forwarder.as_mut() else {
            return Ok(());
        };
        if forwarder.flush()? == 0 {
            return Ok(());
        }
        lake_table::fault::check("after_forward_flush", &self.config.query)
    }

    /// Writes each processed partition's state, after its outputs.
    fn checkpoint(&mut self, applied: &[Applied]) -> Result<()> {
        lake_table::fault::check("before_checkpoint", &self.config.query)?;
        for part in applied {
            let state = self
                .states
                .get_mut(&part.partition)
                .ok_or_else(|| anyhow!("partition {} is not owned", part.partition))?;
            state.batches = part.batch;
            self.checkpoints.save(state)?;
        }
        Ok(())
    }

    fn record(&mut self, report: &BatchReport, took: Duration) -> Result<()> {
        let status = &mut self.status;
        status.events_consumed += report.messages;
        status.counted += report.counted;
        for (reason, n) in &report.rejected {
            *status.dlq.entry(reason.as_str().to_string()).or_insert(0) += n;
        }
        status.last_batch_duration_ms = Some(took.as_millis() as u64);
        status.last_checkpoint_at = Some(Utc::now());
        let latest = self.states.values().filter_map(|s| s.max_event_time).max();
        if let Some(micros) = latest {
            let time = DateTime::from_timestamp_micros(micros);
            status.last_event_time = status.last_event_time.max(time);
        }
        self.save_status()
    }

    /// Compacts, in the background, the dates this process wrote that every
    /// partition it owns has moved past (each partition's dates only grow,
    /// so none of them writes such a date again), and every
    /// [`OPEN_DATE_COMPACTION_BATCHES`] micro-batches the dates still
    /// written: each batch appends a file, and a commit costs time in
    /// proportion to the files the table holds (`bench commit`), so an
    /// open date's files are kept few. One compaction at a time; one that
    /// loses a race with a batch's append commits again on the new version.
    fn compact_dates(&mut self) {
        self.batches_since_compaction += 1;
        if self.compacting.load(Ordering::SeqCst) {
            return;
        }
        // The closed dates leave `dates_written`; the open ones stay.
        let mut dates: Vec<NaiveDate> = match self.partition_dates.values().min() {
            Some(newest) => {
                let open = self.dates_written.split_off(newest);
                std::mem::replace(&mut self.dates_written, open)
                    .into_iter()
                    .collect()
            }
            None => Vec::new(),
        };
        if self.batches_since_compaction >= OPEN_DATE_COMPACTION_BATCHES {
            self.batches_since_compaction = 0;
            dates.extend(self.dates_written.iter().copied());
        }
        if dates.is_empty() {
            return;
        }
        let lake = self.lake.clone();
        let run_id = self.config.run_id.clone();
        let compacting = self.compacting.clone();
        compacting.store(true, Ordering::SeqCst);
        std::thread::spawn(move || {
            for date in dates {
                for table in [EVENTS_TABLE, DLQ_TABLE] {
                    let table = TableRef::new(Layer::Bronze, table);
                    match lake_table::maintenance::compact(
                        &lake,
                        &table,
                        date,
                        lake_table::maintenance::DEFAULT_TARGET_FILE_BYTES,
                        &run_id,
                    ) {
                        Ok(Some(commit)) => tracing::info!(
                            "compacted {table} {date}: {} files removed, {} written",
                            commit.removed_files,
                            commit.files
                        ),
                        Ok(None) => {}
                        Err(err) => tracing::warn!("compacting {table} {date}: {err:#}"),
                    }
                }
            }
            compacting.store(false, Ordering::SeqCst);
        });
    }

    /// The live totals over every partition after the latest batch.
    pub fn live_totals(&self) -> &LiveTotals {
        &self.live
    }

    /// Merges the live totals of today again ([`Self::refresh_live_totals_for`]).
    pub fn refresh_live_totals(&mut self) -> Result<&LiveTotals> {
        self.refresh_live_totals_for(Utc::now().date_naive())
    }

    /// Merges the live totals again: this process's states from memory,
    /// the partitions other processes own from their latest checkpoints
    /// (a checkpoint is read again only when it was written since); the
    /// windows by minute are those still open and those closed on `date`.
    pub fn refresh_live_totals_for(&mut self, date: NaiveDate) -> Result<&LiveTotals> {
        let mut others = BTreeMap::new();
        let mut others_closed = BTreeMap::new();
        let owned: Vec<i32> = self.states.keys().copied().collect();
        for partition in owned {
            closed_windows_of(&mut self.closed, &self.closed_store, partition, date)?;
        }
        for partition in self.checkpoints.partitions()? {
            if self.states.contains_key(&partition) {
                continue;
            }
            let checkpoints = &self.checkpoints;
            let cached = self.others.remove(&partition);
            if let Some(entry) = reuse_or_load(cached, checkpoints.version_tag(partition)?, || {
                Ok(checkpoints.load(partition)?.map(|c| c.state))
            })? {
                others.insert(partition, entry);
            }
            let store = &self.closed_store;
            let tag = store
                .version_tag(partition, date)?
                .map(|tag| format!("{date}/{tag}"));
            let cached = self.others_closed.remove(&partition);
            if let Some(entry) =
                reuse_or_load(cached, tag, || store.load(partition, date).map(Some))?
            {
                others_closed.insert(partition, entry);
            }
        }
        self.others = others;
        self.others_closed = others_closed;
        let own = self
            .states
            .values()
            .map(|state| (state, self.closed.get(&state.partition).map(|(_, w)| w)));
        let others = self.others.iter().map(|(partition, (_, state))| {
            (state, self.others_closed.get(partition).map(|(_, w)| w))
        });
        self.live = merge_with_closed(own.chain(others));
        Ok(&self.live)
    }
}

/// One commit of a micro-batch: an append of the stream's events or
/// rejects with the batch's transactions and offsets, or the replacement
/// of a live view's date.
struct Output {
    table: TableRef,
    date: NaiveDate,
    frame: DataFrame,
    append: Option<(Vec<Txn>, Value)>,
}

/// Commits a batch's outputs, each on a thread of its own: they are
/// different tables, and a commit mostly waits on storage. The first error
/// (in output order) fails the batch, before its checkpoint.
fn commit_all(lake: &Lake, config: &StreamConfig, outputs: Vec<Output>) -> Result<()> {
    let results: Vec<Result<()>> = std::thread::scope(|scope| {
        let handles: Vec<_> = outputs
            .into_iter()
            .map(|output| {
                scope.spawn(move || {
                    let started = std::time::Instant::now();
                    let table = output.table.to_string();
                    let result = commit_output(lake, config, output);
                    tracing::debug!(
                        "{table}: committed in {:.1} ms",
                        started.elapsed().as_secs_f64() * 1000.0
                    );
                    result
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle.join().unwrap_or_else(|panic| {
                    Err(anyhow!(
                        "a commit panicked: {}",
                        lake_core::error::panic_message(&panic)
                    ))
                })
            })
            .collect()
    });
    results.into_iter().collect()
}

fn commit_output(lake: &Lake, config: &StreamConfig, output: Output) -> Result<()> {
    let Output {
        table,
        date,
        mut frame,
        append,
    } = output;
    let name = table.to_string();
    let mut writer = DateWriter::new(lake, table, date, &config.run_id)?;
    let Some((txns, info)) = append else {
        writer.write_frame(&mut frame)?;
        writer
            .replace()
            .with_context(|| format!("publishing {name} for {date}"))?;
        return Ok(());
    };
    writer = writer.with_commit_info(COMMIT_INFO_KEY, info);
    writer.write_frame(&mut frame)?;
    match writer
        .append(txns)
        .with_context(|| format!("writing {name} for {date}"))?
    {
        AppendOutcome::Committed(_) | AppendOutcome::Empty => Ok(()),
        AppendOutcome::AlreadyApplied(txns) => bail!(
            "another process has committed {} of query {} to {name}: this process no longer owns \
             those partitions (stopping without checkpointing them)",
            txns.iter()
                .map(|t| format!("{} batch {}", t.app_id, t.version))
                .collect::<Vec<_>>()
                .join(", "),
            config.query
        ),
    }
}

/// An owned partition's closed windows of `date` in `closed`, loaded from
/// `store` when the date is not the one in memory.
fn closed_windows_of<'a>(
    closed: &'a mut BTreeMap<i32, (NaiveDate, Windows)>,
    store: &ClosedWindowStore,
    partition: i32,
    date: NaiveDate,
) -> Result<&'a mut Windows> {
    let stale = closed.get(&partition).is_none_or(|(d, _)| *d != date);
    if stale {
        closed.insert(partition, (date, store.load(partition, date)?));
    }
    closed
        .get_mut(&partition)
        .map(|(_, windows)| windows)
        .ok_or_else(|| anyhow!("partition {partition} has no closed windows in memory"))
}

/// The cached value when its version tag is still `tag`, else `load()`'s,
/// tagged; `None` when the object is gone (no tag) or loads as nothing.
/// Reading after taking the tag: a write in between is read now and read
/// again next time (the tag will not match).
fn reuse_or_load<V>(
    cached: Option<(String, V)>,
    tag: Option<String>,
    load: impl FnOnce() -> Result<Option<V>>,
) -> Result<Option<(String, V)>> {
    let Some(tag) = tag else {
        return Ok(None);
    };
    match cached {
        Some((cached_tag, value)) if cached_tag == tag => Ok(Some((tag, value))),
        _ => Ok(load()?.map(|value| (tag, value))),
    }
}

/// Times the steps of a micro-batch, for the debug log (the profile of a
/// batch: `RUST_LOG=lake_stream=debug`).
struct StepTimer {
    last: std::time::Instant,
    laps: Vec<(&'static str, Duration)>,
}

impl StepTimer {
    fn new() -> Self {
        StepTimer {
            last: std::time::Instant::now(),
            laps: Vec::new(),
        }
    }

    fn lap(&mut self, step: &'static str) {
        let now = std::time::Instant::now();
        self.laps.push((step, now - self.last));
        self.last = now;
    }

    fn summary(&self) -> String {
        self.laps
            .iter()
            .map(|(step, took)| format!("{step} {:.1} ms", took.as_secs_f64() * 1000.0))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// How many messages of each lane a replayed batch takes (its recorded
/// ends); `None` while a lane has not delivered up to its end.
fn replayed_ends(
    source: &[SourceMessage],
    internal: &[SourceMessage],
    ends: BatchEnds,
) -> Option<(usize, usize)> {
    let upto = |lane: &[SourceMessage], end: Option<i64>| -> Option<usize> {
        let Some(end) = end else {
            return Some(0);
        };
        let n = lane.iter().take_while(|m| m.offset <= end).count();
        (n > 0 && lane[n - 1].offset == end).then_some(n)
    };
    Some((upto(source, ends.source)?, upto(internal, ends.internal)?))
}

/// How many messages of each lane a new batch takes: those of the
/// earliest date among the lanes' first messages, up to each lane's first
/// message of another date (a batch never spans two dates).
fn same_date_ends(
    source: &[SourceMessage],
    internal: &[SourceMessage],
    today: NaiveDate,
) -> (usize, usize) {
    let Some(date) = [source.first(), internal.first()]
        .into_iter()
        .flatten()
        .map(|m| m.date(today))
        .min()
    else {
        return (0, 0);
    };
    let end = |lane: &[SourceMessage]| {
        lane.iter()
            .position(|m| m.date(today) != date)
            .unwrap_or(lane.len())
    };
    (end(source), end(internal))
}

/// A processing time as recorded in a commit: RFC 3339 to the microsecond,
/// so it reads back exactly.
fn micros_to_rfc3339_exact(micros: i64) -> Option<String> {
    DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

/// The last offsets and the clock of `partition`'s batch `batch` in a
/// commit's actions; `None` when the commit does not record the batch. A
/// batch committed before clocks were recorded has none (it was decided
/// with no bound on the future).
fn recorded_batch(
    actions: &[Value],
    partition: i32,
    batch: u64,
) -> Result<Option<(BatchEnds, Option<BatchClock>)>> {
    let Some(entry) = actions
        .iter()
        .filter_map(|a| {
            a.get("commitInfo")?
                .get(COMMIT_INFO_KEY)?
                .get("batches")?
                .as_array()
        })
        .flatten()
        .find(|b| {
            b.get("partition").and_then(Value::as_i64) == Some(i64::from(partition))
                && b.get("batch").and_then(Value::as_u64) == Some(batch)
        })
    else {
        return Ok(None);
    };
    let ends = BatchEnds {
        source: entry.get("lastOffset").and_then(Value::as_i64),
        internal: entry.get("lastInternalOffset").and_then(Value::as_i64),
    };
    if ends.source.is_none() && ends.internal.is_none() {
        return Ok(None);
    }
    let field = |name: &str| entry.get(name).filter(|v| !v.is_null());
    let clock = match (field("processingTime"), field("maxClockSkewMicros")) {
        (None, None) => None,
        (Some(time), Some(skew)) => {
            let time = time
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .ok_or_else(|| anyhow!("unreadable processingTime {time}"))?;
            let skew = skew
                .as_i64()
                .ok_or_else(|| anyhow!("unreadable maxClockSkewMicros {skew}"))?;
            Some(BatchClock {
                processing_time: time.timestamp_micros(),
                max_clock_skew: skew,
            })
        }
        _ => bail!("the batch records only half of its clock: {entry}"),
    };
    Ok(Some((ends, clock)))
}

fn utc_micros(name: &str, values: Vec<i64>) -> Column {
    Series::new(name.into(), values)
        .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
        .into_column()
}

/// Bronze rows of counted events: every field, `_ingestion_timestamp`,
/// `_source`, `_partition`, `_offset`.
fn events_frame<'a>(
    counted: impl Iterator<Item = &'a (SourceMessage, SalesEvent)>,
    ingested_at: DateTime<Utc>,
    source: &str,
) -> Result<DataFrame> {
    let counted: Vec<&(SourceMessage, SalesEvent)> = counted.collect();
    let n = counted.len();
    let df = DataFrame::new(
        n,
        vec![
            Column::new(
                "event_id".into(),
                counted
                    .iter()
                    .map(|(_, e)| e.event_id.as_str())
                    .collect::<Vec<_>>(),
            ),
            utc_micros(
                "event_time",
                counted
                    .iter()
                    .map(|(_, e)| e.event_time.timestamp_micros())
                    .collect(),
            ),
            Column::new(
                "pays".into(),
                counted
                    .iter()
                    .map(|(_, e)| e.pays.as_str())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "montant".into(),
                counted.iter().map(|(_, e)| e.montant).collect::<Vec<_>>(),
            ),
            Column::new(
                "quantite".into(),
                counted.iter().map(|(_, e)| e.quantite).collect::<Vec<_>>(),
            ),
            Column::new(
                "produit".into(),
                counted
                    .iter()
                    .map(|(_, e)| e.produit.clone())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "client".into(),
                counted
                    .iter()
                    .map(|(_, e)| e.client.clone())
                    .collect::<Vec<_>>(),
            ),
            utc_micros(
                "_ingestion_timestamp",
                vec![ingested_at.timestamp_micros(); n],
            ),
            Column::new("_source".into(), vec![source; n]),
            Column::new(
                "_partition".into(),
                counted.iter().map(|(m, _)| m.origin.0).collect::<Vec<_>>(),
            ),
            Column::new(
                "_offset".into(),
                counted.iter().map(|(m, _)| m.origin.1).collect::<Vec<_>>(),
            ),
        ],
    )?;
    Ok(df)
}

/// DLQ rows: the raw payload, the error, topic, partition and offset.
fn dlq_frame<'a>(
    rejected: impl Iterator<Item = &'a (SourceMessage, Rejection)>,
    topic: &str,
    ingested_at: DateTime<Utc>,
) -> Result<DataFrame> {
    let rejected: Vec<&(SourceMessage, Rejection)> = rejected.collect();
    let n = rejected.len();
    let payloads: Vec<Option<&[u8]>> = rejected.iter().map(|(m, _)| m.payload.as_deref()).collect();
    let df = DataFrame::new(
        n,
        vec![
            Column::new("payload".into(), payloads),
            Column::new(
                "error".into(),
                rejected.iter().map(|(_, r)| r.error()).collect::<Vec<_>>(),
            ),
            Column::new(
                "reason".into(),
                rejected
                    .iter()
                    .map(|(_, r)| r.reason.as_str())
                    .collect::<Vec<_>>(),
            ),
            Column::new("topic".into(), vec![topic; n]),
            Column::new(
                "partition".into(),
                rejected.iter().map(|(m, _)| m.origin.0).collect::<Vec<_>>(),
            ),
            Column::new(
                "offset".into(),
                rejected.iter().map(|(m, _)| m.origin.1).collect::<Vec<_>>(),
            ),
            utc_micros(
                "_ingestion_timestamp",
                vec![ingested_at.timestamp_micros(); n],
            ),
        ],
    )?;
    Ok(df)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_offsets_and_clock_of_a_batch_are_read_from_its_commit() {
        let actions = vec![
            json!({"commitInfo": {"operation": "STREAMING UPDATE", COMMIT_INFO_KEY: {"query": "q", "batches": [
                // Committed before clocks were recorded.
                {"partition": 0, "batch": 3, "firstOffset": 10, "lastOffset": 19,
                 "firstInternalOffset": null, "lastInternalOffset": null},
                {"partition": 2, "batch": 7, "firstOffset": 40, "lastOffset": 44,
                 "firstInternalOffset": 5, "lastInternalOffset": 8,
                 "processingTime": "2026-12-07T19:41:54.123456Z", "maxClockSkewMicros": 300000000},
                {"partition": 3, "batch": 1, "firstOffset": null, "lastOffset": null,
                 "firstInternalOffset": 0, "lastInternalOffset": 2,
                 "processingTime": null, "maxClockSkewMicros": null},
                {"partition": 4, "batch": 1, "firstOffset": 0, "lastOffset": 0,
                 "processingTime": "2026-12-07T19:41:54Z"},
            ]}}}),
            json!({"txn": {"appId": "q/partition-0", "version": 3}}),
        ];
        let read = |partition, batch| recorded_batch(&actions, partition, batch).unwrap();
        let ends = |source, internal| BatchEnds { source, internal };
        assert_eq!(read(0, 3), Some((ends(Some(19), None), None)));
        let clock = BatchClock {
            processing_time: DateTime::parse_from_rfc3339("2026-12-07T19:41:54.123456Z")
                .unwrap()
                .timestamp_micros(),
            max_clock_skew: 300_000_000,
        };
        assert_eq!(read(2, 7), Some((ends(Some(44), Some(8)), Some(clock))));
        assert_eq!(read(3, 1), Some((ends(None, Some(2)), None)));
        assert_eq!(read(2, 6), None);
        assert_eq!(read(1, 3), None);
        assert!(recorded_batch(&actions, 4, 1).is_err(), "half a clock");
        // What a batch records reads back to the microsecond.
        let recorded = micros_to_rfc3339_exact(clock.processing_time).unwrap();
        assert_eq!(recorded, "2026-12-07T19:41:54.123456Z");
    }

    fn message(lane: Lane, offset: i64, day: u32) -> SourceMessage {
        let at = chrono::NaiveDate::from_ymd_opt(2026, 11, day)
            .and_then(|d| d.and_hms_opt(12, 0, 0))
            .unwrap()
            .and_utc()
            .timestamp_millis();
        SourceMessage {
            lane,
            ..SourceMessage::direct(0, offset, Some(at), None)
        }
    }

    #[test]
    fn a_batch_takes_one_date_from_both_lanes_and_a_replay_its_recorded_ends() {
        let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let source: Vec<_> = [(10, 26), (11, 26), (12, 27), (13, 26)]
            .map(|(o, d)| message(Lane::Source, o, d))
            .into();
        let internal: Vec<_> = [(3, 25), (4, 26)]
            .map(|(o, d)| message(Lane::Internal, o, d))
            .into();
        // The earliest date first (the 25th, internal offset 3 alone), so
        // a lane whose first message is of a later date never holds the
        // other back forever.
        assert_eq!(same_date_ends(&source, &internal, today), (0, 1));
        // Then the 26th: source 10 and 11, internal 4.
        assert_eq!(same_date_ends(&source, &internal[1..], today), (2, 1));
        assert_eq!(same_date_ends(&[], &[], today), (0, 0));
        // A replay takes exactly the recorded ranges, whatever the dates...
        let ends = |source, internal| BatchEnds { source, internal };
        assert_eq!(
            replayed_ends(&source, &internal, ends(Some(12), Some(3))),
            Some((3, 1))
        );
        assert_eq!(
            replayed_ends(&source, &internal, ends(None, Some(4))),
            Some((0, 2))
        );
        // ...and waits while a lane has not delivered up to its end.
        assert_eq!(
            replayed_ends(&source, &internal, ends(Some(14), Some(3))),
            None
        );
        assert_eq!(replayed_ends(&source, &[], ends(Some(11), Some(3))), None);
    }
}
