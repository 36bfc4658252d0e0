//! The stream's status object, `checkpoints/{query}/_status.json`: what a
//! streaming query has done, rewritten after each micro-batch, for the
//! serving layer and monitoring (which do not read checkpoints).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use lake_table::{Lake, Layer};

/// Counters and timings of one streaming query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamStatus {
    pub query: String,
    pub updated_at: Option<DateTime<Utc>>,
    /// Messages processed (counted + rejected) by the query, over every
    /// partition (checkpointed before this process included): the
    /// partitions the live views' rows come from.
    pub events_consumed: u64,
    /// Events counted by the query: the sum of the live views' transactions.
    pub counted: u64,
    /// Messages the query sent to the DLQ, by reason.
    pub dlq: BTreeMap<String, u64>,
    /// Messages behind the high watermarks, when known (Kafka runs).
    pub lag: Option<i64>,
    pub last_batch_duration_ms: Option<u64>,
    pub last_checkpoint_at: Option<DateTime<Utc>>,
    /// Latest event time counted, over every partition.
    pub last_event_time: Option<DateTime<Utc>>,
}

impl StreamStatus {
    fn key(query: &str) -> String {
        format!("{query}/_status.json")
    }

    pub fn save(&self, lake: &Lake) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).context("encoding the stream status")?;
        lake.put(
            Layer::Checkpoints,
            &Self::key(&self.query),
            Bytes::from(json),
        )
    }

    /// The most recently updated status of any query, `None` when no
    /// stream ever ran in this lake.
    pub fn latest(lake: &Lake) -> Result<Option<StreamStatus>> {
        let mut latest: Option<StreamStatus> = None;
        for query in lake.list_dirs(Layer::Checkpoints, "")? {
            if let Some(status) = Self::load(lake, &query)?
                && latest
                    .as_ref()
                    .is_none_or(|l| status.updated_at > l.updated_at)
            {
                latest = Some(status);
            }
        }
        Ok(latest)
    }

    /// The status of `query`, `None` when it never ran.
    pub fn load(lake: &Lake, query: &str) -> Result<Option<StreamStatus>> {
        let Some(bytes) = lake.get(Layer::Checkpoints, &Self::key(query))? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).with_context(|| {
            format!(
                "{} is not a stream status",
                lake.describe(Layer::Checkpoints, &Self::key(query))
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_status_is_the_most_recently_updated() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        assert_eq!(StreamStatus::latest(&lake).unwrap(), None);
        let at = |s: &str| Some(DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc));
        let older = StreamStatus {
            query: "a_query".into(),
            updated_at: at("2026-11-27T10:00:00Z"),
            events_consumed: 1,
            ..StreamStatus::default()
        };
        let newer = StreamStatus {
            query: "b_query".into(),
            updated_at: at("2026-11-27T11:00:00Z"),
            events_consumed: 2,
            ..StreamStatus::default()
        };
        newer.save(&lake).unwrap();
        older.save(&lake).unwrap();
        assert_eq!(StreamStatus::load(&lake, "a_query").unwrap(), Some(older));
        assert_eq!(StreamStatus::latest(&lake).unwrap(), Some(newer));
        assert_eq!(StreamStatus::load(&lake, "c_query").unwrap(), None);
    }
}
