//! `lake-stream status` and `lake-stream reset`.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use lake_table::{Lake, Layer};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::checkpoint::CheckpointStore;
use crate::claim::{SourceKind, checkpoint_folder};
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

/// What [`reset`] deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResetReport {
    /// Objects deleted, data files and logs included.
    pub objects: u64,
    /// The checkpoint folders deleted (`checkpoints/{folder}/`).
    pub folders: Vec<String>,
}

/// Deletes the stream's state so that it starts over from the beginning of
/// its source: every checkpoint folder of the lake (the query's for each
/// source, `{query}` for Kafka and `embedded_{query}` for the built-in
/// producer, and any other query's: every query writes the same tables),
/// with their source claims, then the stream's tables (bronze events, DLQ,
/// live views). A checkpoint left behind would resume a source past events
/// its tables no longer hold.
///
/// The internal topic keeps what was forwarded: the next run aggregates it
/// again from its start, and skips the copies forwarded again (their
/// source offsets are already passed). If the
/// internal topic's retention has removed its oldest messages, delete the
/// topic too before the next run, or those source offsets are skipped.
pub fn reset(lake: &Lake, query: &str) -> Result<ResetReport> {
    let mut folders: BTreeSet<String> = lake
        .list_dirs(Layer::Checkpoints, "")?
        .into_iter()
        .collect();
    folders.insert(checkpoint_folder(query, SourceKind::Kafka));
    folders.insert(checkpoint_folder(query, SourceKind::Embedded));
    let mut report = ResetReport::default();
    let checkpoints = folders.iter().map(|f| (Layer::Checkpoints, f.as_str()));
    let tables = [
        (Layer::Bronze, EVENTS_TABLE),
        (Layer::Bronze, DLQ_TABLE),
        (Layer::Gold, LIVE_BY_COUNTRY),
        (Layer::Gold, LIVE_BY_MINUTE),
    ];
    for (layer, prefix) in checkpoints.chain(tables) {
        let objects = lake.list(layer, prefix)?;
        if layer == Layer::Checkpoints && !objects.is_empty() {
            report.folders.push(prefix.to_string());
        }
        for object in objects {
            lake.delete(layer, &object.key)
                .with_context(|| format!("resetting query {query}"))?;
            report.objects += 1;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_deletes_every_sources_checkpoints_and_the_tables() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let put = |layer, key: &str| {
            lake.put(layer, key, bytes::Bytes::from_static(b"x"))
                .unwrap()
        };
        put(Layer::Checkpoints, "ventes_temps_reel/partition-0.ckpt");
        put(
            Layer::Checkpoints,
            "embedded_ventes_temps_reel/partition-3.ckpt",
        );
        put(
            Layer::Checkpoints,
            "embedded_ventes_temps_reel/_source.json",
        );
        put(Layer::Checkpoints, "another_query/_status.json");
        put(
            Layer::Bronze,
            "ventes_temps_reel/_delta_log/00000000000000000000.json",
        );
        put(Layer::Bronze, "orders/_delta_log/00000000000000000000.json");
        let report = reset(&lake, "ventes_temps_reel").unwrap();
        assert_eq!(
            report.folders,
            [
                "another_query",
                "embedded_ventes_temps_reel",
                "ventes_temps_reel"
            ]
        );
        assert_eq!(report.objects, 5);
        assert!(lake.list(Layer::Checkpoints, "").unwrap().is_empty());
        // The batch tables stay.
        assert_eq!(lake.list(Layer::Bronze, "orders").unwrap().len(), 1);
    }

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
