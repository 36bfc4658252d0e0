//! Replay: what a micro-batch records of itself in its commits, so that a
//! batch committed to some outputs before a crash, and not checkpointed,
//! is found again ([`committed_after_checkpoint`]) and replayed on exactly
//! the same messages (its recorded last offsets, [`replayed_ends`]) with
//! the same clock ([`BatchClock`]); and how a new batch takes its messages
//! (one date, [`same_date_ends`]).

use std::collections::BTreeSet;

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, NaiveDate};
use lake_table::history::find_transaction;
use lake_table::{Lake, Layer, Table, TableRef};
use serde_json::{Value, json};

use crate::config::{DLQ_TABLE, EVENTS_TABLE, StreamConfig};
use crate::message::SourceMessage;
use crate::state::TimeBounds;

/// Key of the stream's entry in a commit's info.
pub(crate) const COMMIT_INFO_KEY: &str = "lakeStream";
/// Commits searched back for a batch committed before a crash.
const REPLAY_SEARCH: usize = 10_000;

/// The last offsets of a batch in its partition's two lanes (`None`: the
/// batch took no message of that lane).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchEnds {
    pub source: Option<i64>,
    pub internal: Option<i64>,
}

/// What a batch judges future events by: its processing time, taken once
/// for the micro-batch (not per message, and not the time a replay runs),
/// and the allowed clock skew, both recorded in the batch's commits so
/// that a replay decides exactly as the first attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchClock {
    /// Microseconds since the epoch.
    pub processing_time: i64,
    /// Microseconds.
    pub max_clock_skew: i64,
}

impl BatchClock {
    /// The bounds of a batch with this clock; `None`: a batch first
    /// committed by a lake-stream with no bound on the future, replayed
    /// with none.
    pub(crate) fn bounds(clock: Option<BatchClock>, lateness_micros: i64) -> TimeBounds {
        let bounds = TimeBounds::lateness(lateness_micros);
        match clock {
            Some(clock) => bounds.not_after(clock.processing_time, clock.max_clock_skew),
            None => bounds,
        }
    }
}

/// A batch committed to some outputs before a crash, not checkpointed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Replay {
    pub batch: u64,
    /// The batch's last offsets, as its commit recorded.
    pub ends: BatchEnds,
    /// The batch's clock, as its commit recorded.
    pub clock: Option<BatchClock>,
    /// The output tables already holding it.
    pub done: BTreeSet<&'static str>,
}

/// Batch `batch` of `partition` in the outputs' logs: where it ends and
/// which outputs hold it; `None` when none does.
pub(crate) fn committed_after_checkpoint(
    lake: &Lake,
    config: &StreamConfig,
    partition: i32,
    batch: u64,
) -> Result<Option<Replay>> {
    let app_id = config.app_id(partition);
    let mut replay: Option<Replay> = None;
    for name in [EVENTS_TABLE, DLQ_TABLE] {
        let table = Table::open(lake, TableRef::new(Layer::Bronze, name))?;
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
                config.query
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

/// One batch's entry in the info of a commit holding it (under
/// [`COMMIT_INFO_KEY`], with the other batches of the commit): its first
/// and last offsets of each lane and its clock, what
/// [`recorded_batch`] reads back.
pub(crate) fn batch_entry(
    partition: i32,
    batch: u64,
    source_range: Option<(i64, i64)>,
    internal_range: Option<(i64, i64)>,
    clock: Option<BatchClock>,
) -> Value {
    json!({
        "partition": partition,
        "batch": batch,
        "firstOffset": source_range.map(|r| r.0),
        "lastOffset": source_range.map(|r| r.1),
        "firstInternalOffset": internal_range.map(|r| r.0),
        "lastInternalOffset": internal_range.map(|r| r.1),
        // Null for a replay of a batch decided with no bound.
        "processingTime": clock.and_then(|c| micros_to_rfc3339_exact(c.processing_time)),
        "maxClockSkewMicros": clock.map(|c| c.max_clock_skew),
    })
}

/// How many messages of each lane a replayed batch takes (its recorded
/// ends); `None` while a lane has not delivered up to its end.
pub(crate) fn replayed_ends(
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
pub(crate) fn same_date_ends(
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
pub(crate) fn recorded_batch(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Lane;

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
