//! The micro-batch processor: applies messages to partition states, writes
//! the outputs through lake-core's commit protocol, then checkpoints.
//!
//! For each partition with messages, a micro-batch `b`:
//! 1. applies its messages in offset order to the partition's state;
//! 2. appends the counted events to `bronze/ventes_temps_reel/{date}/` and
//!    the rejected ones to `bronze/_dlq/ventes_temps_reel/{date}/`, as files
//!    tagged (partition, b), superseding any earlier attempt of batch `b`;
//! 3. writes the partition's checkpoint (offsets and state, one put);
//!
//! then the live views, merged over every partition's latest state, replace
//! `gold/live_sales_by_country/{date}/` and `gold/live_sales_by_minute/{date}/`.
//!
//! A crash before 3 replays batch `b` from the previous checkpoint: its new
//! outputs supersede the first attempt's, so nothing is counted twice. A
//! batch never spans two dates (it stops at the first message of the next
//! day), so a replay always writes to the partitions its first attempt did.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use chrono::{DateTime, NaiveDate, Utc};
use lake_core::partition::FileOrigin;
use lake_core::stream_status::StreamStatus;
use lake_core::{Lake, Layer, PartitionRef, PartitionWriter};
use polars::prelude::*;

use crate::checkpoint::CheckpointStore;
use crate::event::DlqReason;
use crate::state::{Outcome, PartitionState};
use crate::views::{LiveTotals, merge};

/// Bronze table of valid events.
pub const EVENTS_TABLE: &str = "ventes_temps_reel";
/// DLQ table, in the bronze root.
pub const DLQ_TABLE: &str = "_dlq/ventes_temps_reel";
/// Gold live views.
pub const LIVE_BY_COUNTRY: &str = "live_sales_by_country";
pub const LIVE_BY_MINUTE: &str = "live_sales_by_minute";

/// One message of the source.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceMessage {
    pub partition: i32,
    pub offset: i64,
    /// Message timestamp (milliseconds since the epoch), when the source has one.
    pub timestamp_ms: Option<i64>,
    pub payload: Option<Vec<u8>>,
}

impl SourceMessage {
    /// The ingestion date partitioning the message's outputs.
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
    /// Names the query's checkpoints (`checkpoints/{query}/`).
    pub query: String,
    pub topic: String,
    /// `_source` of the bronze events, e.g. `kafka://host:9092/ventes-temps-reel`.
    pub source: String,
    /// Events older than the latest event time minus this are late.
    pub allowed_lateness: Duration,
    /// Names the output files of this process.
    pub run_id: String,
}

impl StreamConfig {
    fn lateness_micros(&self) -> i64 {
        self.allowed_lateness.as_micros() as i64
    }
}

/// What one micro-batch did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchReport {
    pub messages: u64,
    pub counted: u64,
    pub rejected: BTreeMap<DlqReason, u64>,
    /// Messages held back for the next batch (they belong to the next day).
    pub carried: u64,
}

/// Applies micro-batches for the partitions this process owns.
pub struct Processor {
    lake: Lake,
    config: StreamConfig,
    checkpoints: CheckpointStore,
    states: BTreeMap<i32, PartitionState>,
    /// Messages of a later date than their batch, for the next batch.
    carry: BTreeMap<i32, Vec<SourceMessage>>,
    /// Partitions whose next batch may replay one an earlier process
    /// committed outputs for but did not checkpoint: its empty outputs must
    /// still supersede. Later batches of this process are new.
    may_replay: std::collections::BTreeSet<i32>,
    /// What this process has done, saved after each batch for the serving
    /// layer and monitoring.
    status: StreamStatus,
}

impl Processor {
    pub fn new(lake: &Lake, config: StreamConfig) -> Self {
        let checkpoints = CheckpointStore::new(lake, &config.query);
        Processor {
            lake: lake.clone(),
            checkpoints,
            states: BTreeMap::new(),
            carry: BTreeMap::new(),
            may_replay: Default::default(),
            status: StreamStatus {
                query: config.query.clone(),
                ..StreamStatus::default()
            },
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
    /// start); returns the offset to read from.
    pub fn assign(&mut self, partition: i32) -> Result<i64> {
        let state = match self.checkpoints.load(partition)? {
            Some(checkpoint) => checkpoint.state,
            None => PartitionState::new(partition),
        };
        let next = state.next_offset;
        self.states.insert(partition, state);
        self.carry.remove(&partition);
        self.may_replay.insert(partition);
        Ok(next)
    }

    /// Gives a partition up (its unprocessed messages are dropped: the next
    /// owner reads them again from the checkpoint).
    pub fn revoke(&mut self, partition: i32) {
        self.states.remove(&partition);
        self.carry.remove(&partition);
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
        let mut by_partition: BTreeMap<i32, Vec<SourceMessage>> = std::mem::take(&mut self.carry);
        for message in messages {
            by_partition
                .entry(message.partition)
                .or_default()
                .push(message);
        }
        let mut report = BatchReport::default();
        let mut changed = false;
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
            let split = messages
                .iter()
                .position(|m| m.date(today) != date)
                .unwrap_or(messages.len());
            let later = messages.split_off(split);
            if !later.is_empty() {
                report.carried += later.len() as u64;
                self.carry.insert(partition, later);
            }
            self.process_partition(partition, date, &messages, &mut report)?;
            changed = true;
        }
        if changed {
            self.publish_live_views(today)?;
            self.record(&report, started.elapsed())?;
        }
        Ok(report)
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

    fn process_partition(
        &mut self,
        partition: i32,
        date: NaiveDate,
        messages: &[SourceMessage],
        report: &mut BatchReport,
    ) -> Result<()> {
        let lateness = self.config.lateness_micros();
        let state = self
            .states
            .get_mut(&partition)
            .ok_or_else(|| anyhow!("partition {partition} is not owned"))?;
        let mut counted = Vec::new();
        let mut rejected = Vec::new();
        for message in messages {
            match state.apply(message.offset, message.payload.as_deref(), lateness) {
                Outcome::Counted { event, .. } => counted.push((message, event)),
                Outcome::Rejected(rejection) => rejected.push((message, rejection)),
            }
        }
        state.prune(lateness);
        let batch = state.batches + 1;
        let origin = FileOrigin { partition, batch };
        let ingested_at = Utc::now();
        report.messages += messages.len() as u64;
        report.counted += counted.len() as u64;
        for (_, rejection) in &rejected {
            *report.rejected.entry(rejection.reason).or_insert(0) += 1;
        }

        let replay = self.may_replay.remove(&partition);
        let mut events = events_frame(&counted, ingested_at, &self.config.source)?;
        if events.height() > 0 || replay {
            self.append(EVENTS_TABLE, date, origin, &mut events)
                .with_context(|| {
                    format!("writing bronze/{EVENTS_TABLE} for partition {partition}")
                })?;
        }
        let mut dlq = dlq_frame(&rejected, &self.config.topic, ingested_at)?;
        if dlq.height() > 0 || replay {
            self.append(DLQ_TABLE, date, origin, &mut dlq)
                .with_context(|| format!("writing bronze/{DLQ_TABLE} for partition {partition}"))?;
        }

        let state = self
            .states
            .get_mut(&partition)
            .ok_or_else(|| anyhow!("partition {partition} is not owned"))?;
        state.batches = batch;
        self.checkpoints.save(state)?;
        Ok(())
    }

    fn append(
        &self,
        table: &str,
        date: NaiveDate,
        origin: FileOrigin,
        frame: &mut DataFrame,
    ) -> Result<()> {
        let partition = PartitionRef::new(Layer::Bronze, table, date);
        let mut writer =
            PartitionWriter::new(&self.lake, partition, &self.config.run_id).with_origin(origin);
        if frame.height() > 0 {
            writer.write_frame(frame)?;
        }
        writer.commit_append()?;
        Ok(())
    }

    /// The live totals over every partition: this process's states, and the
    /// latest checkpoints of the partitions other processes own.
    pub fn live_totals(&self) -> Result<LiveTotals> {
        let mut others: Vec<PartitionState> = Vec::new();
        for partition in self.checkpoints.partitions()? {
            if !self.states.contains_key(&partition)
                && let Some(checkpoint) = self.checkpoints.load(partition)?
            {
                others.push(checkpoint.state);
            }
        }
        Ok(merge(self.states.values().chain(others.iter())))
    }

    fn publish_live_views(&self, date: NaiveDate) -> Result<()> {
        let live = self.live_totals()?;
        for (table, mut frame) in [
            (LIVE_BY_COUNTRY, live.by_country_frame()?),
            (LIVE_BY_MINUTE, live.by_minute_frame()?),
        ] {
            let mut writer = PartitionWriter::new(
                &self.lake,
                PartitionRef::new(Layer::Gold, table, date),
                &self.config.run_id,
            );
            writer.write_frame(&mut frame)?;
            writer
                .commit_replace()
                .with_context(|| format!("publishing gold/{table}"))?;
        }
        Ok(())
    }
}

fn utc_micros(name: &str, values: Vec<i64>) -> Column {
    Series::new(name.into(), values)
        .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
        .into_column()
}

/// Bronze rows of counted events: every field, `_ingestion_timestamp`,
/// `_source`, `_partition`, `_offset`.
fn events_frame(
    counted: &[(&SourceMessage, crate::event::SalesEvent)],
    ingested_at: DateTime<Utc>,
    source: &str,
) -> Result<DataFrame> {
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
                counted.iter().map(|(m, _)| m.partition).collect::<Vec<_>>(),
            ),
            Column::new(
                "_offset".into(),
                counted.iter().map(|(m, _)| m.offset).collect::<Vec<_>>(),
            ),
        ],
    )?;
    Ok(df)
}

/// DLQ rows: the raw payload, the error, topic, partition and offset.
fn dlq_frame(
    rejected: &[(&SourceMessage, crate::event::Rejection)],
    topic: &str,
    ingested_at: DateTime<Utc>,
) -> Result<DataFrame> {
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
                rejected
                    .iter()
                    .map(|(m, _)| m.partition)
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "offset".into(),
                rejected.iter().map(|(m, _)| m.offset).collect::<Vec<_>>(),
            ),
            utc_micros(
                "_ingestion_timestamp",
                vec![ingested_at.timestamp_micros(); n],
            ),
        ],
    )?;
    Ok(df)
}
