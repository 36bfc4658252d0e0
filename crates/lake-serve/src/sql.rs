//! Read-only SQL over the lake: one query (SELECT, WITH, set operations)
//! that reads only the lake's registered tables, run by Polars SQL over the
//! latest committed partition of each table it names (`silver.sales_master`,
//! `gold.rfm`, `silver._rejects.sales_master`).
//!
//! The check works on the parsed statement, with the parser Polars SQL
//! itself uses (sqlparser, the same version, `GenericDialect`, the same
//! options), and on the very text Polars then parses:
//!
//! 1. the query is parsed; the names of lake tables in it are rewritten to
//!    one quoted identifier each (`"silver.sales_master"`: Polars SQL looks a
//!    table up by the first part of its name only), and the statement is
//!    printed back to text;
//! 2. that text is parsed again and checked, node by node, against an
//!    allow-list: one `Query` statement; query bodies that are SELECTs,
//!    parenthesized queries, set operations or VALUES; in FROM and JOIN
//!    only plain table names, derived tables (subqueries) and nested joins;
//!    every table name a registered lake table or the name of a CTE in
//!    scope (defined by an enclosing query; inside a CTE's own definition,
//!    only the CTEs before it). Anything else (a table function such as
//!    `read_parquet(...)`, a quoted path, an unknown name, another
//!    statement, a clause such as `SELECT INTO` or `FOR UPDATE`) is refused
//!    with what it is.
//!
//! The walk uses sqlparser's derived visitor, so every table factor,
//! subquery and statement anywhere in the tree (CTEs, subqueries in
//! expressions, joins, set operations) is seen; the structs whose fields
//! matter are destructured without `..`, so a field added by a later
//! sqlparser version fails to compile here instead of passing unchecked.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use polars::prelude::*;
use polars::sql::SQLContext;
use sqlparser::ast::{
    Cte, Expr, Ident, ObjectName, ObjectNamePart, Query, Select, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, Statement, TableFactor, Visit, VisitMut, Visitor,
    VisitorMut, With,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::{Parser, ParserOptions};

pub mod exec;
pub mod stats;

/// Longest query text accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 64 * 1024;

/// Why a query is refused before it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    Empty,
    TooLong(usize),
    /// The parser's message.
    Syntax(String),
    SeveralStatements(usize),
    /// A statement other than a query: its first keyword.
    NotSelect(String),
    /// A clause or construct outside the allow-list, as written.
    NotAllowed(String),
    /// A table function in FROM or JOIN: its name.
    TableFunction(String),
    /// A quoted name that looks like a file path or URL.
    Path(String),
    /// A table name that is neither a lake table nor a CTE, with the lake's
    /// table names.
    UnknownTable {
        name: String,
        known: Vec<String>,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Empty => f.write_str("the query is empty"),
            Refusal::TooLong(bytes) => write!(
                f,
                "the query is {bytes} bytes long: at most {MAX_QUERY_BYTES} are accepted"
            ),
            Refusal::Syntax(message) => write!(f, "SQL error: {message}"),
            Refusal::SeveralStatements(n) => {
                write!(f, "one statement only: the text holds {n}")
            }
            Refusal::NotSelect(word) => write!(
                f,
                "only SELECT queries are allowed (the lake is read-only here): the statement is {word}"
            ),
            Refusal::NotAllowed(what) => write!(
                f,
                "not allowed in a query here: {what} (one SELECT/WITH query over the lake's tables)"
            ),
            Refusal::TableFunction(name) => write!(
                f,
                "table function {name}(...) is not allowed: a query reads only the lake's tables, named layer.table"
            ),
            Refusal::Path(path) => write!(
                f,
                "{path} is a path, not a table: a query reads only the lake's tables, named layer.table"
            ),
            Refusal::UnknownTable { name, known } => write!(
                f,
                "unknown table {name} (tables are named layer.table: {})",
                known.join(", ")
            ),
        }
    }
}

/// A checked query: the text Polars SQL runs, and the lake tables it reads
/// (their SQL names, as registered).
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub text: String,
    pub tables: BTreeSet<String>,
}

/// The parser Polars SQL uses, with its options (`SQLContext::execute`).
fn parse(text: &str) -> Result<Vec<Statement>, Refusal> {
    Parser::new(&GenericDialect)
        .with_options(ParserOptions {
            trailing_commas: true,
            ..Default::default()
        })
        .try_with_sql(text)
        .and_then(|mut parser| parser.parse_statements())
        .map_err(|err| Refusal::Syntax(err.to_string()))
}

/// One statement, or why not.
fn one_statement(text: &str) -> Result<Statement, Refusal> {
    if text.len() > MAX_QUERY_BYTES {
        return Err(Refusal::TooLong(text.len()));
    }
    let mut statements = parse(text)?;
    match statements.len() {
        0 => Err(Refusal::Empty),
        1 => Ok(statements.remove(0)),
        n => Err(Refusal::SeveralStatements(n)),
    }
}

/// One statement that is a query, or why not.
fn query_statement(text: &str) -> Result<Statement, Refusal> {
    match one_statement(text)? {
        statement @ Statement::Query(_) => Ok(statement),
        other => Err(Refusal::NotSelect(first_word(&other.to_string()))),
    }
}

/// The cheap part of the check, without the lake's table names: one
/// statement, and a query.
pub fn check_shape(query: &str) -> Result<(), Refusal> {
    query_statement(query).map(drop)
}

/// Checks `query` against the allow-list, with `tables` the SQL names of
/// the lake's tables (`gold.rfm`, `silver._rejects.sales_master`).
pub fn prepare(query: &str, tables: &BTreeSet<String>) -> Result<Prepared, Refusal> {
    // Refuse what is not a query before touching it.
    let mut statement = query_statement(query)?;
    let _ = VisitMut::visit(&mut statement, &mut Rewriter { tables });
    let text = statement.to_string();
    // The check runs on exactly what Polars will parse.
    let statement = one_statement(&text).map_err(|refusal| match refusal {
        Refusal::Syntax(err) => Refusal::NotAllowed(format!(
            "a construct that does not survive normalization ({err})"
        )),
        other => other,
    })?;
    let used = check(&statement, tables)?;
    Ok(Prepared {
        text: text.trim_end().trim_end_matches(';').to_string(),
        tables: used,
    })
}

/// The lake tables a parsed statement reads, or why it is refused.
fn check(statement: &Statement, tables: &BTreeSet<String>) -> Result<BTreeSet<String>, Refusal> {
    let mut checker = Checker {
        tables,
        scopes: Vec::new(),
        statements: 0,
        used: BTreeSet::new(),
    };
    match Visit::visit(statement, &mut checker) {
        ControlFlow::Break(refusal) => Err(refusal),
        ControlFlow::Continue(()) => Ok(checker.used),
    }
}

fn first_word(text: &str) -> String {
    text.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase()
}

/// At most 120 characters of `text`, for messages.
fn shown(text: impl std::fmt::Display) -> String {
    let text = text.to_string();
    match text.char_indices().nth(120) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text,
    }
}

/// The name `parts` spell, as a lake table's SQL name would be written:
/// unquoted parts compare case-insensitively (lowercased), quoted ones as
/// written. `None` when a part is not an identifier.
fn spelled(parts: &[ObjectNamePart]) -> Option<String> {
    let idents: Option<Vec<&Ident>> = parts.iter().map(ObjectNamePart::as_ident).collect();
    Some(spelled_idents(&idents?))
}

fn spelled_idents(idents: &[&Ident]) -> String {
    idents
        .iter()
        .map(|ident| match ident.quote_style {
            None => ident.value.to_ascii_lowercase(),
            Some(_) => ident.value.clone(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn quoted(name: &str) -> Ident {
    Ident::with_quote('"', name)
}

/// Step 1: lake table names to one quoted identifier each, in FROM/JOIN,
/// in qualified columns (`silver.sales_master.line_total`) and in
/// qualified wildcards (`gold.rfm.*`). Nothing else changes, and nothing
/// is checked here.
struct Rewriter<'a> {
    tables: &'a BTreeSet<String>,
}

impl Rewriter<'_> {
    fn table_of(&self, parts: &[ObjectNamePart]) -> Option<String> {
        spelled(parts).filter(|name| self.tables.contains(name))
    }
}

impl VisitorMut for Rewriter<'_> {
    type Break = ();

    fn pre_visit_relation(&mut self, relation: &mut ObjectName) -> ControlFlow<()> {
        if let Some(name) = self.table_of(&relation.0) {
            *relation = ObjectName::from(quoted(&name));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::CompoundIdentifier(idents) = expr {
            // The longest prefix naming a table, with at least one part
            // (the column) after it.
            for cut in (2..idents.len()).rev() {
                let prefix: Vec<&Ident> = idents[..cut].iter().collect();
                let name = spelled_idents(&prefix);
                if self.tables.contains(&name) {
                    let mut rewritten = vec![quoted(&name)];
                    rewritten.extend(idents.drain(cut..));
                    *idents = rewritten;
                    break;
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<()> {
        for item in &mut select.projection {
            if let SelectItem::QualifiedWildcard(
                SelectItemQualifiedWildcardKind::ObjectName(name),
                _,
            ) = item
                && let Some(table) = self.table_of(&name.0)
            {
                *name = ObjectName::from(quoted(&table));
            }
        }
        ControlFlow::Continue(())
    }
}

/// Step 2: the allow-list walk.
struct Checker<'a> {
    tables: &'a BTreeSet<String>,
    /// The CTEs of each enclosing query, innermost last.
    scopes: Vec<Scope>,
    statements: usize,
    used: BTreeSet<String>,
}

/// The CTEs of one query: while the visit is inside the definition of the
/// i-th, only the ones before it are visible; in the query's body, all.
struct Scope {
    names: Vec<String>,
    /// Where each CTE's query is in the tree, to know when the visit
    /// enters and leaves it.
    queries: Vec<*const Query>,
    visible: usize,
}

impl Scope {
    fn position(&self, query: &Query) -> Option<usize> {
        self.queries
            .iter()
            .position(|q| std::ptr::eq(*q, query as *const Query))
    }
}

impl Checker<'_> {
    fn known(&self) -> Vec<String> {
        self.tables.iter().cloned().collect()
    }

    fn in_scope(&self, name: &str) -> bool {
        self.scopes
            .iter()
            .any(|scope| scope.names[..scope.visible].iter().any(|n| n == name))
    }

    fn body(&self, body: &SetExpr) -> Result<(), Refusal> {
        match body {
            // Their own parts are checked by their own visits.
            SetExpr::Select(_) | SetExpr::Query(_) | SetExpr::Values(_) => Ok(()),
            SetExpr::SetOperation {
                left,
                op: _,
                set_quantifier: _,
                right,
            } => {
                self.body(left)?;
                self.body(right)
            }
            SetExpr::Insert(_) => Err(Refusal::NotAllowed("INSERT".into())),
            SetExpr::Update(_) => Err(Refusal::NotAllowed("UPDATE".into())),
            SetExpr::Delete(_) => Err(Refusal::NotAllowed("DELETE".into())),
            SetExpr::Merge(_) => Err(Refusal::NotAllowed("MERGE".into())),
            SetExpr::Table(table) => Err(Refusal::NotAllowed(shown(table))),
        }
    }

    fn with(&self, with: &With) -> Result<Scope, Refusal> {
        let With {
            with_token: _,
            recursive,
            cte_tables,
        } = with;
        if *recursive {
            return Err(Refusal::NotAllowed("WITH RECURSIVE".into()));
        }
        let mut names = Vec::new();
        let mut queries = Vec::new();
        for cte in cte_tables {
            let Cte {
                alias,
                query: _,
                from,
                materialized,
                closing_paren_token: _,
            } = cte;
            if from.is_some() || materialized.is_some() {
                return Err(Refusal::NotAllowed(format!("CTE {}", shown(cte))));
            }
            names.push(alias.name.value.clone());
            queries.push(&*cte.query as *const Query);
        }
        Ok(Scope {
            names,
            queries,
            visible: 0,
        })
    }

    fn table(&mut self, name: &ObjectName, args: bool) -> Result<(), Refusal> {
        if args {
            return Err(Refusal::TableFunction(shown(name)));
        }
        let single = match name.0.as_slice() {
            [ObjectNamePart::Identifier(ident)] => Some(ident),
            _ => None,
        };
        if let Some(ident) = single {
            if self.tables.contains(&ident.value) {
                self.used.insert(ident.value.clone());
                return Ok(());
            }
            if self.in_scope(&ident.value) {
                return Ok(());
            }
            let value = &ident.value;
            if ident.quote_style.is_some()
                && (value.contains('/')
                    || value.contains('\\')
                    || value.contains(':')
                    || value.starts_with('.')
                    || value.starts_with('~'))
            {
                return Err(Refusal::Path(shown(ident)));
            }
        }
        Err(Refusal::UnknownTable {
            name: shown(name),
            known: self.known(),
        })
    }
}

fn refuse(refusal: Result<(), Refusal>) -> ControlFlow<Refusal> {
    match refusal {
        Ok(()) => ControlFlow::Continue(()),
        Err(refusal) => ControlFlow::Break(refusal),
    }
}

impl Visitor for Checker<'_> {
    type Break = Refusal;

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<Refusal> {
        self.statements += 1;
        if self.statements > 1 {
            return ControlFlow::Break(Refusal::NotAllowed(format!(
                "a {} statement inside the query",
                first_word(&statement.to_string())
            )));
        }
        match statement {
            Statement::Query(_) => ControlFlow::Continue(()),
            other => ControlFlow::Break(Refusal::NotSelect(first_word(&other.to_string()))),
        }
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Refusal> {
        let Query {
            with,
            body,
            order_by: _,
            limit_clause: _,
            fetch: _,
            locks,
            for_clause,
            settings,
            format_clause,
            pipe_operators,
        } = query;
        if !locks.is_empty() {
            return ControlFlow::Break(Refusal::NotAllowed("FOR UPDATE/SHARE".into()));
        }
        if let Some(clause) = for_clause {
            return ControlFlow::Break(Refusal::NotAllowed(shown(clause)));
        }
        if settings.is_some() {
            return ControlFlow::Break(Refusal::NotAllowed("SETTINGS".into()));
        }
        if let Some(clause) = format_clause {
            return ControlFlow::Break(Refusal::NotAllowed(shown(clause)));
        }
        if let Some(pipe) = pipe_operators.first() {
            return ControlFlow::Break(Refusal::NotAllowed(format!("|> {}", shown(pipe))));
        }
        refuse(self.body(body))?;
        let scope = match with {
            Some(with) => match self.with(with) {
                Ok(scope) => scope,
                Err(refusal) => return ControlFlow::Break(refusal),
            },
            None => Scope {
                names: Vec::new(),
                queries: Vec::new(),
                visible: 0,
            },
        };
        // Entering the definition of a CTE of the enclosing query: the
        // CTEs before it are visible.
        if let Some(parent) = self.scopes.last_mut()
            && let Some(i) = parent.position(query)
        {
            parent.visible = i;
        }
        self.scopes.push(scope);
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, query: &Query) -> ControlFlow<Refusal> {
        self.scopes.pop();
        // Leaving a CTE's definition: it is visible from here on (the next
        // CTEs, then the body, which the visit reaches after every CTE).
        if let Some(parent) = self.scopes.last_mut()
            && let Some(i) = parent.position(query)
        {
            parent.visible = i + 1;
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<Refusal> {
        let Select {
            select_token: _,
            optimizer_hints,
            distinct: _,
            select_modifiers,
            top: _,
            top_before_distinct: _,
            projection: _,
            exclude: _,
            into,
            from: _,
            lateral_views,
            prewhere,
            selection: _,
            connect_by,
            group_by: _,
            cluster_by,
            distribute_by,
            sort_by,
            having: _,
            named_window: _,
            qualify: _,
            window_before_qualify: _,
            value_table_mode,
            flavor: _,
        } = select;
        let refused = if let Some(into) = into {
            Some(shown(into))
        } else if !optimizer_hints.is_empty() {
            Some("optimizer hints".into())
        } else if select_modifiers.is_some() {
            Some("SELECT modifiers".into())
        } else if let Some(view) = lateral_views.first() {
            Some(shown(view))
        } else if prewhere.is_some() {
            Some("PREWHERE".into())
        } else if !connect_by.is_empty() {
            Some("CONNECT BY".into())
        } else if !cluster_by.is_empty() || !distribute_by.is_empty() || !sort_by.is_empty() {
            Some("CLUSTER/DISTRIBUTE/SORT BY".into())
        } else {
            value_table_mode.map(shown)
        };
        match refused {
            Some(what) => ControlFlow::Break(Refusal::NotAllowed(what)),
            None => ControlFlow::Continue(()),
        }
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<Refusal> {
        match factor {
            TableFactor::Table {
                name,
                alias: _,
                args,
                with_hints,
                version,
                with_ordinality,
                partitions,
                json_path,
                sample,
                index_hints,
            } => {
                if !with_hints.is_empty()
                    || version.is_some()
                    || *with_ordinality
                    || !partitions.is_empty()
                    || json_path.is_some()
                    || sample.is_some()
                    || !index_hints.is_empty()
                {
                    // A table function's name first: it says more.
                    if args.is_some() {
                        return ControlFlow::Break(Refusal::TableFunction(shown(name)));
                    }
                    return ControlFlow::Break(Refusal::NotAllowed(format!(
                        "table modifiers in {}",
                        shown(factor)
                    )));
                }
                refuse(self.table(name, args.is_some()))
            }
            TableFactor::Derived {
                lateral,
                subquery: _,
                alias: _,
                sample,
            } => {
                if *lateral || sample.is_some() {
                    ControlFlow::Break(Refusal::NotAllowed(shown(factor)))
                } else {
                    ControlFlow::Continue(())
                }
            }
            TableFactor::NestedJoin {
                table_with_joins: _,
                alias: _,
            } => ControlFlow::Continue(()),
            TableFactor::Function { name, .. } => {
                ControlFlow::Break(Refusal::TableFunction(shown(name)))
            }
            TableFactor::TableFunction { expr, .. } => {
                ControlFlow::Break(Refusal::TableFunction(shown(expr)))
            }
            other => ControlFlow::Break(Refusal::NotAllowed(format!("{} in FROM", shown(other)))),
        }
    }
}

/// The plan of a prepared query over the given frames (named as in
/// [`Prepared::tables`]).
pub fn plan(prepared: &Prepared, tables: Vec<(String, LazyFrame)>) -> PolarsResult<LazyFrame> {
    let mut context = SQLContext::new();
    for (name, frame) in tables {
        context.register(&name, frame);
    }
    context.execute(&prepared.text)
}

#[cfg(test)]
mod tests;
