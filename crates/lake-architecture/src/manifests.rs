//! The workspace's members as their `Cargo.toml` describe them: name,
//! folder, dependencies by kind, and the root file of each target.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use toml_edit::{DocumentMut, Item, TableLike};

/// One member of the workspace.
pub struct Member {
    pub name: String,
    /// The member's folder, relative to the workspace root.
    pub directory: PathBuf,
    /// `[dependencies]` (target-specific ones included), by package name.
    pub dependencies: BTreeSet<String>,
    /// `[dev-dependencies]`, by package name.
    pub dev_dependencies: BTreeSet<String>,
    /// The root file of the library and of each binary, relative to the
    /// member's folder (tests, benches and examples are not read).
    pub targets: Vec<PathBuf>,
}

/// The workspace's members, in the order the root manifest lists them.
pub fn members(root: &Path) -> Result<Vec<Member>> {
    let manifest = read_manifest(&root.join("Cargo.toml"))?;
    let listed = manifest
        .get("workspace")
        .and_then(|workspace| workspace.get("members"))
        .and_then(Item::as_array)
        .context("Cargo.toml: no [workspace] members")?;
    listed
        .iter()
        .filter_map(|member| member.as_str())
        .map(|directory| member(root, Path::new(directory)))
        .collect()
}

fn member(root: &Path, directory: &Path) -> Result<Member> {
    let path = root.join(directory).join("Cargo.toml");
    let manifest = read_manifest(&path)?;
    let name = manifest
        .get("package")
        .and_then(|package| package.get("name"))
        .and_then(Item::as_str)
        .with_context(|| format!("{}: no package name", path.display()))?
        .to_string();
    let mut dependencies = BTreeSet::new();
    let mut dev_dependencies = BTreeSet::new();
    add_dependencies(manifest.get("dependencies"), &mut dependencies);
    add_dependencies(manifest.get("dev-dependencies"), &mut dev_dependencies);
    if let Some(targets) = manifest.get("target").and_then(Item::as_table_like) {
        for (_, target) in targets.iter() {
            add_dependencies(target.get("dependencies"), &mut dependencies);
            add_dependencies(target.get("dev-dependencies"), &mut dev_dependencies);
        }
    }
    Ok(Member {
        name,
        directory: directory.to_path_buf(),
        dependencies,
        dev_dependencies,
        targets: targets(&root.join(directory), &manifest),
    })
}

/// The package names of a dependency table (`alias = { package = "x" }` is `x`).
fn add_dependencies(table: Option<&Item>, out: &mut BTreeSet<String>) {
    let Some(table) = table.and_then(Item::as_table_like) else {
        return;
    };
    for (key, value) in table.iter() {
        let package = value
            .as_table_like()
            .and_then(|spec: &dyn TableLike| spec.get("package"))
            .and_then(Item::as_str)
            .unwrap_or(key);
        out.insert(package.to_string());
    }
}

/// The library's and binaries' root files that exist.
fn targets(directory: &Path, manifest: &DocumentMut) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    let library = manifest
        .get("lib")
        .and_then(|lib| lib.get("path"))
        .and_then(Item::as_str)
        .unwrap_or("src/lib.rs");
    roots.push(PathBuf::from(library));
    roots.push(PathBuf::from("src/main.rs"));
    if let Some(binaries) = manifest.get("bin").and_then(Item::as_array_of_tables) {
        roots.extend(
            binaries
                .iter()
                .filter_map(|binary| binary.get("path").and_then(Item::as_str))
                .map(PathBuf::from),
        );
    }
    if let Ok(entries) = fs::read_dir(directory.join("src/bin")) {
        roots.extend(
            entries
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
                .filter_map(|path| path.strip_prefix(directory).ok().map(Path::to_path_buf)),
        );
    }
    let mut unique = Vec::new();
    for root in roots {
        if directory.join(&root).is_file() && !unique.contains(&root) {
            unique.push(root);
        }
    }
    unique
}

fn read_manifest(path: &Path) -> Result<DocumentMut> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.parse::<DocumentMut>()
        .with_context(|| format!("parsing {}", path.display()))
}
