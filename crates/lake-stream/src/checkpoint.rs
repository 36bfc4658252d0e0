//! Checkpoints: one object per Kafka partition and stage under
//! `checkpoints/{query}/`, written in one put after the micro-batch's
//! effects are durable. They, not Kafka's committed offsets, say where a
//! partition resumes:
//! - `partition-{p}.ckpt`: partition `p`, with its next offsets in the
//!   source topic and in the internal topic, and its aggregation state.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow, bail};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use lake_table::{Lake, Layer};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::state::PartitionState;

/// Format 2 added the forwarded copies' positions to the aggregating state;
/// format 3 reads the source partition directly, with the internal
/// partition's offset beside it.
const CHECKPOINT: Framing = Framing {
    magic: b"LAKECKP3",
    older: &[(b"LAKECKP1", "format 1"), (b"LAKECKP2", "format 2")],
    what: "checkpoint",
};
/// The object name before the partition number.
const FILE_PREFIX: &str = "partition-";

/// The checkpoints of a streaming query.
#[derive(Clone)]
pub struct CheckpointStore {
    lake: Lake,
    query: String,
}

/// A partition's checkpoint and when it was written.
pub struct Checkpoint {
    pub state: PartitionState,
    pub written_at: DateTime<Utc>,
}

impl CheckpointStore {
    pub fn new(lake: &Lake, query: &str) -> Self {
        CheckpointStore {
            lake: lake.clone(),
            query: query.to_string(),
        }
    }

    pub fn query(&self) -> &str {
        &self.query
    }

    fn key(&self, partition: i32) -> String {
        format!("{}/{FILE_PREFIX}{partition}.ckpt", self.query)
    }

    /// Where the checkpoints live, for messages.
    pub fn location(&self) -> String {
        self.lake
            .describe(Layer::Checkpoints, &format!("{}/", self.query))
    }

    /// Writes a partition's state (one atomic put).
    pub fn save(&self, state: &PartitionState) -> Result<()> {
        self.lake.put(
            Layer::Checkpoints,
            &self.key(state.partition),
            CHECKPOINT.encode(state)?,
        )
    }

    /// A partition's last checkpoint; `None` when it has none. A checkpoint
    /// that cannot be read is an error naming the object and how to reset:
    /// never a silent restart from zero.
    pub fn load(&self, partition: i32) -> Result<Option<Checkpoint>> {
        let key = self.key(partition);
        let Some(info) = self.lake.head(Layer::Checkpoints, &key)? else {
            return Ok(None);
        };
        let Some(bytes) = self.lake.get(Layer::Checkpoints, &key)? else {
            return Ok(None);
        };
        let state: PartitionState = CHECKPOINT.decode(&bytes).map_err(|why| {
            anyhow!(
                "checkpoint {} is corrupt ({why}); refusing to start. To reprocess the topic from the \
                 beginning, stop every `lake-stream run` of query {q}, then run `lake-stream reset --query {q}` \
                 (it deletes {} and the stream's outputs)",
                self.lake.describe(Layer::Checkpoints, &key),
                self.location(),
                q = self.query
            )
        })?;
        if state.partition != partition {
            bail!(
                "checkpoint {} holds partition {} instead of {partition}",
                self.lake.describe(Layer::Checkpoints, &key),
                state.partition
            );
        }
        Ok(Some(Checkpoint {
            state,
            written_at: info.last_modified,
        }))
    }

    /// What identifies the current write of a partition's checkpoint (its
    /// version tag, else its time and size); `None` when it has none.
    pub fn version_tag(&self, partition: i32) -> Result<Option<String>> {
        Ok(self
            .lake
            .head(Layer::Checkpoints, &self.key(partition))?
            .map(|info| info.version_tag()))
    }

    /// The partitions that have a checkpoint (one listing of the query's
    /// folder, not of the closed windows below it).
    pub fn partitions(&self) -> Result<Vec<i32>> {
        Ok(self
            .lake
            .list_files(Layer::Checkpoints, &self.query)?
            .iter()
            .filter_map(|object| {
                object
                    .key
                    .rsplit('/')
                    .next()?
                    .strip_prefix(FILE_PREFIX)?
                    .strip_suffix(".ckpt")?
                    .parse::<i32>()
                    .ok()
            })
            .collect())
    }

    /// Every partition's checkpoint.
    pub fn load_all(&self) -> Result<BTreeMap<i32, Checkpoint>> {
        let mut all = BTreeMap::new();
        for partition in self.partitions()? {
            if let Some(checkpoint) = self.load(partition)? {
                all.insert(partition, checkpoint);
            }
        }
        Ok(all)
    }
}

/// How a kind of object of the checkpoints' root is framed: its magic, a
/// CRC-32 of the body, the body (postcard).
pub(crate) struct Framing {
    pub magic: &'static [u8; 8],
    /// The magics older lake-streams framed it with, refused with what
    /// they were.
    pub older: &'static [(&'static [u8; 8], &'static str)],
    /// The object's name in errors.
    pub what: &'static str,
}

impl Framing {
    pub(crate) fn encode<S: Serialize>(&self, state: &S) -> Result<Bytes> {
        let body = postcard::to_allocvec(state)
            .map_err(|err| anyhow!("encoding a {}: {err}", self.what))?;
        let mut bytes = Vec::with_capacity(body.len() + 12);
        bytes.extend_from_slice(self.magic);
        bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        bytes.extend_from_slice(&body);
        Ok(Bytes::from(bytes))
    }

    pub(crate) fn decode<S: DeserializeOwned>(
        &self,
        bytes: &[u8],
    ) -> std::result::Result<S, String> {
        for (magic, format) in self.older {
            if bytes.len() >= 8 && &bytes[..8] == *magic {
                return Err(format!("written by an older lake-stream, {format}"));
            }
        }
        if bytes.len() < 12 || &bytes[..8] != self.magic {
            return Err(format!("not a lake {}", self.what));
        }
        let crc = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        let body = &bytes[12..];
        if crc32fast::hash(body) != crc {
            return Err("checksum mismatch".into());
        }
        postcard::from_bytes(body).map_err(|err| format!("undecodable state: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Lake, CheckpointStore) {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let store = CheckpointStore::new(&lake, "q1");
        (dir, lake, store)
    }

    #[test]
    fn round_trip_and_missing() {
        let (_dir, _lake, store) = store();
        assert!(store.load(0).unwrap().is_none());
        let mut state = PartitionState::new(2);
        state.next_offset = 17;
        store.save(&state).unwrap();
        assert_eq!(store.load(2).unwrap().unwrap().state, state);
        assert_eq!(
            store
                .load_all()
                .unwrap()
                .keys()
                .copied()
                .collect::<Vec<_>>(),
            vec![2]
        );
    }

    #[test]
    fn a_corrupt_checkpoint_is_refused_with_a_way_out() {
        let (_dir, lake, store) = store();
        store.save(&PartitionState::new(0)).unwrap();
        let key = "q1/partition-0.ckpt";
        let mut bytes = lake.get(Layer::Checkpoints, key).unwrap().unwrap().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        lake.put(Layer::Checkpoints, key, Bytes::from(bytes))
            .unwrap();
        let err = store.load(0).err().unwrap().to_string();
        assert!(
            err.contains("q1/partition-0.ckpt is corrupt (checksum mismatch)"),
            "{err}"
        );
        assert!(err.contains("lake-stream reset --query q1"), "{err}");
        lake.put(Layer::Checkpoints, key, Bytes::from_static(b"garbage"))
            .unwrap();
        assert!(
            store
                .load(0)
                .err()
                .unwrap()
                .to_string()
                .contains("not a lake checkpoint")
        );
    }
}
