//! The sinks of a micro-batch: the frames of its outputs (bronze events,
//! the DLQ and the live views, [`outputs`]), their commits, each carrying
//! the transactions and the replay record of the partitions it writes
//! ([`commit_all`]), and the compaction of the dates written
//! ([`Compactor`]). Every table the stream writes is the stream's table:
//! created with the stream's log retention
//! ([`lake_table::STREAM_LOG_RETENTION`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, NaiveDate, Utc};
use lake_table::{AppendOutcome, Commit, DateWriter, Lake, Layer, TableRef, Txn};
use polars::prelude::*;
use serde_json::{Value, json};

use crate::closed::Windows;
use crate::config::{DLQ_TABLE, EVENTS_TABLE, LIVE_BY_COUNTRY, LIVE_BY_MINUTE, StreamConfig};
use crate::event::{Rejection, SalesEvent};
use crate::message::SourceMessage;
use crate::replay::{BatchClock, COMMIT_INFO_KEY, batch_entry};
use crate::views::LiveTotals;

/// Micro-batches between two compactions of the dates still written (at
/// a 200 ms interval, one every 20 s).
const OPEN_DATE_COMPACTION_BATCHES: u64 = 100;

/// One partition's batch after its messages went through the state.
pub(crate) struct Applied {
    pub partition: i32,
    pub date: NaiveDate,
    pub batch: u64,
    pub clock: Option<BatchClock>,
    /// First and last offsets taken from each lane.
    pub source_range: Option<(i64, i64)>,
    pub internal_range: Option<(i64, i64)>,
    pub counted: Vec<(SourceMessage, SalesEvent)>,
    pub rejected: Vec<(SourceMessage, Rejection)>,
    /// Windows the batch closed (they left the state).
    pub closed: Windows,
    /// Output tables already holding this batch (a replay).
    pub done: BTreeSet<&'static str>,
}

/// The commits of a batch: its events and rejects (one commit per
/// table and date, carrying the transaction of each partition written)
/// and the live views of `today`.
pub(crate) fn outputs(
    config: &StreamConfig,
    applied: &[Applied],
    live: &LiveTotals,
    today: NaiveDate,
) -> Result<Vec<Output>> {
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
                    &config.source,
                )?,
                _ => dlq_frame(
                    parts.iter().flat_map(|a| a.rejected.iter()),
                    &config.topic,
                    ingested_at,
                )?,
            };
            outputs.push(Output {
                table: TableRef::new(Layer::Bronze, table),
                date,
                frame,
                append: Some(transactions(config, &parts)),
            });
        }
    }
    for (table, frame) in [
        (LIVE_BY_COUNTRY, live.by_country_frame()?),
        (LIVE_BY_MINUTE, live.by_minute_frame()?),
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
/// offsets and clocks for the commit's info.
fn transactions(config: &StreamConfig, parts: &[&Applied]) -> (Vec<Txn>, Value) {
    let txns: Vec<Txn> = parts
        .iter()
        .map(|a| Txn {
            app_id: config.app_id(a.partition),
            version: a.batch as i64,
        })
        .collect();
    let batches: Vec<Value> = parts
        .iter()
        .map(|a| {
            batch_entry(
                a.partition,
                a.batch,
                a.source_range,
                a.internal_range,
                a.clock,
            )
        })
        .collect();
    (txns, json!({"query": config.query, "batches": batches}))
}

/// One commit of a micro-batch: an append of the stream's events or
/// rejects with the batch's transactions and offsets, or the replacement
/// of a live view's date.
pub(crate) struct Output {
    table: TableRef,
    date: NaiveDate,
    frame: DataFrame,
    append: Option<(Vec<Txn>, Value)>,
}

/// Commits a batch's outputs, each on a thread of its own: they are
/// different tables, and a commit mostly waits on storage. The first error
/// (in output order) fails the batch, before its checkpoint. Returns the
/// versions committed (none for an output a replay found already there).
pub(crate) fn commit_all(
    lake: &Lake,
    config: &StreamConfig,
    outputs: Vec<Output>,
) -> Result<Vec<Commit>> {
    let results: Vec<Result<Option<Commit>>> = std::thread::scope(|scope| {
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
    let commits: Vec<Option<Commit>> = results.into_iter().collect::<Result<_>>()?;
    Ok(commits.into_iter().flatten().collect())
}

fn commit_output(lake: &Lake, config: &StreamConfig, output: Output) -> Result<Option<Commit>> {
    let Output {
        table,
        date,
        mut frame,
        append,
    } = output;
    let name = table.to_string();
    // Every table the stream writes keeps its log as long as the stream's
    // (its commits come every second or so, replacements included).
    let mut writer = DateWriter::new(lake, table, date, &config.run_id)?.for_stream();
    let Some((txns, info)) = append else {
        writer.write_frame(&mut frame)?;
        let commit = writer
            .replace()
            .with_context(|| format!("publishing {name} for {date}"))?;
        return Ok(Some(commit));
    };
    writer = writer.with_commit_info(COMMIT_INFO_KEY, info);
    writer.write_frame(&mut frame)?;
    match writer
        .append(txns)
        .with_context(|| format!("writing {name} for {date}"))?
    {
        AppendOutcome::Committed(commit) => Ok(Some(commit)),
        AppendOutcome::Empty => Ok(None),
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

/// The dates this process wrote, compacted in the background while still
/// written and once closed.
#[derive(Default)]
pub(crate) struct Compactor {
    /// Dates this process wrote, compacted while written and once closed.
    dates_written: BTreeSet<NaiveDate>,
    /// Micro-batches since the open dates were last compacted.
    batches_since_compaction: u64,
    /// A compaction runs in the background.
    compacting: Arc<AtomicBool>,
    /// The date of each owned partition's latest batch.
    partition_dates: BTreeMap<i32, NaiveDate>,
}

impl Compactor {
    /// `partition`'s latest batch wrote `date`.
    pub(crate) fn wrote(&mut self, partition: i32, date: NaiveDate) {
        self.dates_written.insert(date);
        self.partition_dates.insert(partition, date);
    }

    /// A partition given up no longer holds its dates open.
    pub(crate) fn revoke(&mut self, partition: i32) {
        self.partition_dates.remove(&partition);
    }

    /// Compacts, in the background, the dates this process wrote that every
    /// partition it owns has moved past (each partition's dates only grow,
    /// so none of them writes such a date again), and every
    /// [`OPEN_DATE_COMPACTION_BATCHES`] micro-batches the dates still
    /// written: each batch appends a file, and a commit costs time in
    /// proportion to the files the table holds (`bench commit`), so an
    /// open date's files are kept few. One compaction at a time; one that
    /// loses a race with a batch's append commits again on the new version.
    pub(crate) fn compact(&mut self, lake: &Lake, run_id: &str) {
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
        let lake = lake.clone();
        let run_id = run_id.to_string();
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
