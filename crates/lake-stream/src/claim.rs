//! The one stream source a lake holds.
//!
//! The stream's tables have fixed names (`bronze/ventes_temps_reel`, its
//! DLQ and the gold live views), whatever the query or the source, so two
//! sources writing one lake would mix their events in bronze while the
//! live views showed one of them. Each source keeps its checkpoints in a
//! folder of its own ([`checkpoint_folder`]): `checkpoints/{query}/` for a
//! Kafka topic, `checkpoints/embedded_{query}/` for the built-in producer.
//! A run claims the lake for its source before its first output
//! ([`claim`]): it refuses to start when another folder holds a source
//! (a claim, or checkpoints written before claims existed), or when its
//! own folder holds another topic, and otherwise writes its claim,
//! `_source.json`, in its folder. `lake-stream reset` deletes every
//! folder, claims included ([`crate::admin::reset`]).

use anyhow::{Context, Result};
use bytes::Bytes;
use lake_table::{Lake, Layer};
use serde::{Deserialize, Serialize};

use crate::checkpoint::CheckpointStore;
use crate::config::{DLQ_TABLE, EVENTS_TABLE, LIVE_BY_COUNTRY, LIVE_BY_MINUTE, QUERY};

/// The object of a folder's claim.
const CLAIM: &str = "_source.json";
/// The folder name of the built-in producer's checkpoints, before the query.
const EMBEDDED_PREFIX: &str = "embedded_";

/// What kind of source feeds a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A Kafka topic.
    Kafka,
    /// The built-in producer, in process.
    Embedded,
}

/// The folder of `query`'s checkpoints for a source of `kind`: the query's
/// name for Kafka, `embedded_{query}` for the built-in producer (kept
/// apart, so that its positions are never taken for a topic's).
pub fn checkpoint_folder(query: &str, kind: SourceKind) -> String {
    match kind {
        SourceKind::Kafka => query.to_string(),
        SourceKind::Embedded => format!("{EMBEDDED_PREFIX}{query}"),
    }
}

/// The source a folder's checkpoints were read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceClaim {
    pub kind: SourceKind,
    /// The topic read (its offsets are what the checkpoints hold).
    pub topic: String,
    /// The events' `_source`, e.g. `kafka://host:9092/ventes-temps-reel`:
    /// shown, not compared (one cluster may be reached by several
    /// addresses).
    pub source: String,
}

impl SourceClaim {
    /// The same source: the same kind and topic.
    fn same_source(&self, other: &SourceClaim) -> bool {
        self.kind == other.kind && self.topic == other.topic
    }
}

/// A checkpoint folder that holds a source.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    folder: String,
    /// `None`: checkpoints written before claims existed.
    claim: Option<SourceClaim>,
}

impl Held {
    /// The source, in words.
    fn describe(&self) -> String {
        match &self.claim {
            Some(claim) => match claim.kind {
                SourceKind::Kafka => format!("Kafka topic {} ({})", claim.topic, claim.source),
                SourceKind::Embedded => format!("the built-in producer ({})", claim.source),
            },
            None if self.folder.starts_with(EMBEDDED_PREFIX) => {
                "the built-in producer (`cargo xtask pipeline` without Kafka)".to_string()
            }
            None => format!("a Kafka topic read by query {}", self.folder),
        }
    }

    /// The query whose reset deletes it, as `reset` takes it.
    fn query(&self) -> &str {
        self.folder
            .strip_prefix(EMBEDDED_PREFIX)
            .unwrap_or(&self.folder)
    }
}

fn claim_key(folder: &str) -> String {
    format!("{folder}/{CLAIM}")
}

/// The source `folder` holds: its claim, else (checkpoints written before
/// claims) what its name says; `None` when it holds no checkpoint.
fn held(lake: &Lake, folder: &str) -> Result<Option<Held>> {
    let key = claim_key(folder);
    if let Some(bytes) = lake.get(Layer::Checkpoints, &key)? {
        let claim: SourceClaim = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} is not a stream source claim",
                lake.describe(Layer::Checkpoints, &key)
            )
        })?;
        return Ok(Some(Held {
            folder: folder.to_string(),
            claim: Some(claim),
        }));
    }
    let checkpoints = CheckpointStore::new(lake, folder).partitions()?;
    Ok((!checkpoints.is_empty()).then(|| Held {
        folder: folder.to_string(),
        claim: None,
    }))
}

/// Every checkpoint folder holding a source.
fn holders(lake: &Lake) -> Result<Vec<Held>> {
    let mut out = Vec::new();
    for folder in lake.list_dirs(Layer::Checkpoints, "")? {
        if let Some(held) = held(lake, &folder)? {
            out.push(held);
        }
    }
    Ok(out)
}

/// Claims the lake's stream tables for `wanted`, read by the checkpoints
/// of `folder`: refused when another folder holds a source, or `folder`
/// holds another one. Called before a run's first output.
pub fn claim(lake: &Lake, folder: &str, wanted: &SourceClaim) -> Result<()> {
    refuse_others(lake, folder, wanted)?;
    match held(lake, folder)? {
        Some(Held {
            claim: Some(claim), ..
        }) if !claim.same_source(wanted) => {
            return Err(refusal(
                lake,
                &Held {
                    folder: folder.to_string(),
                    claim: Some(claim),
                },
                wanted,
            ));
        }
        Some(Held { claim: Some(_), .. }) => return Ok(()),
        // New, or checkpoints from before claims: this source's from now on.
        _ => {}
    }
    let json = serde_json::to_vec_pretty(wanted).context("encoding the stream source claim")?;
    lake.put(Layer::Checkpoints, &claim_key(folder), Bytes::from(json))
        .with_context(|| format!("claiming the lake's stream tables for {}", wanted.source))?;
    // Two sources claiming an empty lake at once both see the other's
    // claim now and both refuse, rather than mix.
    refuse_others(lake, folder, wanted)
}

fn refuse_others(lake: &Lake, folder: &str, wanted: &SourceClaim) -> Result<()> {
    if let Some(other) = holders(lake)?.into_iter().find(|h| h.folder != folder) {
        return Err(refusal(lake, &other, wanted));
    }
    Ok(())
}

/// The error of a run refused because `held` holds the lake.
fn refusal(lake: &Lake, held: &Held, wanted: &SourceClaim) -> anyhow::Error {
    let query = held.query();
    let flag = if query == QUERY {
        String::new()
    } else {
        format!(" --query {query}")
    };
    anyhow::anyhow!(
        "this lake's stream tables hold the events of {} (checkpoints in {}), not of {}: a lake \
         holds one stream source. To start over with {}, stop every `lake-stream run` on this \
         lake, then run `lake-stream reset{flag} --yes` with the same --lake (it deletes every \
         source's checkpoints and bronze/{EVENTS_TABLE}, bronze/{DLQ_TABLE}, gold/{LIVE_BY_COUNTRY} \
         and gold/{LIVE_BY_MINUTE})",
        held.describe(),
        lake.describe(Layer::Checkpoints, &format!("{}/", held.folder)),
        wanted.source,
        wanted.source,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TOPIC;
    use crate::state::PartitionState;

    const EMBEDDED_QUERY: &str = "embedded_ventes_temps_reel";

    fn kafka(topic: &str, brokers: &str) -> SourceClaim {
        SourceClaim {
            kind: SourceKind::Kafka,
            topic: topic.into(),
            source: format!("kafka://{brokers}/{topic}"),
        }
    }

    fn embedded() -> SourceClaim {
        SourceClaim {
            kind: SourceKind::Embedded,
            topic: TOPIC.into(),
            source: format!("embedded://producer/{TOPIC}"),
        }
    }

    #[test]
    fn the_embedded_folder_is_the_pipelines() {
        assert_eq!(
            checkpoint_folder(QUERY, SourceKind::Embedded),
            EMBEDDED_QUERY
        );
        assert_eq!(checkpoint_folder(QUERY, SourceKind::Kafka), QUERY);
    }

    #[test]
    fn one_source_per_lake() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        claim(&lake, EMBEDDED_QUERY, &embedded()).unwrap();
        // Again: the same source.
        claim(&lake, EMBEDDED_QUERY, &embedded()).unwrap();
        let err = claim(&lake, QUERY, &kafka(TOPIC, "h:9092")).unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains("the built-in producer"), "{message}");
        assert!(message.contains("lake-stream reset --yes"), "{message}");
        assert!(message.contains("embedded_ventes_temps_reel/"), "{message}");
        // Refused before writing anything of its own.
        assert_eq!(held(&lake, QUERY).unwrap(), None);
    }

    #[test]
    fn a_topic_is_its_folders_whatever_the_broker_address() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        claim(&lake, QUERY, &kafka(TOPIC, "localhost:9092")).unwrap();
        claim(&lake, QUERY, &kafka(TOPIC, "127.0.0.1:9092")).unwrap();
        let err = claim(&lake, QUERY, &kafka("other", "localhost:9092")).unwrap_err();
        assert!(
            format!("{err:#}").contains("Kafka topic ventes-temps-reel"),
            "{err:#}"
        );
    }

    #[test]
    fn checkpoints_from_before_claims_hold_the_lake() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        CheckpointStore::new(&lake, EMBEDDED_QUERY)
            .save(&PartitionState::new(0))
            .unwrap();
        let err = claim(&lake, QUERY, &kafka(TOPIC, "h:9092")).unwrap_err();
        assert!(
            format!("{err:#}").contains("the built-in producer"),
            "{err:#}"
        );
        // Its own folder's unclaimed checkpoints are claimed by the next run.
        claim(&lake, EMBEDDED_QUERY, &embedded()).unwrap();
        assert_eq!(
            held(&lake, EMBEDDED_QUERY).unwrap().and_then(|h| h.claim),
            Some(embedded())
        );
    }
}
