//! Read-only SQL over the lake: one SELECT (or WITH ... SELECT) statement,
//! run by Polars SQL over the latest committed partition of each table it
//! names (`silver.sales_master`, `gold.rfm`, `silver._rejects.sales_master`).
//!
//! Polars SQL resolves a dotted name by its first part only, so the names
//! of lake tables are rewritten to quoted identifiers (`"silver.sales_master"`)
//! before it parses the query, and only the tables named are loaded.

use std::collections::BTreeSet;

use polars::prelude::*;
use polars::sql::SQLContext;

/// Why a query is refused before it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    Empty,
    NotSelect(String),
    SeveralStatements,
    Unterminated,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Empty => f.write_str("the query is empty"),
            Refusal::NotSelect(word) => write!(
                f,
                "only SELECT queries are allowed (the lake is read-only here): the query starts with {word}"
            ),
            Refusal::SeveralStatements => {
                f.write_str("one statement only: the query has a ';' before its end")
            }
            Refusal::Unterminated => f.write_str("the query has an unterminated quote or comment"),
        }
    }
}

/// A piece of the query text.
#[derive(Debug, PartialEq)]
enum Token<'a> {
    /// Code outside quotes and comments.
    Code(&'a str),
    /// A quoted string, identifier or comment, as written.
    Quoted(&'a str),
    /// `"..."`: a quoted identifier, without its quotes.
    Identifier(&'a str),
}

/// Splits the text at quotes and comments.
fn tokens(query: &str) -> Result<Vec<Token<'_>>, Refusal> {
    let bytes = query.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let end_of = |from: usize, close: &str| {
            query[from..]
                .find(close)
                .map(|at| from + at + close.len())
                .ok_or(Refusal::Unterminated)
        };
        let quoted_end = match bytes[i] {
            b'\'' => Some(end_of(i + 1, "'")?),
            b'"' => Some(end_of(i + 1, "\"")?),
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                Some(query[i..].find('\n').map_or(bytes.len(), |at| i + at + 1))
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => Some(end_of(i + 2, "*/")?),
            _ => None,
        };
        match quoted_end {
            Some(end) => {
                if start < i {
                    out.push(Token::Code(&query[start..i]));
                }
                if bytes[i] == b'"' {
                    out.push(Token::Identifier(&query[i + 1..end - 1]));
                } else {
                    out.push(Token::Quoted(&query[i..end]));
                }
                i = end;
                start = end;
            }
            None => i += 1,
        }
    }
    if start < bytes.len() {
        out.push(Token::Code(&query[start..]));
    }
    Ok(out)
}

/// Refuses anything but one SELECT statement.
pub fn check_read_only(query: &str) -> Result<(), Refusal> {
    let tokens = tokens(query)?;
    let code: Vec<&str> = tokens
        .iter()
        .filter_map(|t| match t {
            Token::Code(text) => Some(*text),
            _ => None,
        })
        .collect();
    let first_word = code
        .iter()
        .flat_map(|text| text.split(|c: char| !(c.is_alphanumeric() || c == '_')))
        .find(|w| !w.is_empty());
    let Some(first_word) = first_word else {
        return Err(Refusal::Empty);
    };
    if !["select", "with"].contains(&first_word.to_ascii_lowercase().as_str()) {
        return Err(Refusal::NotSelect(first_word.to_ascii_uppercase()));
    }
    // A ';' is only allowed at the very end (then whitespace).
    let joined: String = code.concat();
    if let Some(at) = joined.find(';')
        && !joined[at + 1..].trim().is_empty()
    {
        return Err(Refusal::SeveralStatements);
    }
    Ok(())
}

/// The query with the lake tables it names (from `known`) quoted, and
/// those names.
pub fn bind_tables(
    query: &str,
    known: &BTreeSet<String>,
) -> Result<(String, BTreeSet<String>), Refusal> {
    let mut used = BTreeSet::new();
    let mut out = String::with_capacity(query.len() + 16);
    for token in tokens(query)? {
        match token {
            Token::Quoted(text) => out.push_str(text),
            Token::Identifier(name) => {
                if known.contains(name) {
                    used.insert(name.to_string());
                }
                out.push('"');
                out.push_str(name);
                out.push('"');
            }
            Token::Code(text) => out.push_str(&quote_names(text, known, &mut used)),
        }
    }
    // Polars SQL wants no trailing ';'.
    let trimmed = out.trim_end().trim_end_matches(';').to_string();
    Ok((trimmed, used))
}

/// Rewrites the dotted words of `code` that start with a known table name.
fn quote_names(code: &str, known: &BTreeSet<String>, used: &mut BTreeSet<String>) -> String {
    let mut out = String::with_capacity(code.len());
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
    let mut rest = code;
    while let Some(start) = rest.find(is_word) {
        out.push_str(&rest[..start]);
        let word_len = rest[start..]
            .find(|c: char| !is_word(c))
            .unwrap_or(rest.len() - start);
        let word = &rest[start..start + word_len];
        // The longest prefix of the word (at a '.') that is a table.
        let table = known
            .iter()
            .filter(|name| {
                word.len() >= name.len()
                    && word[..name.len()].eq_ignore_ascii_case(name)
                    && (word.len() == name.len() || word.as_bytes()[name.len()] == b'.')
            })
            .max_by_key(|name| name.len());
        match table {
            Some(name) => {
                used.insert(name.clone());
                out.push('"');
                out.push_str(name);
                out.push('"');
                out.push_str(&word[name.len()..]);
            }
            None => out.push_str(word),
        }
        rest = &rest[start + word_len..];
    }
    out.push_str(rest);
    out
}

/// The plan of a checked, bound query over the given frames.
pub fn plan(query: &str, tables: Vec<(String, LazyFrame)>) -> PolarsResult<LazyFrame> {
    let mut context = SQLContext::new();
    for (name, frame) in tables {
        context.register(&name, frame);
    }
    context.execute(query)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> BTreeSet<String> {
        [
            "silver.sales_master",
            "gold.rfm",
            "silver._rejects.sales_master",
        ]
        .into_iter()
        .map(String::from)
        .collect()
    }

    #[test]
    fn only_one_select_passes() {
        for ok in [
            "SELECT 1",
            "  select * from gold.rfm;  ",
            "-- top\nWITH t AS (SELECT 1) SELECT * FROM t",
            "/* c */ SELECT ';' AS semicolon",
        ] {
            assert_eq!(check_read_only(ok), Ok(()), "{ok}");
        }
        let refused = |q: &str| check_read_only(q).unwrap_err();
        assert_eq!(refused(""), Refusal::Empty);
        assert_eq!(refused("-- nothing"), Refusal::Empty);
        assert_eq!(
            refused("DROP TABLE gold.rfm"),
            Refusal::NotSelect("DROP".into())
        );
        assert_eq!(
            refused("/* select */ delete from gold.rfm"),
            Refusal::NotSelect("DELETE".into())
        );
        assert_eq!(
            refused("CREATE TABLE x AS SELECT 1"),
            Refusal::NotSelect("CREATE".into())
        );
        assert_eq!(
            refused("SELECT 1; DROP TABLE gold.rfm"),
            Refusal::SeveralStatements
        );
        assert_eq!(refused("SELECT 'open"), Refusal::Unterminated);
        assert_eq!(refused("SELECT 1 /* open"), Refusal::Unterminated);
    }

    #[test]
    fn lake_names_become_quoted_identifiers() {
        let (query, used) = bind_tables(
            "SELECT r.segment, 'gold.rfm' AS s FROM gold.rfm r JOIN silver.sales_master m \
             ON m.customer_id = r.customer_id WHERE silver._rejects.sales_master.x = 1 \
             AND \"gold.rfm\".y = 2 AND gold.rfm_segments.z = 3;",
            &known(),
        )
        .unwrap();
        assert_eq!(
            query,
            "SELECT r.segment, 'gold.rfm' AS s FROM \"gold.rfm\" r JOIN \"silver.sales_master\" m \
             ON m.customer_id = r.customer_id WHERE \"silver._rejects.sales_master\".x = 1 \
             AND \"gold.rfm\".y = 2 AND gold.rfm_segments.z = 3"
        );
        assert_eq!(used, known());
    }

    #[test]
    fn a_bound_query_runs_over_its_tables() {
        let rfm =
            df!("segment" => ["Champions", "At Risk", "Champions"], "monetary" => [10.0, 2.0, 5.0])
                .unwrap();
        let (query, used) = bind_tables(
            "SELECT segment, SUM(monetary) AS revenue FROM gold.rfm GROUP BY segment ORDER BY segment",
            &known(),
        )
        .unwrap();
        assert_eq!(used.len(), 1);
        let out = plan(&query, vec![("gold.rfm".into(), rfm.lazy())])
            .unwrap()
            .collect()
            .unwrap();
        let expected =
            df!("segment" => ["At Risk", "Champions"], "revenue" => [2.0, 15.0]).unwrap();
        assert!(out.equals(&expected), "{out}");
    }
}
