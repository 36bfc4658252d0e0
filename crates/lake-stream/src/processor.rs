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
//! 3. the windows the batch closed are added
//!    (they left the states) to each partition's closed windows of the
//!    processing date ([`crate::closed`]); a replay closes the same
//!    windows with the same totals, written again as they are;
//! 4. the live views are merged over every partition's latest state (and
//!    the windows closed on the processing date);
//! 5. the outputs are committed, each on a thread of its own
//!    ([`crate::sink`]): the counted events appended to
//!    `bronze/ventes_temps_reel` and the rejected ones to
//!    `bronze/_dlq/ventes_temps_reel` (one commit per table and date, with
//!    a Delta `txn` action, application `{query}/partition-{p}` and version
//!    `b`, per partition, and each partition's offsets of both lanes and
//!    its clock in the commit info), and the processing date of
//!    `gold/live_sales_by_country` and `gold/live_sales_by_minute`
//!    replaced;
//! 6. [`Processor::flush_forwards`] waits until the broker acknowledged
//!    every message forwarded; then [`Processor::checkpoint`] writes each
//!    partition's state (one put), and the batch is recorded in the
//!    status, which the loop writes once per batch ([`crate::drive::drive`]).
//!
//! A crash before 6 leaves batch `b` committed to some outputs and not
//! checkpointed. On assignment the processor finds `b` in the outputs'
//! transactions ([`crate::replay`]), reads the batch's last offsets
//! and its clock from that commit, and replays exactly the same messages
//! against the same bound on the future (not the replay's own clock, which
//! could accept an event the first attempt refused): the state comes out
//! as it was, the outputs holding `b` already are not written again
//! (the live views are replaced by the same totals), and the copies it
//! forwards again are skipped at their home.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, NaiveDate, Utc};
use lake_core::run::TableVersion;
use lake_table::Lake;

use crate::checkpoint::CheckpointStore;
use crate::config::{DEFAULT_MAX_CLOCK_SKEW, StreamConfig};
use crate::event::DlqReason;
use crate::live::{LiveViews, resumed_status, set_counters};
use crate::message::{Lane, SourceMessage};
use crate::replay::{
    BatchClock, Replay, committed_after_checkpoint, replayed_ends, same_date_ends,
};
use crate::route::{Forwarder, route};
use crate::sink::{Applied, Compactor, commit_all, outputs};
use crate::source::context::{Resume, SourceContext};
use crate::state::{Outcome, PartitionState};
use crate::stream_status::StreamStatus;
use crate::timer::StepTimer;
use crate::views::LiveTotals;

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

/// The messages of one partition in one micro-batch, per lane in offset
/// order.
struct PartitionBatch {
    partition: i32,
    date: NaiveDate,
    clock: Option<BatchClock>,
    source: Vec<SourceMessage>,
    internal: Vec<SourceMessage>,
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
    /// The dates written, compacted in the background.
    compactor: Compactor,
    /// What this process has done, saved after each batch for the serving
    /// layer and monitoring.
    status: StreamStatus,
    /// The status changed since it was last saved.
    status_changed: bool,
    live: LiveViews,
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
    /// Per table (`layer/table`), the last version this process committed:
    /// what its run manifest records as written.
    written: BTreeMap<String, TableVersion>,
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
            compactor: Compactor::default(),
            status: StreamStatus {
                query: config.query.clone(),
                ..StreamStatus::default()
            },
            status_changed: false,
            live: LiveViews::new(lake, &config.query),
            forwarder: None,
            forward_from: BTreeMap::new(),
            max_clock_skew: DEFAULT_MAX_CLOCK_SKEW,
            written: BTreeMap::new(),
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

    pub fn owned(&self) -> impl Iterator<Item = &PartitionState> {
        self.states.values()
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
        let routed = route(
            message.payload.as_deref(),
            message.partition,
            forwarder.partitions(),
        );
        // At home, or not a valid event: the DLQ takes it where it is (the
        // parse that rejects it there is the one that gives the id).
        let home = routed.partition;
        let Some(id) = routed.event_id.filter(|_| home != message.partition) else {
            return Ok(false);
        };
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

    /// The last version this process committed to each table it wrote.
    pub fn written(&self) -> Vec<TableVersion> {
        self.written.values().cloned().collect()
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
    /// it); saved with the status.
    pub fn set_lag(&mut self, lag: Option<i64>) {
        if self.status.lag != lag {
            self.status.lag = lag;
            self.status_changed = true;
        }
    }

    /// Writes the status to `checkpoints/{query}/_status.json` when it
    /// changed since last written: once per micro-batch, after the source
    /// gave its lag ([`crate::drive::drive`]).
    pub fn save_status(&mut self) -> Result<()> {
        if !self.status_changed {
            return Ok(());
        }
        self.status.updated_at = Some(Utc::now());
        self.status
            .save(&self.lake)
            .with_context(|| format!("saving the status of query {}", self.config.query))?;
        self.status_changed = false;
        Ok(())
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
        let closed = applied.iter().map(|a| (a.partition, &a.closed));
        self.live.save_closed_windows(closed, today)?;
        step.lap("closed windows");
        self.live.refresh(&self.states, today)?;
        step.lap("view merge");
        let outputs = outputs(&self.config, &applied, self.live.totals(), today)?;
        step.lap("output frames");
        for commit in commit_all(&self.lake, &self.config, outputs)? {
            let written = TableVersion::from(&commit);
            self.written.insert(written.table.clone(), written);
        }
        for part in &applied {
            self.compactor.wrote(part.partition, part.date);
        }
        step.lap("output commits");
        self.flush_forwards()?;
        step.lap("forward flush");
        self.checkpoint(&applied)?;
        step.lap("checkpoints");
        self.record(started.elapsed());
        self.compactor.compact(&self.lake, &self.config.run_id);
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
                self.accept(message)?;
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

    /// Records the batch in the status (saved by [`Self::save_status`]):
    /// its counters become those of the live views merged for this batch,
    /// the query's over every partition, so they add up to the views' rows.
    fn record(&mut self, took: Duration) {
        let status = &mut self.status;
        set_counters(status, self.live.totals());
        status.last_batch_duration_ms = Some(took.as_millis() as u64);
        status.last_checkpoint_at = Some(Utc::now());
        self.status_changed = true;
    }

    /// Takes the query's checkpointed state as the live views and status
    /// before any batch (every partition from its checkpoint), so a process
    /// that starts shows what was counted before it, not nothing.
    pub fn resume(&mut self) -> Result<()> {
        let today = Utc::now().date_naive();
        self.live.refresh(&self.states, today).with_context(|| {
            format!(
                "reading the checkpointed live views of query {}",
                self.config.query
            )
        })?;
        self.status = resumed_status(&self.lake, &self.config.query, self.live.totals())?;
        Ok(())
    }

    /// The live totals over every partition after the latest batch.
    pub fn live_totals(&self) -> &LiveTotals {
        self.live.totals()
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
        self.live.refresh(&self.states, date)
    }
}

/// What a source sees of the processor.
impl SourceContext for Processor {
    /// Takes ownership of a partition from its checkpoint (or from the
    /// start), finding a batch committed after that checkpoint; returns
    /// the offsets to read from.
    fn assign(&mut self, partition: i32) -> Result<Resume> {
        let state = match self.checkpoints.load(partition)? {
            Some(checkpoint) => checkpoint.state,
            None => PartitionState::new(partition),
        };
        let next = Resume {
            source: state.next_offset,
            internal: state.next_internal_offset,
        };
        let batch = state.batches + 1;
        match committed_after_checkpoint(&self.lake, &self.config, partition, batch)? {
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

    /// Gives a partition up (its unprocessed messages are dropped: the next
    /// owner reads them again from the checkpoint).
    fn revoke(&mut self, partition: i32) {
        self.states.remove(&partition);
        self.carry.remove(&partition);
        self.replays.remove(&partition);
        self.compactor.revoke(partition);
        self.live.revoke(partition);
        self.forward_from.remove(&partition);
    }

    /// The next offset to process in each lane of each owned partition.
    fn positions(&self) -> Vec<(Lane, i32, i64)> {
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
}
