//! `lake-stream status` and `lake-stream reset`.

use std::fmt::Write;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::Utc;
use lake_table::{Lake, Layer};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::checkpoint::CheckpointStore;
use crate::processor::{DLQ_TABLE, EVENTS_TABLE, LIVE_BY_COUNTRY, LIVE_BY_MINUTE};
use crate::run::KafkaSettings;

/// One partition's position.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionStatus {
    pub partition: i32,
    pub high_watermark: i64,
    pub committed: Option<i64>,
    pub checkpointed: Option<i64>,
    /// Messages not yet checkpointed.
    pub lag: i64,
    pub checkpoint_age: Option<Duration>,
}

/// Positions of every partition of the source topic for the query: how far
/// the query has checkpointed each.
pub fn status(lake: &Lake, settings: &KafkaSettings, query: &str) -> Result<Vec<PartitionStatus>> {
    let consumer: BaseConsumer = settings
        .client_config()
        .create()
        .context("creating a Kafka client")?;
    let partitions = settings.check_topic(&consumer)?;
    let checkpoints =
        CheckpointStore::<crate::state::PartitionState>::new(lake, query).load_all()?;
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
        "{:>9} {:>14} {:>12} {:>14} {:>10} {:>16}",
        "partition", "high watermark", "committed", "checkpointed", "lag", "last checkpoint"
    );
    for s in statuses {
        let age = s.checkpoint_age.map_or("never".to_string(), |a| {
            format!("{:.1} s ago", a.as_secs_f64())
        });
        let _ = writeln!(
            out,
            "{:>9} {:>14} {:>12} {:>14} {:>10} {:>16}",
            s.partition,
            s.high_watermark,
            show(s.committed),
            show(s.checkpointed),
            s.lag,
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
