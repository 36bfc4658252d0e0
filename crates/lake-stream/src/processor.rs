//! The micro-batch processor: applies messages to partition states, writes
//! the outputs as Delta commits carrying the stream's transactions, then
//! checkpoints.
//!
//! One micro-batch, over the partitions it has messages for:
//! 1. [`Processor::plan`] takes each partition's messages from its next
//!    offset, stopping at the first message of another date (a batch never
//!    spans two dates) or, for a batch being replayed, at its recorded end;
//! 2. [`Processor::apply`] runs them through the partitions' states; batch
//!    `b` of partition `p` is the state's `batches + 1`;
//! 3. [`Processor::write`] appends the counted events to
//!    `bronze/ventes_temps_reel` and the rejected ones to
//!    `bronze/_dlq/ventes_temps_reel`: one commit per table and date, with
//!    a Delta `txn` action (application `{query}/partition-{p}`, version
//!    `b`) per partition, and each partition's offsets in the commit info;
//! 4. [`Processor::save_closed_windows`] adds the windows the batch closed
//!    (they left the states) to each partition's closed windows of the
//!    processing date ([`crate::closed`]);
//! 5. [`Processor::checkpoint`] writes each partition's state (one put);
//! 6. the live views, merged over every partition's latest state (and the
//!    windows closed on the processing date), replace the processing date
//!    of `gold/live_sales_by_country` and `gold/live_sales_by_minute`.
//!
//! A crash before 5 leaves batch `b` committed to some outputs and not
//! checkpointed. On assignment the processor finds `b` in the outputs'
//! transactions ([`Processor::assign`]), reads the batch's last offset
//! from that commit, and replays exactly the same messages: the state comes
//! out as it was, the outputs holding `b` already are not written again.

use std::collections::{BTreeMap, BTreeSet};
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
use crate::route::Envelope;
use crate::state::{Outcome, PartitionState};
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
/// Commits searched back for a batch committed before a crash.
const REPLAY_SEARCH: usize = 10_000;

/// One message of a stage's input.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceMessage {
    pub partition: i32,
    pub offset: i64,
    /// Message timestamp (milliseconds since the epoch), when the source has one.
    pub timestamp_ms: Option<i64>,
    pub payload: Option<Vec<u8>>,
    /// The source topic's partition and offset the message came from: its
    /// own for a message read from the source, the envelope's for one the
    /// router republished.
    pub origin: (i32, i64),
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
            partition,
            offset,
            timestamp_ms,
            payload,
            origin: (partition, offset),
        }
    }

    /// A message of the internal topic: the router's envelope unwrapped
    /// (a value that is not an envelope is taken as it is).
    pub fn routed(
        partition: i32,
        offset: i64,
        timestamp_ms: Option<i64>,
        value: Option<&[u8]>,
    ) -> Self {
        match value.and_then(Envelope::decode) {
            Some(envelope) => SourceMessage {
                partition,
                offset,
                timestamp_ms,
                payload: envelope.payload,
                origin: (envelope.partition, envelope.offset),
            },
            None => {
                SourceMessage::direct(partition, offset, timestamp_ms, value.map(<[u8]>::to_vec))
            }
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
    /// Copies the router published again after a crash, skipped.
    pub replayed: u64,
    /// Messages held back for the next batch (another date, or past the
    /// end of a batch being replayed).
    pub carried: u64,
}

/// A batch committed to some outputs before a crash, not checkpointed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Replay {
    batch: u64,
    /// The batch's last offset, as its commit recorded.
    last_offset: i64,
    /// The output tables already holding it.
    done: BTreeSet<&'static str>,
}

/// The messages of one partition in one micro-batch.
struct PartitionBatch {
    partition: i32,
    date: NaiveDate,
    messages: Vec<SourceMessage>,
}

/// One partition's batch after its messages went through the state.
struct Applied {
    partition: i32,
    date: NaiveDate,
    batch: u64,
    first_offset: i64,
    last_offset: i64,
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
    /// Dates this process wrote, to compact once they close.
    dates_written: BTreeSet<NaiveDate>,
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
}

impl Processor {
    pub fn new(lake: &Lake, config: StreamConfig) -> Self {
        let checkpoints = CheckpointStore::new(lake, &config.query);
        Processor {
            lake: lake.clone(),
            checkpoints,
            states: BTreeMap::new(),
            carry: BTreeMap::new(),
            replays: BTreeMap::new(),
            dates_written: BTreeSet::new(),
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
            config,
        }
    }

    pub fn checkpoints(&self) -> &CheckpointStore {
        &self.checkpoints
    }

    pub fn config(&self) -> &StreamConfig {
        &self.config
    }

    /// Takes ownership of a partition from its checkpoint (or from the
    /// start), finding a batch committed after that checkpoint; returns
    /// the offset to read from.
    pub fn assign(&mut self, partition: i32) -> Result<i64> {
        let state = match self.checkpoints.load(partition)? {
            Some(checkpoint) => checkpoint.state,
            None => PartitionState::new(partition),
        };
        let next = state.next_offset;
        match self.committed_after_checkpoint(partition, state.batches + 1)? {
            Some(replay) => {
                tracing::info!(
                    "partition {partition}: batch {} was committed to {:?} before a crash; \
                     replaying offsets {next} to {}",
                    replay.batch,
                    replay.done,
                    replay.last_offset
                );
                self.replays.insert(partition, replay);
            }
            None => {
                self.replays.remove(&partition);
            }
        }
        self.states.insert(partition, state);
        self.carry.remove(&partition);
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
            let last_offset = recorded_last_offset(&actions, partition, batch).ok_or_else(|| {
                anyhow!("the commit of batch {batch} of partition {partition} in bronze/{name} does not record its offsets")
            })?;
            let entry = replay.get_or_insert(Replay {
                batch,
                last_offset,
                done: BTreeSet::new(),
            });
            if entry.last_offset != last_offset {
                bail!(
                    "batch {batch} of partition {partition} ends at offset {} in one output and {last_offset} in bronze/{name}",
                    entry.last_offset
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
    }

    pub fn owned(&self) -> impl Iterator<Item = &PartitionState> {
        self.states.values()
    }

    /// Next offset to process for an owned partition.
    pub fn next_offset(&self, partition: i32) -> Option<i64> {
        self.states.get(&partition).map(|s| s.next_offset)
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

    /// Processes one micro-batch. Messages of partitions not owned, or
    /// already processed (offset below the checkpoint), are ignored.
    pub fn process(&mut self, messages: Vec<SourceMessage>) -> Result<BatchReport> {
        let started = std::time::Instant::now();
        let today = Utc::now().date_naive();
        let mut report = BatchReport::default();
        let batches = self.plan(messages, today, &mut report);
        if batches.is_empty() {
            return Ok(report);
        }
        let mut step = StepTimer::new();
        let applied = self.apply(batches, &mut report)?;
        step.lap("apply");
        self.write(&applied)?;
        step.lap("bronze and DLQ commits");
        self.save_closed_windows(&applied, today)?;
        step.lap("closed windows");
        self.checkpoint(&applied)?;
        step.lap("checkpoints");
        self.refresh_live_totals_for(today)?;
        step.lap("view merge");
        self.publish_live_views(today)?;
        step.lap("live view commits");
        self.record(&report, started.elapsed())?;
        step.lap("status");
        self.compact_closed_dates();
        tracing::debug!(
            "micro-batch of {} messages: {}",
            report.messages,
            step.summary()
        );
        Ok(report)
    }

    /// Each owned partition's messages for this batch, in offset order.
    fn plan(
        &mut self,
        messages: Vec<SourceMessage>,
        today: NaiveDate,
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
        for (partition, mut messages) in by_partition {
            let Some(next_offset) = self.next_offset(partition) else {
                continue;
            };
            messages.sort_by_key(|m| m.offset);
            messages.dedup_by_key(|m| m.offset);
            messages.retain(|m| m.offset >= next_offset);
            let Some(first) = messages.first() else {
                continue;
            };
            let date = first.date(today);
            let mut end = messages
                .iter()
                .position(|m| m.date(today) != date)
                .unwrap_or(messages.len());
            if let Some(replay) = self.replays.get(&partition) {
                let past = messages
                    .iter()
                    .position(|m| m.offset > replay.last_offset)
                    .unwrap_or(messages.len());
                end = end.min(past);
                // A replay is the same messages as the first attempt: wait
                // until the source has delivered up to its last offset.
                if messages[..end].last().map(|m| m.offset) != Some(replay.last_offset) {
                    tracing::debug!(
                        "partition {partition}: replaying batch {} up to offset {}, have {:?}: waiting",
                        replay.batch,
                        replay.last_offset,
                        messages[..end].last().map(|m| m.offset)
                    );
                    report.carried += messages.len() as u64;
                    self.carry.insert(partition, messages);
                    continue;
                }
            }
            let later = messages.split_off(end);
            if !later.is_empty() {
                report.carried += later.len() as u64;
                self.carry.insert(partition, later);
            }
            batches.push(PartitionBatch {
                partition,
                date,
                messages,
            });
        }
        batches
    }

    /// Runs each partition's messages through its state.
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
            messages,
        } in batches
        {
            let state = self
                .states
                .get_mut(&partition)
                .ok_or_else(|| anyhow!("partition {partition} is not owned"))?;
            let batch = state.batches + 1;
            let mut counted = Vec::new();
            let mut rejected = Vec::new();
            let (first_offset, last_offset) = match (messages.first(), messages.last()) {
                (Some(first), Some(last)) => (first.offset, last.offset),
                _ => continue,
            };
            for message in messages {
                match state.apply_routed(
                    message.offset,
                    message.origin,
                    message.payload.as_deref(),
                    lateness,
                ) {
                    Outcome::Counted { event, .. } => counted.push((message, event)),
                    Outcome::Rejected(rejection) => rejected.push((message, rejection)),
                    Outcome::Replayed => report.replayed += 1,
                }
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
                first_offset,
                last_offset,
                counted,
                rejected,
                closed,
                done,
            });
        }
        Ok(out)
    }

    /// Appends the batch's events and rejects: one commit per table and
    /// date, carrying the transaction of each partition written.
    fn write(&mut self, applied: &[Applied]) -> Result<()> {
        let ingested_at = Utc::now();
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
                let mut frame = match table {
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
                self.append(table, date, &parts, &mut frame)
                    .with_context(|| format!("writing bronze/{table} for {date}"))?;
            }
            self.dates_written.insert(date);
        }
        for part in applied {
            self.partition_dates.insert(part.partition, part.date);
        }
        Ok(())
    }

    fn append(
        &self,
        table: &str,
        date: NaiveDate,
        parts: &[&Applied],
        frame: &mut DataFrame,
    ) -> Result<()> {
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
                    "firstOffset": a.first_offset,
                    "lastOffset": a.last_offset,
                })
            })
            .collect();
        let mut writer = DateWriter::new(
            &self.lake,
            TableRef::new(Layer::Bronze, table),
            date,
            &self.config.run_id,
        )?
        .with_commit_info(
            COMMIT_INFO_KEY,
            json!({"query": self.config.query, "batches": batches}),
        );
        writer.write_frame(frame)?;
        match writer.append(txns)? {
            AppendOutcome::Committed(_) | AppendOutcome::Empty => Ok(()),
            AppendOutcome::AlreadyApplied(txns) => bail!(
                "another process has committed {} of query {} to bronze/{table}: this process no \
                 longer owns those partitions (stopping without checkpointing them)",
                txns.iter()
                    .map(|t| format!("{} batch {}", t.app_id, t.version))
                    .collect::<Vec<_>>()
                    .join(", "),
                self.config.query
            ),
        }
    }

    /// Adds the windows each partition closed to its closed windows of
    /// `date` (the date whose live view the batch publishes), after the
    /// outputs and before the checkpoint: a replay closes the same windows
    /// with the same totals, written again as they are.
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
    /// so none of them writes such a date again).
    fn compact_closed_dates(&mut self) {
        let Some(newest) = self.partition_dates.values().min().copied() else {
            return;
        };
        let closed: Vec<NaiveDate> = self
            .dates_written
            .iter()
            .copied()
            .filter(|d| *d < newest)
            .collect();
        if closed.is_empty() {
            return;
        }
        for date in &closed {
            self.dates_written.remove(date);
        }
        let lake = self.lake.clone();
        let run_id = self.config.run_id.clone();
        std::thread::spawn(move || {
            for date in closed {
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

    fn publish_live_views(&self, date: NaiveDate) -> Result<()> {
        let live = &self.live;
        for (table, mut frame) in [
            (LIVE_BY_COUNTRY, live.by_country_frame()?),
            (LIVE_BY_MINUTE, live.by_minute_frame()?),
        ] {
            let mut writer = DateWriter::new(
                &self.lake,
                TableRef::new(Layer::Gold, table),
                date,
                &self.config.run_id,
            )?;
            writer.write_frame(&mut frame)?;
            writer
                .replace()
                .with_context(|| format!("publishing gold/{table}"))?;
        }
        Ok(())
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

/// The last offset of `partition`'s batch `batch` in a commit's actions.
fn recorded_last_offset(actions: &[Value], partition: i32, batch: u64) -> Option<i64> {
    actions
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
        .and_then(|b| b.get("lastOffset")?.as_i64())
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
    fn the_last_offset_of_a_batch_is_read_from_its_commit() {
        let actions = vec![
            json!({"commitInfo": {"operation": "STREAMING UPDATE", COMMIT_INFO_KEY: {"query": "q", "batches": [
                {"partition": 0, "batch": 3, "firstOffset": 10, "lastOffset": 19},
                {"partition": 2, "batch": 7, "firstOffset": 40, "lastOffset": 44},
            ]}}}),
            json!({"txn": {"appId": "q/partition-0", "version": 3}}),
        ];
        assert_eq!(recorded_last_offset(&actions, 0, 3), Some(19));
        assert_eq!(recorded_last_offset(&actions, 2, 7), Some(44));
        assert_eq!(recorded_last_offset(&actions, 2, 6), None);
        assert_eq!(recorded_last_offset(&actions, 1, 3), None);
    }
}
