//! The lake's roots: one per medallion layer, plus streaming checkpoints and
//! run manifests.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A root of the lake (a folder locally, a bucket or prefix on S3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    Bronze,
    Silver,
    Gold,
    Checkpoints,
    /// Run manifests (`_runs/`): lineage and history of pipeline runs.
    Runs,
}

impl Layer {
    /// Every root, in data-flow order.
    pub const ALL: [Layer; 5] = [
        Layer::Bronze,
        Layer::Silver,
        Layer::Gold,
        Layer::Checkpoints,
        Layer::Runs,
    ];

    /// The folder or bucket name of the root.
    pub fn name(self) -> &'static str {
        match self {
            Layer::Bronze => "bronze",
            Layer::Silver => "silver",
            Layer::Gold => "gold",
            Layer::Checkpoints => "checkpoints",
            Layer::Runs => "_runs",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Layer {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Layer::ALL
            .into_iter()
            .find(|layer| layer.name() == s)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown layer {s:?} (expected bronze, silver, gold, checkpoints or _runs)"
                )
            })
    }
}
