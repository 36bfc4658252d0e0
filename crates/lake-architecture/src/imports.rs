//! Which file of a crate target imports which: every path a file names
//! inside its own crate (`use crate::a::B`, `super::c()`, `child::D`, in
//! code and in macro arguments), resolved to the file that defines the
//! item, looking through re-exports (`pub use`). The files that reach each
//! other through these imports form the target's import cycles.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;
use syn::{Item, UseTree};

use crate::modules::{ModulePath, ModuleTree, defined_items};

/// One file importing another: the file that names the item, the file
/// that defines it, and the first path that did so (for the report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    pub from: PathBuf,
    pub to: PathBuf,
    pub example: String,
}

/// The imports between the files of one target: at most one per
/// (importer, imported) pair, with the first path seen.
pub fn file_imports(tree: &ModuleTree) -> Vec<Import> {
    let resolver = Resolver::new(tree);
    let mut imports: BTreeMap<(usize, usize), String> = BTreeMap::new();
    for (index, file) in tree.files.iter().enumerate() {
        let mut collector = PathCollector {
            tree,
            module: file.module.clone(),
            paths: Vec::new(),
        };
        collector.visit_file(&file.syntax);
        for path in collector.paths {
            if let Some(target) = resolver.file_defining(&path.segments, 0)
                && target != index
            {
                imports.entry((index, target)).or_insert(path.text);
            }
        }
    }
    imports
        .into_iter()
        .map(|((from, to), example)| Import {
            from: tree.files[from].path.clone(),
            to: tree.files[to].path.clone(),
            example,
        })
        .collect()
}

/// The groups of two or more files that import each other, directly or
/// through others (the strongly connected components of the import graph),
/// each sorted, the groups in order.
pub fn cycles(imports: &[Import]) -> Vec<Vec<PathBuf>> {
    let mut next: BTreeMap<&PathBuf, BTreeSet<&PathBuf>> = BTreeMap::new();
    for import in imports {
        next.entry(&import.from).or_default().insert(&import.to);
        next.entry(&import.to).or_default();
    }
    let reachable = |start: &PathBuf| {
        let mut seen: BTreeSet<&PathBuf> = BTreeSet::new();
        let mut stack = vec![start];
        while let Some(file) = stack.pop() {
            for target in next.get(file).into_iter().flatten() {
                if seen.insert(target) {
                    stack.push(target);
                }
            }
        }
        seen
    };
    let reach: BTreeMap<&PathBuf, BTreeSet<&PathBuf>> =
        next.keys().map(|file| (*file, reachable(file))).collect();
    let mut grouped: BTreeSet<&PathBuf> = BTreeSet::new();
    let mut groups = Vec::new();
    for (file, reached) in &reach {
        if grouped.contains(file) {
            continue;
        }
        let group: Vec<PathBuf> = reached
            .iter()
            .filter(|other| reach[*other].contains(file))
            .map(|other| (*other).clone())
            .collect();
        if group.len() > 1 {
            grouped.extend(reached.iter().filter(|other| reach[*other].contains(file)));
            groups.push(group);
        }
    }
    groups
}

/// A path naming something of the crate, from its root.
struct CratePath {
    segments: Vec<String>,
    text: String,
}

/// Collects the crate paths a file names, tracking the inline module it is
/// in (`super` inside `mod tests {}` is the file's own module).
struct PathCollector<'a> {
    tree: &'a ModuleTree,
    module: ModulePath,
    paths: Vec<CratePath>,
}

impl PathCollector<'_> {
    /// `segments` as written in module `self.module`, from the crate root;
    /// `None` for a path outside the crate or a local name.
    fn absolute(&self, segments: &[String]) -> Option<Vec<String>> {
        let first = segments.first()?;
        match first.as_str() {
            "crate" => Some(segments[1..].to_vec()),
            "self" => Some([self.module.clone(), segments[1..].to_vec()].concat()),
            "super" => {
                let mut module = self.module.clone();
                let mut rest = segments;
                while rest.first().is_some_and(|s| s == "super") {
                    module.pop()?;
                    rest = &rest[1..];
                }
                Some([module, rest.to_vec()].concat())
            }
            _ => {
                let mut child = self.module.clone();
                child.push(first.clone());
                self.tree
                    .file_of(&child)
                    .is_some()
                    .then(|| [self.module.clone(), segments.to_vec()].concat())
            }
        }
    }

    fn record(&mut self, segments: Vec<String>) {
        if let Some(absolute) = self.absolute(&segments) {
            self.paths.push(CratePath {
                segments: absolute,
                text: segments.join("::"),
            });
        }
    }

    /// The paths of a token stream (a macro's arguments): every run of
    /// `ident :: ident ...` starting with `crate`, `self` or `super`.
    fn record_tokens(&mut self, tokens: TokenStream) {
        let mut run: Vec<String> = Vec::new();
        let mut colons = 0;
        for token in tokens {
            match token {
                TokenTree::Ident(ident) => {
                    if colons != 2 && run.len() > 1 {
                        self.record_token_run(std::mem::take(&mut run));
                    }
                    if colons != 2 {
                        run.clear();
                    }
                    run.push(ident.to_string());
                    colons = 0;
                }
                TokenTree::Punct(punct) if punct.as_char() == ':' && !run.is_empty() => {
                    colons += 1;
                }
                TokenTree::Group(group) => {
                    self.record_token_run(std::mem::take(&mut run));
                    colons = 0;
                    self.record_tokens(group.stream());
                }
                _ => {
                    self.record_token_run(std::mem::take(&mut run));
                    colons = 0;
                }
            }
        }
        self.record_token_run(run);
    }

    fn record_token_run(&mut self, run: Vec<String>) {
        if run.len() > 1 && matches!(run[0].as_str(), "crate" | "self" | "super") {
            self.record(run);
        }
    }
}

impl<'ast> Visit<'ast> for PathCollector<'_> {
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if let Some((_, items)) = &item.content {
            self.module.push(item.ident.to_string());
            for inner in items {
                self.visit_item(inner);
            }
            self.module.pop();
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        if item.leading_colon.is_some() {
            return;
        }
        let mut paths = Vec::new();
        flatten_use_tree(&item.tree, &mut paths);
        for path in paths {
            self.record(path);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.leading_colon.is_none() && path.segments.len() > 1 {
            let segments = path
                .segments
                .iter()
                .map(|segment| segment.ident.to_string())
                .collect();
            self.record(segments);
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.visit_path(&mac.path);
        self.record_tokens(mac.tokens.clone());
    }
}

/// The paths a use tree imports (`a::{b, c::*}` is `a::b` and `a::c`).
pub fn flatten_use_tree(tree: &UseTree, out: &mut Vec<Vec<String>>) {
    flatten_use(tree, Vec::new(), out);
}

fn flatten_use(tree: &UseTree, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    match tree {
        UseTree::Path(path) => {
            let mut prefix = prefix;
            prefix.push(path.ident.to_string());
            flatten_use(&path.tree, prefix, out);
        }
        UseTree::Name(name) => {
            let mut path = prefix;
            if name.ident != "self" {
                path.push(name.ident.to_string());
            }
            out.push(path);
        }
        UseTree::Rename(rename) => {
            let mut path = prefix;
            if rename.ident != "self" {
                path.push(rename.ident.to_string());
            }
            out.push(path);
        }
        UseTree::Glob(_) => out.push(prefix),
        UseTree::Group(group) => {
            for item in &group.items {
                flatten_use(item, prefix.clone(), out);
            }
        }
    }
}

/// A module's re-exports: the name it exports and the path it names (from
/// the crate root), and the modules whose items it exports by glob.
#[derive(Default)]
struct Reexports {
    named: BTreeMap<String, Vec<String>>,
    globs: Vec<Vec<String>>,
}

/// Finds the file defining the item a crate path names.
struct Resolver<'a> {
    tree: &'a ModuleTree,
    reexports: BTreeMap<ModulePath, Reexports>,
    defined: BTreeMap<ModulePath, BTreeSet<String>>,
}

impl<'a> Resolver<'a> {
    fn new(tree: &'a ModuleTree) -> Self {
        let mut reexports = BTreeMap::new();
        for file in &tree.files {
            collect_reexports(tree, &file.syntax.items, &file.module, &mut reexports);
        }
        Resolver {
            tree,
            reexports,
            defined: defined_items(tree),
        }
    }

    /// The file of the item `segments` names: the deepest module on the
    /// path, or, when the next name is a re-export of that module, the file
    /// of what it re-exports. `depth` stops re-export loops.
    fn file_defining(&self, segments: &[String], depth: usize) -> Option<usize> {
        if depth > 16 {
            return None;
        }
        let mut module: Vec<String> = Vec::new();
        for (position, segment) in segments.iter().enumerate() {
            let mut child = module.clone();
            child.push(segment.clone());
            if self.tree.file_of(&child).is_some() {
                module = child;
                continue;
            }
            if let Some(target) = self.reexported(&module, segment) {
                let full = [target, segments[position + 1..].to_vec()].concat();
                return self
                    .file_defining(&full, depth + 1)
                    .or_else(|| self.tree.file_of(&module));
            }
            break;
        }
        self.tree.file_of(&module)
    }

    /// The crate path `module` re-exports as `name`, if it does (a name
    /// re-exported from another crate is not: the path stops at `module`).
    fn reexported(&self, module: &[String], name: &str) -> Option<Vec<String>> {
        let exports = self.reexports.get(module)?;
        if let Some(target) = exports.named.get(name) {
            return Some(target.clone());
        }
        exports.globs.iter().find_map(|glob| {
            let defines = self
                .defined
                .get(glob)
                .is_some_and(|names| names.contains(name));
            let reexports = self
                .reexports
                .get(glob)
                .is_some_and(|inner| inner.named.contains_key(name));
            (defines || reexports).then(|| [glob.clone(), vec![name.to_string()]].concat())
        })
    }
}

/// The `pub use` (any visibility but private) of `items`, held by `module`.
fn collect_reexports(
    tree: &ModuleTree,
    items: &[Item],
    module: &ModulePath,
    out: &mut BTreeMap<ModulePath, Reexports>,
) {
    for item in items {
        match item {
            Item::Use(used) if !matches!(used.vis, syn::Visibility::Inherited) => {
                if used.leading_colon.is_some() {
                    continue;
                }
                let collector = PathCollector {
                    tree,
                    module: module.clone(),
                    paths: Vec::new(),
                };
                let mut entries = Vec::new();
                exported_names(&used.tree, Vec::new(), &mut entries);
                let exports = out.entry(module.clone()).or_default();
                for (name, path) in entries {
                    let Some(absolute) = collector.absolute(&path) else {
                        continue;
                    };
                    match name {
                        Some(name) => {
                            exports.named.insert(name, absolute);
                        }
                        None => exports.globs.push(absolute),
                    }
                }
            }
            Item::Mod(declared) => {
                if let Some((_, inner)) = &declared.content {
                    let mut child = module.clone();
                    child.push(declared.ident.to_string());
                    collect_reexports(tree, inner, &child, out);
                }
            }
            _ => {}
        }
    }
}

/// Each name a use tree exports with the path it names (`None`: a glob).
fn exported_names(
    tree: &UseTree,
    prefix: Vec<String>,
    out: &mut Vec<(Option<String>, Vec<String>)>,
) {
    match tree {
        UseTree::Path(path) => {
            let mut prefix = prefix;
            prefix.push(path.ident.to_string());
            exported_names(&path.tree, prefix, out);
        }
        UseTree::Name(name) => {
            let mut path = prefix;
            let exported = if name.ident == "self" {
                path.last().cloned()
            } else {
                path.push(name.ident.to_string());
                Some(name.ident.to_string())
            };
            if let Some(exported) = exported {
                out.push((Some(exported), path));
            }
        }
        UseTree::Rename(rename) => {
            let mut path = prefix;
            if rename.ident != "self" {
                path.push(rename.ident.to_string());
            }
            out.push((Some(rename.rename.to_string()), path));
        }
        UseTree::Glob(_) => out.push((None, prefix)),
        UseTree::Group(group) => {
            for item in &group.items {
                exported_names(item, prefix.clone(), out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use super::{cycles, file_imports};
    use crate::modules::ModuleTree;

    /// The imports of a crate made of `files` (path → text), rooted at `src/lib.rs`.
    fn imports_of(files: &[(&str, &str)]) -> Vec<(String, String)> {
        let files: BTreeMap<PathBuf, String> = files
            .iter()
            .map(|(path, text)| (PathBuf::from(path), text.to_string()))
            .collect();
        let read = |path: &Path| files.get(path).cloned();
        let tree = ModuleTree::load(Path::new("src/lib.rs"), &read).expect("load");
        let mut imports: Vec<(String, String)> = file_imports(&tree)
            .into_iter()
            .map(|import| {
                (
                    import.from.display().to_string(),
                    import.to.display().to_string(),
                )
            })
            .collect();
        imports.sort();
        imports
    }

    fn pair(from: &str, to: &str) -> (String, String) {
        (from.to_string(), to.to_string())
    }

    #[test]
    fn a_use_a_path_and_a_macro_argument_are_imports_and_a_cycle_is_found() {
        let files = [
            ("src/lib.rs", "mod a; mod b; mod c;"),
            ("src/a.rs", "use crate::b::Bee; pub struct Ay;"),
            (
                "src/b.rs",
                "pub struct Bee; fn f() { let _ = super::c::see(); }",
            ),
            (
                "src/c.rs",
                "pub fn see() { println!(\"{}\", crate::a::NAME); } pub const NAME: &str = \"\";",
            ),
        ];
        let imports = imports_of(&files);
        assert_eq!(
            imports,
            vec![
                pair("src/a.rs", "src/b.rs"),
                pair("src/b.rs", "src/c.rs"),
                pair("src/c.rs", "src/a.rs")
            ]
        );
        let edges: Vec<super::Import> = {
            let files: BTreeMap<PathBuf, String> = files
                .iter()
                .map(|(p, t)| (PathBuf::from(p), t.to_string()))
                .collect();
            let read = |path: &Path| files.get(path).cloned();
            file_imports(&ModuleTree::load(Path::new("src/lib.rs"), &read).expect("load"))
        };
        assert_eq!(
            cycles(&edges),
            vec![vec![
                PathBuf::from("src/a.rs"),
                PathBuf::from("src/b.rs"),
                PathBuf::from("src/c.rs")
            ]]
        );
    }

    #[test]
    fn a_re_export_leads_to_the_defining_file_and_a_test_module_imports_its_own_file() {
        // `crate::Thing` is `a::Thing`: b imports a, not lib.rs (which only
        // re-exports), so lib.rs → a → (nothing) is no cycle.
        let files = [
            (
                "src/lib.rs",
                "mod a; mod b; pub use a::Thing; pub use b::*;",
            ),
            (
                "src/a.rs",
                "pub struct Thing; #[cfg(test)] mod tests { use super::*; }",
            ),
            ("src/b.rs", "use crate::Thing; pub fn other() {}"),
        ];
        let imports = imports_of(&files);
        assert_eq!(
            imports,
            vec![
                pair("src/b.rs", "src/a.rs"),
                pair("src/lib.rs", "src/a.rs"),
                pair("src/lib.rs", "src/b.rs")
            ]
        );
    }

    #[test]
    fn a_child_using_its_parents_own_item_is_a_cycle() {
        let files = [
            ("src/lib.rs", "mod api;"),
            (
                "src/api.rs",
                "mod query; pub struct ApiError; fn f() { query::run(); }",
            ),
            ("src/api/query.rs", "use super::ApiError; pub fn run() {}"),
        ];
        assert_eq!(
            imports_of(&files),
            vec![
                pair("src/api.rs", "src/api/query.rs"),
                pair("src/api/query.rs", "src/api.rs")
            ]
        );
    }

    #[test]
    fn other_crates_and_local_names_are_not_imports() {
        let files = [
            (
                "src/lib.rs",
                "mod a; use std::fmt; use serde::Serialize; fn f(x: fmt::Result) { let a = 1; }",
            ),
            (
                "src/a.rs",
                "use ::a::b; fn g() { let _ = Vec::<u8>::new(); }",
            ),
        ];
        assert_eq!(imports_of(&files), Vec::<(String, String)>::new());
    }
}
