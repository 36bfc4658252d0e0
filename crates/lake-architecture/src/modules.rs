//! The module tree of one crate target, read the way rustc finds it: from
//! the root file (`lib.rs`, `main.rs`, a `bin/*.rs`), following each
//! `mod name;` to `name.rs` or `name/mod.rs` (or a `#[path]`), with the
//! modules declared inline (`mod tests { ... }`) kept inside their file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use syn::{Item, ItemMod};

/// A module path from the crate root: `["api", "errors"]`; the root is `[]`.
pub type ModulePath = Vec<String>;

/// One source file of the target, parsed.
pub struct SourceFile {
    /// The path as the reader was given it (relative to the crate's folder
    /// when read from disk).
    pub path: PathBuf,
    /// The module the file holds.
    pub module: ModulePath,
    pub syntax: syn::File,
}

/// Every file of one crate target, and every module (file or inline) with
/// the file that holds it.
pub struct ModuleTree {
    pub files: Vec<SourceFile>,
    /// Each module, with the index in `files` of the file holding it.
    pub modules: BTreeMap<ModulePath, usize>,
}

impl ModuleTree {
    /// Reads the target whose root file is `root`, asking `read` for each
    /// file's text (`None`: no such file).
    pub fn load(root: &Path, read: &dyn Fn(&Path) -> Option<String>) -> Result<ModuleTree> {
        let mut tree = ModuleTree {
            files: Vec::new(),
            modules: BTreeMap::new(),
        };
        let text = read(root).with_context(|| format!("{}: no such file", root.display()))?;
        tree.add_file(root.to_path_buf(), Vec::new(), true, &text, read)?;
        Ok(tree)
    }

    /// The file holding `module`, if it is one of the target's modules.
    pub fn file_of(&self, module: &[String]) -> Option<usize> {
        self.modules.get(module).copied()
    }

    fn add_file(
        &mut self,
        path: PathBuf,
        module: ModulePath,
        owns_directory: bool,
        text: &str,
        read: &dyn Fn(&Path) -> Option<String>,
    ) -> Result<()> {
        let syntax =
            syn::parse_file(text).with_context(|| format!("parsing {}", path.display()))?;
        let index = self.files.len();
        self.modules.insert(module.clone(), index);
        // `mod a;` in `x/mod.rs` (or a crate root) is `x/a.rs`; in `x.rs`, it is `x/a.rs` too.
        let directory = if owns_directory {
            path.parent().map(Path::to_path_buf).unwrap_or_default()
        } else {
            path.with_extension("")
        };
        let mut children = Vec::new();
        collect_modules(
            &syntax.items,
            &module,
            &directory,
            path.parent().unwrap_or(Path::new("")),
            &mut self.modules,
            index,
            &mut children,
        );
        self.files.push(SourceFile {
            path,
            module,
            syntax,
        });
        for child in children {
            let text = child
                .candidates
                .iter()
                .find_map(|candidate| read(candidate).map(|text| (candidate.clone(), text)));
            let Some((file, text)) = text else {
                bail!(
                    "module {} has no file (looked for {})",
                    child.module.join("::"),
                    child
                        .candidates
                        .iter()
                        .map(|c| c.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            };
            let owns = file.file_name().is_some_and(|name| name == "mod.rs") || child.has_path;
            self.add_file(file, child.module, owns, &text, read)?;
        }
        Ok(())
    }
}

/// A `mod name;` declaration still to read.
struct ChildFile {
    module: ModulePath,
    candidates: Vec<PathBuf>,
    has_path: bool,
}

/// Records the inline modules of `items` (held by file `index`) and the
/// out-of-line ones still to read.
fn collect_modules(
    items: &[Item],
    module: &ModulePath,
    directory: &Path,
    file_directory: &Path,
    modules: &mut BTreeMap<ModulePath, usize>,
    index: usize,
    children: &mut Vec<ChildFile>,
) {
    for item in items {
        let Item::Mod(declared) = item else { continue };
        let mut child = module.clone();
        child.push(declared.ident.to_string());
        match &declared.content {
            Some((_, inner)) => {
                modules.insert(child.clone(), index);
                let inner_directory = directory.join(declared.ident.to_string());
                collect_modules(
                    inner,
                    &child,
                    &inner_directory,
                    file_directory,
                    modules,
                    index,
                    children,
                );
            }
            None => {
                let name = declared.ident.to_string();
                let (candidates, has_path) = match path_attribute(declared) {
                    Some(path) => (vec![file_directory.join(path)], true),
                    None => (
                        vec![
                            directory.join(format!("{name}.rs")),
                            directory.join(&name).join("mod.rs"),
                        ],
                        false,
                    ),
                };
                children.push(ChildFile {
                    module: child,
                    candidates,
                    has_path,
                });
            }
        }
    }
}

/// The `#[path = "..."]` of a module declaration.
fn path_attribute(declared: &ItemMod) -> Option<String> {
    declared.attrs.iter().find_map(|attribute| {
        if !attribute.path().is_ident("path") {
            return None;
        }
        let syn::Meta::NameValue(pair) = &attribute.meta else {
            return None;
        };
        match &pair.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(path),
                ..
            }) => Some(path.value()),
            _ => None,
        }
    })
}

/// The names of the items each module defines (inline modules included),
/// which a glob re-export (`pub use a::*`) makes visible.
pub fn defined_items(tree: &ModuleTree) -> BTreeMap<ModulePath, BTreeSet<String>> {
    let mut defined = BTreeMap::new();
    for file in &tree.files {
        collect_items(&file.syntax.items, &file.module, &mut defined);
    }
    defined
}

fn collect_items(
    items: &[Item],
    module: &ModulePath,
    defined: &mut BTreeMap<ModulePath, BTreeSet<String>>,
) {
    let names = defined.entry(module.clone()).or_default();
    let mut inline = Vec::new();
    for item in items {
        let name = match item {
            Item::Const(item) => Some(&item.ident),
            Item::Enum(item) => Some(&item.ident),
            Item::Fn(item) => Some(&item.sig.ident),
            Item::Macro(item) => item.ident.as_ref(),
            Item::Mod(item) => {
                if let Some((_, inner)) = &item.content {
                    inline.push((item.ident.to_string(), inner));
                }
                Some(&item.ident)
            }
            Item::Static(item) => Some(&item.ident),
            Item::Struct(item) => Some(&item.ident),
            Item::Trait(item) => Some(&item.ident),
            Item::TraitAlias(item) => Some(&item.ident),
            Item::Type(item) => Some(&item.ident),
            Item::Union(item) => Some(&item.ident),
            _ => None,
        };
        if let Some(name) = name {
            names.insert(name.to_string());
        }
    }
    for (name, inner) in inline {
        let mut child = module.clone();
        child.push(name);
        collect_items(inner, &child, defined);
    }
}
