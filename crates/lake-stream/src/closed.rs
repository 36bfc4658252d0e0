//! Closed windows: the 1-minute windows a partition of the aggregating
//! stage has closed (their end passed its watermark), kept out of its
//! checkpoint so that the checkpoint stays bounded. One object per
//! partition and processing date, `checkpoints/{query}/closed/
//! partition-{p}/{date}.win`, written after the batch's outputs and before
//! its checkpoint; a window closes once, so a replayed batch writes the
//! same totals again. Framed as the checkpoints are, with a magic of their
//! own.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow};
use chrono::NaiveDate;
use lake_table::{Lake, Layer};

use crate::checkpoint::Framing;
use crate::state::Totals;

/// Closed windows were framed with the checkpoints' magic before they had
/// their own: such an object is refused as written by an older lake-stream
/// (reset the query), not read.
const CLOSED_WINDOWS: Framing = Framing {
    magic: b"LAKEWIN1",
    older: &[(b"LAKECKP3", "with the checkpoints' magic")],
    what: "closed-window file",
};

/// (window start in microseconds, country) -> totals.
pub type Windows = BTreeMap<(i64, String), Totals>;

/// The closed windows of one streaming query.
#[derive(Clone)]
pub struct ClosedWindowStore {
    lake: Lake,
    query: String,
}

impl ClosedWindowStore {
    pub fn new(lake: &Lake, query: &str) -> Self {
        ClosedWindowStore {
            lake: lake.clone(),
            query: query.to_string(),
        }
    }

    fn key(&self, partition: i32, date: NaiveDate) -> String {
        format!("{}/closed/partition-{partition}/{date}.win", self.query)
    }

    /// The windows `partition` closed on `date` (none when it has not).
    pub fn load(&self, partition: i32, date: NaiveDate) -> Result<Windows> {
        let key = self.key(partition, date);
        let Some(bytes) = self.lake.get(Layer::Checkpoints, &key)? else {
            return Ok(Windows::new());
        };
        CLOSED_WINDOWS.decode(&bytes).map_err(|why| {
            anyhow!(
                "closed windows {} are corrupt ({why}); reset the query (`lake-stream reset --query {}`) \
                 to start over",
                self.lake.describe(Layer::Checkpoints, &key),
                self.query
            )
        })
    }

    pub fn save(&self, partition: i32, date: NaiveDate, windows: &Windows) -> Result<()> {
        self.lake.put(
            Layer::Checkpoints,
            &self.key(partition, date),
            CLOSED_WINDOWS.encode(windows)?,
        )
    }

    /// What identifies the current write of an object; `None` when absent.
    pub fn version_tag(&self, partition: i32, date: NaiveDate) -> Result<Option<String>> {
        Ok(self
            .lake
            .head(Layer::Checkpoints, &self.key(partition, date))?
            .map(|info| info.version_tag()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_per_partition_and_date() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let store = ClosedWindowStore::new(&lake, "q");
        let date = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        assert!(store.load(0, date).unwrap().is_empty());
        assert!(store.version_tag(0, date).unwrap().is_none());
        let mut windows = Windows::new();
        windows.insert((60_000_000, "France".into()), Totals::default());
        store.save(0, date, &windows).unwrap();
        assert_eq!(store.load(0, date).unwrap(), windows);
        assert!(store.load(1, date).unwrap().is_empty());
        assert!(store.load(0, date.succ_opt().unwrap()).unwrap().is_empty());
        // Not mistaken for a partition's checkpoint.
        let checkpoints = crate::checkpoint::CheckpointStore::new(&lake, "q");
        assert!(checkpoints.partitions().unwrap().is_empty());
    }

    #[test]
    fn closed_windows_have_a_magic_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let store = ClosedWindowStore::new(&lake, "q");
        let date = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        store.save(0, date, &Windows::new()).unwrap();
        let key = "q/closed/partition-0/2026-11-26.win";
        let mut bytes = lake.get(Layer::Checkpoints, key).unwrap().unwrap().to_vec();
        assert_eq!(&bytes[..8], b"LAKEWIN1");
        // Framed with the checkpoints' magic, as older lake-streams did:
        // refused, with the way out.
        bytes[..8].copy_from_slice(b"LAKECKP3");
        lake.put(Layer::Checkpoints, key, bytes.into()).unwrap();
        let err = store.load(0, date).unwrap_err().to_string();
        assert!(err.contains("written by an older lake-stream"), "{err}");
        assert!(err.contains("lake-stream reset --query q"), "{err}");
    }
}
