//! ARCHITECTURE.md's "never" rules, each with the check that holds the
//! workspace to it. The rules' statements are ARCHITECTURE.md's words: a
//! test keeps the two in step.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use syn::visit::Visit;

use crate::manifests::Member;
use crate::targets::Target;

/// The crates in layers, lowest first: a crate's (non-dev) dependencies
/// among the workspace's crates are all in layers below its own.
pub const LAYERS: &[&[&str]] = &[
    &["lake-tools", "lake-workspace-hack"],
    &["lake-table", "lake-testkit"],
    &["lake-core"],
    &["lake-northwind"],
    &["lake-pg"],
    &["lake-bronze", "lake-silver", "lake-stream"],
    &["lake-gold"],
    &["lake-serve"],
    &["lake-stream-cli"],
    &["lake-tasks"],
    &["lake-tests", "xtask", "lake-architecture"],
];

/// The crates that talk to PostgreSQL's protocol.
const POSTGRES_CRATES: &[&str] = &[
    "postgres",
    "tokio-postgres",
    "postgres-openssl",
    "postgres-types",
    "postgres-protocol",
    "openssl",
];

/// The crates that serve HTTP.
const HTTP_SERVER_CRATES: &[&str] = &[
    "axum",
    "axum-server",
    "hyper",
    "hyper-util",
    "tower",
    "tower-http",
];

/// Test infrastructure, linked only by tests: it starts real servers
/// (PostgreSQL among them) and talks to them as the tests' clients.
const TEST_ONLY_CRATES: &[&str] = &["lake-testkit", "lake-tests"];

/// The crates whose build may link PostgreSQL: the PostgreSQL crate, the
/// layer that copies from it, and the tasks that seed and bench it.
const MAY_LINK_POSTGRES: &[&str] = &["lake-pg", "lake-bronze", "lake-tasks"];

/// The table names of the data contract: no module of lake-table names one.
const CONTRACT_TABLES: &[&str] = &[
    "orders",
    "order_details",
    "products",
    "customers",
    "employees",
    "categories",
    "ventes_temps_reel",
    "sales_master",
    "kpi_summary",
    "revenue_by_country",
    "sales_by_category",
    "rfm",
    "rfm_segments",
    "live_sales_by_country",
    "live_sales_by_minute",
];

/// lake-table's modules that write: whatever lake-serve names from them is a write.
const WRITING_MODULES: &[&str] = &[
    "src/writer.rs",
    "src/commit.rs",
    "src/all_or_none.rs",
    "src/restore.rs",
    "src/maintenance.rs",
];

/// One rule and how the workspace breaks it (empty: it holds).
pub struct Finding {
    pub rule: &'static str,
    pub breaches: Vec<String>,
}

/// The rules, in ARCHITECTURE.md's order.
pub const RULES: &[&str] = &[
    LAYERING,
    TABLE_KNOWS_NO_TABLE,
    ONLY_PG_KNOWS_POSTGRES,
    SOURCE_NEVER_OWNS_PROCESSOR,
    ONLY_SERVE_SPEAKS_HTTP,
    SERVE_NEVER_WRITES,
];

pub const LAYERING: &str = "no crate depends on a crate of its own layer or above";
pub const TABLE_KNOWS_NO_TABLE: &str = "lake-table knows no particular table";
pub const ONLY_PG_KNOWS_POSTGRES: &str = "only lake-pg knows PostgreSQL";
pub const SOURCE_NEVER_OWNS_PROCESSOR: &str = "a stream source never owns the processor";
pub const ONLY_SERVE_SPEAKS_HTTP: &str = "only lake-serve speaks HTTP";
pub const SERVE_NEVER_WRITES: &str = "lake-serve never writes to the lake";

/// Checks every rule on the workspace at `root`.
pub fn check(root: &Path, members: &[Member], targets: &[Target]) -> Vec<Finding> {
    vec![
        Finding {
            rule: LAYERING,
            breaches: layering(members),
        },
        Finding {
            rule: TABLE_KNOWS_NO_TABLE,
            breaches: table_knows_no_table(root, members, targets),
        },
        Finding {
            rule: ONLY_PG_KNOWS_POSTGRES,
            breaches: only_pg_knows_postgres(members),
        },
        Finding {
            rule: SOURCE_NEVER_OWNS_PROCESSOR,
            breaches: source_never_owns_processor(targets),
        },
        Finding {
            rule: ONLY_SERVE_SPEAKS_HTTP,
            breaches: only_serve_speaks_http(members),
        },
        Finding {
            rule: SERVE_NEVER_WRITES,
            breaches: serve_never_writes(targets),
        },
    ]
}

fn layer_of(name: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&name))
}

fn workspace_names(members: &[Member]) -> BTreeSet<&str> {
    members.iter().map(|member| member.name.as_str()).collect()
}

fn layering(members: &[Member]) -> Vec<String> {
    let names = workspace_names(members);
    let mut breaches = Vec::new();
    for member in members {
        let Some(own) = layer_of(&member.name) else {
            breaches.push(format!("{} has no layer in the rules' list", member.name));
            continue;
        };
        for dependency in member
            .dependencies
            .iter()
            .filter(|d| names.contains(d.as_str()))
        {
            match layer_of(dependency) {
                Some(layer) if layer < own || dependency == "lake-workspace-hack" => {}
                _ => breaches.push(format!(
                    "{} (layer {own}) depends on {dependency} (layer {})",
                    member.name,
                    layer_of(dependency).map_or("none".to_string(), |l| l.to_string())
                )),
            }
        }
    }
    breaches
}

/// Every workspace crate a member links (its non-dev dependencies, and theirs).
fn linked(members: &[Member], name: &str) -> BTreeSet<String> {
    let by_name: BTreeMap<&str, &Member> = members
        .iter()
        .map(|member| (member.name.as_str(), member))
        .collect();
    let mut seen = BTreeSet::new();
    let mut stack = vec![name.to_string()];
    while let Some(current) = stack.pop() {
        let Some(member) = by_name.get(current.as_str()) else {
            continue;
        };
        for dependency in &member.dependencies {
            if by_name.contains_key(dependency.as_str()) && seen.insert(dependency.clone()) {
                stack.push(dependency.clone());
            }
        }
    }
    seen
}

fn only_pg_knows_postgres(members: &[Member]) -> Vec<String> {
    let mut breaches = Vec::new();
    for member in members {
        if member.name == "lake-pg" || TEST_ONLY_CRATES.contains(&member.name.as_str()) {
            continue;
        }
        for dependency in &member.dependencies {
            if POSTGRES_CRATES.contains(&dependency.as_str()) {
                breaches.push(format!("{} depends on {dependency}", member.name));
            }
        }
        if !MAY_LINK_POSTGRES.contains(&member.name.as_str())
            && linked(members, &member.name).contains("lake-pg")
        {
            breaches.push(format!("{} links lake-pg", member.name));
        }
    }
    breaches
}

fn only_serve_speaks_http(members: &[Member]) -> Vec<String> {
    let mut breaches = Vec::new();
    for member in members {
        if member.name == "lake-serve"
            || member.name == "lake-workspace-hack"
            || TEST_ONLY_CRATES.contains(&member.name.as_str())
        {
            continue;
        }
        for dependency in &member.dependencies {
            if HTTP_SERVER_CRATES.contains(&dependency.as_str()) {
                breaches.push(format!("{} depends on {dependency}", member.name));
            }
        }
    }
    breaches
}

fn table_knows_no_table(root: &Path, members: &[Member], targets: &[Target]) -> Vec<String> {
    let mut breaches = Vec::new();
    if let Some(table) = members.iter().find(|member| member.name == "lake-table") {
        let names = workspace_names(members);
        for dependency in &table.dependencies {
            if names.contains(dependency.as_str()) && dependency != "lake-workspace-hack" {
                breaches.push(format!("lake-table depends on {dependency}"));
            }
        }
    }
    for target in targets
        .iter()
        .filter(|target| target.member == "lake-table")
    {
        for file in &target.tree.files {
            let mut literals = TableNames {
                found: Vec::new(),
                in_test: 0,
            };
            literals.visit_file(&file.syntax);
            for name in literals.found {
                breaches.push(format!(
                    "{} names table {name:?}",
                    relative(root, &target.directory.join(&file.path))
                ));
            }
        }
    }
    breaches
}

/// The contract's table names in a file's string literals, outside tests.
struct TableNames {
    found: Vec<String>,
    in_test: usize,
}

fn is_test(attributes: &[syn::Attribute]) -> bool {
    attributes.iter().any(|attribute| {
        attribute.path().is_ident("test")
            || (attribute.path().is_ident("cfg")
                && attribute
                    .parse_args::<syn::Ident>()
                    .is_ok_and(|ident| ident == "test"))
    })
}

impl<'ast> Visit<'ast> for TableNames {
    /// Doc comments may name tables as examples.
    fn visit_attribute(&mut self, _: &'ast syn::Attribute) {}

    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attributes: &[syn::Attribute] = match item {
            syn::Item::Mod(item) => &item.attrs,
            syn::Item::Fn(item) => &item.attrs,
            syn::Item::Impl(item) => &item.attrs,
            _ => &[],
        };
        let test = is_test(attributes);
        self.in_test += usize::from(test);
        syn::visit::visit_item(self, item);
        self.in_test -= usize::from(test);
    }

    fn visit_lit_str(&mut self, literal: &'ast syn::LitStr) {
        if self.in_test > 0 {
            return;
        }
        let value = literal.value();
        let words = value.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
        for word in words {
            if CONTRACT_TABLES.contains(&word) {
                self.found.push(word.to_string());
            }
        }
    }
}

fn source_never_owns_processor(targets: &[Target]) -> Vec<String> {
    let mut breaches = Vec::new();
    for target in targets
        .iter()
        .filter(|target| target.member == "lake-stream" && target.is_library)
    {
        for import in &target.imports {
            let from_source = import.from.starts_with("src/source");
            let to_processor = import.to.starts_with("src/processor")
                || import.to == Path::new("src/processor.rs");
            if from_source && to_processor {
                breaches.push(format!(
                    "{} imports {} ({})",
                    import.from.display(),
                    import.to.display(),
                    import.example
                ));
            }
        }
    }
    breaches
}

fn serve_never_writes(targets: &[Target]) -> Vec<String> {
    let Some(table) = targets
        .iter()
        .find(|target| target.member == "lake-table" && target.is_library)
    else {
        return vec!["lake-table's library was not read".into()];
    };
    // What lake-table's writing modules define, and the modules themselves.
    let mut writing: BTreeSet<String> = BTreeSet::new();
    for file in &table.tree.files {
        if WRITING_MODULES
            .iter()
            .any(|module| file.path == Path::new(module))
        {
            writing.extend(file.module.last().cloned());
            let mut public = PublicNames::default();
            public.visit_file(&file.syntax);
            writing.extend(public.names);
        }
    }
    let mut breaches = Vec::new();
    for target in targets
        .iter()
        .filter(|target| target.member == "lake-serve")
    {
        for file in &target.tree.files {
            let mut uses = LakeTableUses {
                writing: &writing,
                found: BTreeSet::new(),
            };
            uses.visit_file(&file.syntax);
            for name in uses.found {
                breaches.push(format!("{} uses lake-table's {name}", file.path.display()));
            }
        }
    }
    breaches
}

/// The public functions, methods and types a file defines, outside tests.
#[derive(Default)]
struct PublicNames {
    names: BTreeSet<String>,
}

impl<'ast> Visit<'ast> for PublicNames {
    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        if !matches!(item.vis, syn::Visibility::Inherited) {
            self.names.insert(item.sig.ident.to_string());
        }
    }
    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        if !matches!(item.vis, syn::Visibility::Inherited) {
            self.names.insert(item.sig.ident.to_string());
        }
    }
    fn visit_item_struct(&mut self, item: &'ast syn::ItemStruct) {
        if !matches!(item.vis, syn::Visibility::Inherited) {
            self.names.insert(item.ident.to_string());
        }
    }
    fn visit_item_enum(&mut self, item: &'ast syn::ItemEnum) {
        if !matches!(item.vis, syn::Visibility::Inherited) {
            self.names.insert(item.ident.to_string());
        }
    }
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if !is_test(&item.attrs) {
            syn::visit::visit_item_mod(self, item);
        }
    }
}

/// The writing names a lake-serve file takes from lake-table, in paths
/// through `lake_table` (a write needs one: a `DateWriter` to fill, or
/// `replace_all`, `compact`, `vacuum`).
struct LakeTableUses<'a> {
    writing: &'a BTreeSet<String>,
    found: BTreeSet<String>,
}

impl<'ast> Visit<'ast> for LakeTableUses<'_> {
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        let mut paths = Vec::new();
        crate::imports::flatten_use_tree(&item.tree, &mut paths);
        for path in paths {
            if path.first().is_some_and(|first| first == "lake_table") {
                for segment in &path[1..] {
                    if self.writing.contains(segment) {
                        self.found.insert(segment.clone());
                    }
                }
            }
        }
    }
    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        if segments.first().is_some_and(|first| first == "lake_table") {
            for segment in &segments[1..] {
                if self.writing.contains(segment) {
                    self.found.insert(segment.clone());
                }
            }
        }
        syn::visit::visit_path(self, path);
    }
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}
