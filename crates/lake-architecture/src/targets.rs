//! The workspace's crate targets (each library and binary), read and with
//! their file imports.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::imports::{self, Import};
use crate::manifests::Member;
use crate::modules::ModuleTree;

/// One crate target (a library or a binary) of a member, read.
pub struct Target {
    pub member: String,
    /// The member's folder.
    pub directory: PathBuf,
    /// The root file, relative to the member's folder.
    pub root: PathBuf,
    pub is_library: bool,
    pub tree: ModuleTree,
    pub imports: Vec<Import>,
}

impl Target {
    /// "lake-serve (lib)", "lake-serve (src/main.rs)".
    pub fn label(&self) -> String {
        if self.is_library {
            format!("{} (lib)", self.member)
        } else {
            format!("{} ({})", self.member, self.root.display())
        }
    }
}

/// Reads every target of every member.
pub fn read(root: &Path, members: &[Member]) -> Result<Vec<Target>> {
    let mut targets = Vec::new();
    for member in members {
        let directory = root.join(&member.directory);
        for target_root in &member.targets {
            let read = |path: &Path| fs::read_to_string(directory.join(path)).ok();
            let tree = ModuleTree::load(target_root, &read)?;
            let imports = imports::file_imports(&tree);
            let is_library =
                !(target_root.ends_with("main.rs") || target_root.starts_with("src/bin"));
            targets.push(Target {
                member: member.name.clone(),
                directory: directory.clone(),
                root: target_root.clone(),
                is_library,
                tree,
                imports,
            });
        }
    }
    Ok(targets)
}
