//! `lake-stream status` and `lake-stream reset`.

use std::fmt::Write;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use lake_table::{Lake, Layer};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::checkpoint::CheckpointStore;
use crate::config::{DLQ_TABLE, EVENTS_TABLE, KafkaSettings, LIVE_BY_COUNTRY, LIVE_BY_MINUTE};
use crate::state::micros_to_rfc3339;

/// One partition's position.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionStatus {
    pub partition: i32,
    pub high_watermark: i64,
    pub committed: Option<i64>,
    pub checkpointed: Option<i64>,
    /// Messages not yet checkpointed.
    pub lag: i64,
    /// The event-time watermark the partition's checkpoint holds: its
    /// latest event time counted less the allowed lateness (events older
    /// than it are late); `None` before its first event.
    pub watermark: Option<DateTime<Utc>>,
    pub checkpoint_age: Option<Duration>,
}

/// Positions of every partition of the source topic for the query: how far
/// the query has checkpointed each, and its watermark for an allowed
/// lateness of `lateness` (the query's, which checkpoints do not hold).
pub fn status(
    lake: &Lake,
    settings: &KafkaSettings,
    query: &str,
    lateness: Duration,
) -> Result<Vec<PartitionStatus>> {
    let lateness_micros = i64::try_from(lateness.as_micros()).unwrap_or(i64::MAX);
    let consumer: BaseConsumer = settings
        .client_config()
        .create()
        .context("creating a Kafka client")?;
    let partitions = settings.check_topic(&consumer)?;
    let checkpoints = CheckpointStore::new(lake, query).load_all()?;
    let mut tpl = TopicPartitionList::new();
    for partition in &partitions {
        tpl.add_partition(&settings.topic, *partition);
    }
    let committed = consumer
        .committed_offsets(tpl, settings.connect_timeout)
        .context("reading the group's committed offsets")?;
    let mut out = Vec::new();
    for partition in partitions {
        let (_, high) = consumer
            .fetch_watermarks(&settings.topic, partition, settings.connect_timeout)
            .with_context(|| format!("reading the watermarks of partition {partition}"))?;
        let committed = committed
            .find_partition(&settings.topic, partition)
            .and_then(|e| match e.offset() {
                Offset::Offset(n) => Some(n),
                _ => None,
            });
        let checkpoint = checkpoints.get(&partition);
        let checkpointed = checkpoint.map(|c| c.state.next_offset);
        out.push(PartitionStatus {
            partition,
            high_watermark: high,
            committed,
            checkpointed,
            lag: high - checkpointed.unwrap_or(0),
            watermark: checkpoint
                .and_then(|c| c.state.watermark(lateness_micros))
                .and_then(DateTime::from_timestamp_micros),
            checkpoint_age: checkpoint
                .map(|c| (Utc::now() - c.written_at).to_std().unwrap_or_default()),
        });
    }
    Ok(out)
}

/// The status as a table.
pub fn render(statuses: &[PartitionStatus]) -> String {
    let mut out = String::new();
    let show = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
    let _ = writeln!(
        out,
        "{:>9} {:>14} {:>12} {:>14} {:>10} {:>32} {:>16}",
        "partition",
        "high watermark",
        "committed",
        "checkpointed",
        "lag",
        "watermark",
        "last checkpoint"
    );
    for s in statuses {
        let age = s.checkpoint_age.map_or("never".to_string(), |a| {
            format!("{:.1} s ago", a.as_secs_f64())
        });
        // As the DLQ's errors write event times.
        let watermark = s
            .watermark
            .map_or("-".to_string(), |w| micros_to_rfc3339(w.timestamp_micros()));
        let _ = writeln!(
            out,
            "{:>9} {:>14} {:>12} {:>14} {:>10} {:>32} {:>16}",
            s.partition,
            s.high_watermark,
            show(s.committed),
            show(s.checkpointed),
            s.lag,
            watermark,
            age
        );
    }
    let total: i64 = statuses.iter().map(|s| s.lag).sum();
    let _ = writeln!(out, "total lag: {total}");
    out
}

/// Deletes the query's checkpoints and everything the stream wrote, so it
/// starts over from the beginning of the topic.
///
/// The internal topic keeps what was forwarded: the next run aggregates it
/// again from its start, and skips the copies forwarded again (their
/// source offsets are already passed). If the
/// internal topic's retention has removed its oldest messages, delete the
/// topic too before the next run, or those source offsets are skipped.
pub fn reset(lake: &Lake, query: &str) -> Result<u64> {
    let mut deleted = 0u64;
    for (layer, prefix) in [
        (Layer::Checkpoints, query),
        (Layer::Bronze, EVENTS_TABLE),
        (Layer::Bronze, DLQ_TABLE),
        (Layer::Gold, LIVE_BY_COUNTRY),
        (Layer::Gold, LIVE_BY_MINUTE),
    ] {
        for object in lake.list(layer, prefix)? {
            lake.delete(layer, &object.key)?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_each_partitions_watermark() {
        let at = |s: &str| Some(DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc));
        let row = |partition, watermark| PartitionStatus {
            partition,
            high_watermark: 10,
            committed: Some(10),
            checkpointed: Some(10),
            lag: 0,
            watermark,
            checkpoint_age: Some(Duration::from_millis(1500)),
        };
        let table = render(&[row(0, at("2026-12-07T19:30:00.25Z")), row(1, None)]);
        let lines: Vec<Vec<&str>> = table
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(lines[0][6], "watermark", "{table}");
        assert_eq!(
            lines[1][..7],
            [
                "0",
                "10",
                "10",
                "10",
                "0",
                "2026-12-07T19:30:00.250+00:00",
                "1.5"
            ],
            "{table}"
        );
        assert_eq!(lines[2][5], "-", "{table}");
    }
}
