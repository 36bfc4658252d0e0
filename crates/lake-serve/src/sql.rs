//! Read-only SQL over the lake: one query (SELECT, WITH, set operations)
//! that reads only the lake's registered tables (`silver.sales_master`,
//! `gold.rfm`, `silver._rejects.sales_master`), run by Polars SQL.
//!
//! What a table holds in SQL ([`reads`] builds the frames):
//!
//! - its data columns, then `run_date` (DATE), the partition column;
//! - the version the API serves (gold tables: the one the latest complete
//!   run wrote; the others: the latest), or the version a Delta time
//!   travel clause names: `gold.rfm VERSION AS OF 3`, `gold.rfm TIMESTAMP
//!   AS OF '2026-12-07T10:00:00Z'` (the latest version committed at or
//!   before that time; also `'2026-12-07 10:00:00'` and `'2026-12-07'`,
//!   read as UTC);
//! - the latest date of that version (for a gold table at the run's
//!   version, the run's date), as before `run_date` was a column, unless
//!   the query names `run_date` anywhere (`WHERE run_date = '2026-11-26'`,
//!   `GROUP BY run_date`, `SELECT run_date`): then every date of that
//!   version, as Spark or DuckDB read a Delta table, for the query to
//!   filter or group. A query written before `run_date` existed could not
//!   name it, so its answer does not change.
//!
//! The check works on the parsed statement, with the parser Polars SQL
//! itself uses (sqlparser, the same version, `GenericDialect`, the same
//! options), and on the very text Polars then parses:
//!
//! 1. the query is parsed (with [`dialect::TimeTravelDialect`]: Polars'
//!    dialect plus the time travel clauses); the names of lake tables in
//!    it are rewritten to one quoted identifier each (`"silver.sales_master"`:
//!    Polars SQL looks a table up by the first part of its name only), a
//!    lake table with a time travel clause to a name of its own
//!    (`"gold.rfm@v3" AS "gold.rfm"`, the clause removed: Polars does not
//!    parse it), any other version clause refused; and the statement is
//!    printed back to text;
//! 2. that text is parsed again with `GenericDialect` and checked, node by
//!    node, against an allow-list: one `Query` statement; query bodies that
//!    are SELECTs, parenthesized queries, set operations or VALUES; in FROM
//!    and JOIN only plain table names, derived tables (subqueries) and
//!    nested joins; every table name a registered lake table, a time
//!    travel name made in step 1, or the name of a CTE in scope (defined
//!    by an enclosing query; inside a CTE's own definition, only the CTEs
//!    before it). Anything else (a table function such as
//!    `read_parquet(...)`, a quoted path, an unknown name, another
//!    statement, a clause such as `SELECT INTO` or `FOR UPDATE`, a table
//!    modifier) is refused with what it is.
//!
//! The walk uses sqlparser's derived visitor, so every table factor,
//! subquery and statement anywhere in the tree (CTEs, subqueries in
//! expressions, joins, set operations) is seen; the structs whose fields
//! matter are destructured without `..`, so a field added by a later
//! sqlparser version fails to compile here instead of passing unchecked.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use polars::prelude::*;
use polars::sql::SQLContext;
use sqlparser::ast::{
    Cte, Expr, Ident, ObjectName, ObjectNamePart, Query, Select, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, Statement, TableAlias, TableFactor, TableVersion,
    Value, Visit, VisitMut, Visitor, VisitorMut, With,
};
use sqlparser::dialect::{Dialect, GenericDialect};
use sqlparser::parser::{Parser, ParserOptions};

use self::dialect::TimeTravelDialect;

pub mod dialect;
pub mod exec;
pub mod reads;
pub mod stats;

/// The partition column every table shows in SQL.
pub const RUN_DATE: &str = "run_date";

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
    /// A time travel clause that cannot be read: what is wrong with it.
    TimeTravel(String),
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
            Refusal::TimeTravel(what) => write!(f, "time travel: {what}"),
        }
    }
}

/// Which version of a table a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// The version the API serves: for a gold table, the one the latest
    /// complete run wrote; for the others, the latest.
    Served,
    /// `VERSION AS OF n`.
    Version(i64),
    /// `TIMESTAMP AS OF '...'`: the latest version committed at or before.
    Time(DateTime<Utc>),
}

/// One table a query reads: the lake table (its SQL name) and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRead {
    pub table: String,
    pub as_of: AsOf,
}

/// A checked query: the text Polars SQL runs, and what it reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub text: String,
    /// The lake tables it reads (their SQL names), at whatever version.
    pub tables: BTreeSet<String>,
    /// The frames to register, by the name the text uses: a lake table's
    /// SQL name for the version served, a name of its own for a time
    /// travel clause (`gold.rfm@v3`).
    pub reads: BTreeMap<String, TableRead>,
    /// Whether the query names `run_date`: its tables then hold every date
    /// of their version, else only the latest (see the module's docs).
    pub every_date: bool,
}

/// Parses with Polars SQL's options (`SQLContext::execute`): `GenericDialect`
/// for the text Polars runs, [`TimeTravelDialect`] for the client's.
fn parse(text: &str, dialect: &dyn Dialect) -> Result<Vec<Statement>, Refusal> {
    Parser::new(dialect)
        .with_options(ParserOptions {
            trailing_commas: true,
            ..Default::default()
        })
        .try_with_sql(text)
        .and_then(|mut parser| parser.parse_statements())
        .map_err(|err| Refusal::Syntax(err.to_string()))
}

/// One statement, or why not.
fn one_statement(text: &str, dialect: &dyn Dialect) -> Result<Statement, Refusal> {
    if text.len() > MAX_QUERY_BYTES {
        return Err(Refusal::TooLong(text.len()));
    }
    let mut statements = parse(text, dialect)?;
    match statements.len() {
        0 => Err(Refusal::Empty),
        1 => Ok(statements.remove(0)),
        n => Err(Refusal::SeveralStatements(n)),
    }
}

/// One statement that is a query (the client's text), or why not.
fn query_statement(text: &str) -> Result<Statement, Refusal> {
    match one_statement(text, &TimeTravelDialect)? {
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
    let mut rewriter = Rewriter {
        tables,
        travels: BTreeMap::new(),
    };
    if let ControlFlow::Break(refusal) = VisitMut::visit(&mut statement, &mut rewriter) {
        return Err(refusal);
    }
    let travels = rewriter.travels;
    let text = statement.to_string();
    // The check runs on exactly what Polars will parse, with its dialect.
    let statement = one_statement(&text, &GenericDialect).map_err(|refusal| match refusal {
        Refusal::Syntax(err) => Refusal::NotAllowed(format!(
            "a construct that does not survive normalization ({err})"
        )),
        other => other,
    })?;
    let checked = check(&statement, tables, &travels)?;
    let reads: BTreeMap<String, TableRead> = checked
        .used
        .into_iter()
        .map(|name| {
            let read = travels.get(&name).cloned().unwrap_or_else(|| TableRead {
                table: name.clone(),
                as_of: AsOf::Served,
            });
            (name, read)
        })
        .collect();
    Ok(Prepared {
        text: text.trim_end().trim_end_matches(';').to_string(),
        tables: reads.values().map(|read| read.table.clone()).collect(),
        reads,
        every_date: checked.names_run_date,
    })
}

/// What the check found in an accepted statement.
struct Checked {
    /// The registered names it reads.
    used: BTreeSet<String>,
    names_run_date: bool,
}

/// What a parsed statement reads, or why it is refused.
fn check(
    statement: &Statement,
    tables: &BTreeSet<String>,
    travels: &BTreeMap<String, TableRead>,
) -> Result<Checked, Refusal> {
    let mut checker = Checker {
        tables,
        travels,
        scopes: Vec::new(),
        statements: 0,
        used: BTreeSet::new(),
        names_run_date: false,
    };
    match Visit::visit(statement, &mut checker) {
        ControlFlow::Break(refusal) => Err(refusal),
        ControlFlow::Continue(()) => Ok(Checked {
            used: checker.used,
            names_run_date: checker.names_run_date,
        }),
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
/// qualified wildcards (`gold.rfm.*`); a lake table with a time travel
/// clause to a name of its own, the clause removed. Nothing else changes,
/// and nothing but the version clauses is checked here (Polars' dialect
/// would not parse one left in the text).
struct Rewriter<'a> {
    tables: &'a BTreeSet<String>,
    /// The time travel names made, with what each reads.
    travels: BTreeMap<String, TableRead>,
}

impl Rewriter<'_> {
    fn table_of(&self, parts: &[ObjectNamePart]) -> Option<String> {
        spelled(parts).filter(|name| self.tables.contains(name))
    }

    /// The table a time travel clause on `name` reads, or why it cannot be
    /// read.
    fn travel(
        &self,
        factor: &TableFactor,
        name: &ObjectName,
        version: &TableVersion,
    ) -> Result<TableRead, Refusal> {
        let as_of = match version {
            TableVersion::VersionAsOf(expr) => AsOf::Version(version_number(expr)?),
            TableVersion::TimestampAsOf(expr) => AsOf::Time(time_of(expr)?),
            // FOR SYSTEM_TIME AS OF, AT(...), BEFORE(...), CHANGES(...).
            _ => {
                return Err(Refusal::NotAllowed(format!(
                    "table modifiers in {} (time travel is VERSION AS OF n or TIMESTAMP AS OF '...')",
                    shown(factor)
                )));
            }
        };
        let table = self.table_of(&name.0).ok_or_else(|| {
            Refusal::TimeTravel(format!(
                "{} is not a lake table: only the lake's tables have versions",
                shown(name)
            ))
        })?;
        Ok(TableRead { table, as_of })
    }
}

/// The version of `VERSION AS OF n`: a whole number from 0.
fn version_number(expr: &Expr) -> Result<i64, Refusal> {
    let number = match expr {
        Expr::Value(value) => match &value.value {
            Value::Number(number, _) => number.parse::<i64>().ok(),
            _ => None,
        },
        _ => None,
    };
    number.filter(|n| *n >= 0).ok_or_else(|| {
        Refusal::TimeTravel(format!(
            "VERSION AS OF {}: a version is a whole number from 0",
            shown(expr)
        ))
    })
}

/// The time of `TIMESTAMP AS OF '...'`: a string, RFC 3339
/// (`2026-12-07T10:00:00Z`), or a date and time or a date alone in UTC.
fn time_of(expr: &Expr) -> Result<DateTime<Utc>, Refusal> {
    let text = match expr {
        Expr::Value(value) => match &value.value {
            Value::SingleQuotedString(text) => Some(text.trim()),
            _ => None,
        },
        _ => None,
    };
    let time = text.and_then(|text| {
        DateTime::parse_from_rfc3339(text)
            .map(|time| time.with_timezone(&Utc))
            .ok()
            .or_else(|| {
                ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
                    .iter()
                    .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
                    .map(|time| time.and_utc())
            })
            .or_else(|| {
                NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .ok()
                    .and_then(|date| date.and_hms_opt(0, 0, 0))
                    .map(|time| time.and_utc())
            })
    });
    time.ok_or_else(|| {
        Refusal::TimeTravel(format!(
            "TIMESTAMP AS OF {}: a time is a string such as '2026-12-07T10:00:00Z' \
             (RFC 3339), '2026-12-07 10:00:00' or '2026-12-07' (UTC)",
            shown(expr)
        ))
    })
}

/// The name a time travel read is registered under: the table's SQL name
/// and the version or time, which no lake table's name contains (`@`).
fn travel_name(read: &TableRead) -> String {
    match read.as_of {
        AsOf::Served => read.table.clone(),
        AsOf::Version(version) => format!("{}@v{version}", read.table),
        AsOf::Time(time) => format!(
            "{}@{}",
            read.table,
            time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        ),
    }
}

impl VisitorMut for Rewriter<'_> {
    type Break = Refusal;

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<Refusal> {
        if !matches!(
            factor,
            TableFactor::Table {
                version: Some(_),
                ..
            }
        ) {
            return ControlFlow::Continue(());
        }
        // As written, for messages.
        let written = factor.clone();
        let TableFactor::Table {
            name,
            alias,
            args,
            with_hints,
            version,
            with_ordinality,
            partitions,
            json_path,
            sample,
            index_hints,
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        let Some(clause) = version.as_ref() else {
            return ControlFlow::Continue(());
        };
        if args.is_some() {
            return ControlFlow::Break(Refusal::TableFunction(shown(&*name)));
        }
        // Refused here, as written, rather than after the rewrite.
        if !with_hints.is_empty()
            || *with_ordinality
            || !partitions.is_empty()
            || json_path.is_some()
            || sample.is_some()
            || !index_hints.is_empty()
        {
            return ControlFlow::Break(Refusal::NotAllowed(format!(
                "table modifiers in {}",
                shown(&written)
            )));
        }
        let read = match self.travel(&written, name, clause) {
            Ok(read) => read,
            Err(refusal) => return ControlFlow::Break(refusal),
        };
        let registered = travel_name(&read);
        // Qualified columns (`gold.rfm.segment`, rewritten to
        // `"gold.rfm".segment`) still name it.
        if alias.is_none() {
            *alias = Some(TableAlias {
                explicit: true,
                name: quoted(&read.table),
                columns: Vec::new(),
                at: None,
            });
        }
        *name = ObjectName::from(quoted(&registered));
        *version = None;
        self.travels.insert(registered, read);
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &mut ObjectName) -> ControlFlow<Refusal> {
        if let Some(name) = self.table_of(&relation.0) {
            *relation = ObjectName::from(quoted(&name));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Refusal> {
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

    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<Refusal> {
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
    /// The time travel names step 1 made.
    travels: &'a BTreeMap<String, TableRead>,
    /// The CTEs of each enclosing query, innermost last.
    scopes: Vec<Scope>,
    statements: usize,
    used: BTreeSet<String>,
    names_run_date: bool,
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
            if self.tables.contains(&ident.value) || self.travels.contains_key(&ident.value) {
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

/// Whether `ident` names the column `run_date` (unquoted in any case).
fn is_run_date(ident: &Ident) -> bool {
    match ident.quote_style {
        None => ident.value.eq_ignore_ascii_case(RUN_DATE),
        Some(_) => ident.value == RUN_DATE,
    }
}

impl Visitor for Checker<'_> {
    type Break = Refusal;

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<Refusal> {
        let names = match expr {
            Expr::Identifier(ident) => is_run_date(ident),
            Expr::CompoundIdentifier(idents) => idents.last().is_some_and(is_run_date),
            _ => false,
        };
        self.names_run_date |= names;
        ControlFlow::Continue(())
    }

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
