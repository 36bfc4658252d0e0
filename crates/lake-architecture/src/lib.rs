//! The workspace's own rules, checked on its sources: ARCHITECTURE.md's
//! "never" rules ([`rules`]), and no file importing a file that imports it
//! back ([`imports`]). `cargo run -p lake-architecture` prints what breaks
//! them; its test fails on any.

pub mod imports;
pub mod manifests;
pub mod modules;
pub mod rules;
pub mod targets;

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::imports::Import;

/// Everything the checks found on one workspace.
pub struct Report {
    /// Per target, the groups of files that import each other.
    pub cycles: Vec<(String, Vec<Vec<PathBuf>>, Vec<Import>)>,
    pub rules: Vec<rules::Finding>,
}

impl Report {
    pub fn holds(&self) -> bool {
        self.cycles.is_empty() && self.rules.iter().all(|rule| rule.breaches.is_empty())
    }
}

/// The workspace this crate belongs to.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Reads every member's targets and checks the rules.
pub fn check(root: &Path) -> Result<Report> {
    let members = manifests::members(root)?;
    let targets = targets::read(root, &members)?;
    let mut cycles = Vec::new();
    for target in &targets {
        let groups = imports::cycles(&target.imports);
        if !groups.is_empty() {
            let within: Vec<Import> = target
                .imports
                .iter()
                .filter(|import| {
                    groups
                        .iter()
                        .any(|group| group.contains(&import.from) && group.contains(&import.to))
                })
                .cloned()
                .collect();
            cycles.push((target.label(), groups, within));
        }
    }
    let rules = rules::check(root, &members, &targets);
    Ok(Report { cycles, rules })
}
