//! The check on every known hostile vector, on the forms a user writes,
//! and on generated statements (property tests).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use proptest::prelude::*;
use sqlparser::ast::{TableFactor, Visit, Visitor, visit_relations};

use super::*;

const LAKE: [&str; 4] = [
    "gold.kpi_summary",
    "gold.rfm",
    "silver.sales_master",
    "silver._rejects.sales_master",
];

fn known() -> BTreeSet<String> {
    LAKE.into_iter().map(String::from).collect()
}

fn refused(query: &str) -> Refusal {
    match prepare(query, &known()) {
        Ok(prepared) => panic!("accepted {query:?} as {prepared:?}"),
        Err(refusal) => refusal,
    }
}

fn accepted(query: &str) -> Prepared {
    prepare(query, &known()).unwrap_or_else(|refusal| panic!("{query:?}: {refusal}"))
}

fn table_function(query: &str, name: &str) {
    assert_eq!(
        refused(query),
        Refusal::TableFunction(name.into()),
        "{query}"
    );
}

#[test]
fn the_issue_vectors_are_refused() {
    table_function(
        "SELECT * FROM read_parquet('/any/path/file.parquet')",
        "read_parquet",
    );
    table_function(
        "SELECT s FROM gold.kpi_summary, read_parquet('/any/path/file.parquet')",
        "read_parquet",
    );
    for function in [
        "read_parquet",
        "read_csv",
        "read_ipc",
        "read_json",
        "read_ndjson",
        // Whatever later Polars versions add.
        "read_delta",
        "scan_anything",
    ] {
        table_function(&format!("SELECT * FROM {function}('/etc/x')"), function);
    }
}

#[test]
fn table_functions_are_refused_wherever_they_hide() {
    for query in [
        // CTEs, subqueries, joins, set operations.
        "WITH t AS (SELECT * FROM read_parquet('/x')) SELECT * FROM t",
        "WITH a AS (SELECT 1 AS x), b AS (SELECT * FROM a, read_parquet('/x')) SELECT * FROM b",
        "SELECT * FROM (SELECT * FROM read_parquet('/x')) AS s",
        "SELECT * FROM gold.rfm WHERE segment IN (SELECT a FROM read_parquet('/x'))",
        "SELECT * FROM gold.rfm WHERE EXISTS (SELECT 1 FROM read_parquet('/x'))",
        "SELECT (SELECT MAX(a) FROM read_parquet('/x')) AS m FROM gold.rfm",
        "SELECT * FROM gold.rfm r JOIN read_parquet('/x') p ON r.segment = p.segment",
        "SELECT * FROM gold.rfm r LEFT JOIN (SELECT * FROM read_parquet('/x')) p ON true",
        "SELECT * FROM gold.rfm r CROSS JOIN read_parquet('/x')",
        "SELECT 1 AS a UNION SELECT a FROM read_parquet('/x')",
        "SELECT 1 AS a UNION ALL (SELECT 2 EXCEPT SELECT a FROM read_parquet('/x'))",
        "SELECT a FROM gold.rfm INTERSECT SELECT a FROM read_parquet('/x')",
        "SELECT * FROM (gold.rfm JOIN read_parquet('/x') ON true)",
        "SELECT * FROM gold.rfm ORDER BY (SELECT 1 FROM read_parquet('/x'))",
        "SELECT * FROM gold.rfm GROUP BY segment HAVING COUNT(*) > (SELECT COUNT(*) FROM read_parquet('/x'))",
        "SELECT CASE WHEN true THEN (SELECT 1 FROM read_parquet('/x')) END",
        "SELECT COALESCE((SELECT 1 FROM read_parquet('/x')), 0)",
        "SELECT * FROM (WITH t AS (SELECT * FROM read_parquet('/x')) SELECT * FROM t) AS u",
        // Comments, case, quoting.
        "SELECT * FROM /* gold.rfm */ read_parquet('/x')",
        "SELECT * FROM -- gold.rfm\n read_parquet('/x')",
        "SELECT * FROM gold.rfm, /* ) */ read_parquet('/x') -- ;",
        "select * from READ_PARQUET('/x')",
        "sElEcT * FrOm ReAd_PaRqUeT('/x')",
        "SELECT * FROM \"read_parquet\"('/x')",
        "SELECT * FROM read_parquet(\"/x\")",
        "SELECT * FROM read_parquet('/x', '/y')",
        "SELECT * FROM read_parquet(path => '/x')",
        // A lake table's name used as a function.
        "SELECT * FROM gold.kpi_summary('/x')",
    ] {
        assert!(
            matches!(refused(query), Refusal::TableFunction(_)),
            "{query}: {}",
            refused(query)
        );
    }
}

#[test]
fn paths_and_unknown_names_are_refused() {
    for (query, path) in [
        ("SELECT * FROM \"/etc/passwd\"", "\"/etc/passwd\""),
        (
            "SELECT * FROM \"/var/lib/x/part-0.parquet\"",
            "\"/var/lib/x/part-0.parquet\"",
        ),
        (
            "SELECT * FROM `../lake/gold/kpi_summary`",
            "`../lake/gold/kpi_summary`",
        ),
        ("SELECT * FROM \"s3://bucket/key\"", "\"s3://bucket/key\""),
        ("SELECT * FROM \"~/x.parquet\"", "\"~/x.parquet\""),
    ] {
        assert_eq!(refused(query), Refusal::Path(path.into()), "{query}");
    }
    for (query, name) in [
        ("SELECT * FROM secrets", "secrets"),
        ("SELECT * FROM gold", "gold"),
        ("SELECT * FROM gold.nothing", "gold.nothing"),
        ("SELECT * FROM bronze.orders", "bronze.orders"),
        (
            "SELECT * FROM gold.kpi_summary.extra",
            "gold.kpi_summary.extra",
        ),
        // Polars resolves a name by its first part: never accept a tail.
        (
            "SELECT * FROM \"gold.kpi_summary\".other",
            "\"gold.kpi_summary\".other",
        ),
        // Quoted names compare as written.
        ("SELECT * FROM \"Gold\".\"rfm\"", "\"Gold\".\"rfm\""),
        ("SELECT * FROM \"GOLD.RFM\"", "\"GOLD.RFM\""),
        ("SELECT * FROM \"gold.rfm \"", "\"gold.rfm \""),
        // A CTE inside its own definition, or before it is defined.
        ("WITH t AS (SELECT * FROM t) SELECT * FROM t", "t"),
        (
            "WITH a AS (SELECT * FROM b), b AS (SELECT 1 AS x) SELECT * FROM a",
            "b",
        ),
        // A CTE name outside the query that defines it.
        (
            "SELECT * FROM (WITH t AS (SELECT 1 AS a) SELECT * FROM t) AS x, t",
            "t",
        ),
        (
            "SELECT * FROM gold.rfm WHERE segment IN (WITH t AS (SELECT 'x' AS s) SELECT s FROM t) \
             UNION SELECT * FROM t",
            "t",
        ),
    ] {
        match refused(query) {
            Refusal::UnknownTable { name: got, known } => {
                assert_eq!(got, name, "{query}");
                assert_eq!(known.len(), LAKE.len());
            }
            other => panic!("{query}: {other}"),
        }
    }
    let message = refused("SELECT * FROM gold.nothing").to_string();
    assert!(
        message.contains("unknown table gold.nothing")
            && message.contains("tables are named layer.table: gold.kpi_summary"),
        "{message}"
    );
}

#[test]
fn other_statements_and_clauses_are_refused() {
    for (query, word) in [
        ("DROP TABLE gold.rfm", "DROP"),
        ("/* select */ delete from gold.rfm", "DELETE"),
        ("CREATE TABLE x AS SELECT 1", "CREATE"),
        ("INSERT INTO gold.rfm VALUES (1)", "INSERT"),
        ("UPDATE gold.rfm SET a = 1", "UPDATE"),
        ("TRUNCATE gold.rfm", "TRUNCATE"),
        ("EXPLAIN SELECT * FROM read_parquet('/x')", "EXPLAIN"),
        ("SHOW TABLES", "SHOW"),
        ("COPY gold.rfm TO '/tmp/x'", "COPY"),
        ("SET x = 1", "SET"),
    ] {
        assert_eq!(refused(query), Refusal::NotSelect(word.into()), "{query}");
        assert_eq!(check_shape(query), Err(Refusal::NotSelect(word.into())));
    }
    assert_eq!(
        refused("SELECT 1; DROP TABLE gold.rfm"),
        Refusal::SeveralStatements(2)
    );
    assert_eq!(
        refused("SELECT 1; SELECT * FROM read_parquet('/x')"),
        Refusal::SeveralStatements(2)
    );
    for query in [
        "SELECT * INTO stolen FROM gold.rfm",
        "SELECT * FROM gold.rfm FOR UPDATE",
        "WITH RECURSIVE t AS (SELECT 1) SELECT * FROM t",
        "SELECT * FROM UNNEST([1, 2]) AS u(a)",
        "SELECT * FROM gold.rfm, LATERAL (SELECT 1) AS l",
        "SELECT * FROM gold.rfm TABLESAMPLE (10 PERCENT)",
    ] {
        assert!(
            matches!(refused(query), Refusal::NotAllowed(_)),
            "{query}: {}",
            refused(query)
        );
    }
    // Not even parsed by Polars' dialect.
    assert!(matches!(refused("TABLE gold.rfm"), Refusal::Syntax(_)));
    assert_eq!(refused(""), Refusal::Empty);
    assert_eq!(refused("-- nothing"), Refusal::Empty);
    assert_eq!(refused("  /* nothing */ "), Refusal::Empty);
    assert!(matches!(refused("SELECT 'open"), Refusal::Syntax(_)));
    assert!(matches!(refused("SELECT 1 /* open"), Refusal::Syntax(_)));
    // A string where a name goes parses as a quoted name.
    assert_eq!(
        refused("SELECT * FROM '/x.parquet'"),
        Refusal::Path("'/x.parquet'".into())
    );
    assert_eq!(
        refused(&format!("SELECT '{}'", "x".repeat(MAX_QUERY_BYTES))),
        Refusal::TooLong(MAX_QUERY_BYTES + 9)
    );
    // Deep nesting ends at the parser's recursion limit, not the stack.
    let deep = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
    assert!(matches!(refused(&deep), Refusal::Syntax(_)));
    let deep = format!(
        "SELECT * FROM {}gold.rfm{}",
        "(SELECT * FROM ".repeat(500),
        ")".repeat(500)
    );
    assert!(matches!(refused(&deep), Refusal::Syntax(_)));
}

#[test]
fn queries_over_the_lake_pass() {
    for (query, tables) in [
        ("SELECT 1", &[][..]),
        ("  select * from gold.rfm;  ", &["gold.rfm"][..]),
        ("-- top\nWITH t AS (SELECT 1) SELECT * FROM t", &[]),
        ("/* c */ SELECT ';' AS semicolon", &[]),
        ("SELECT 'read_parquet(''/x'')' AS text", &[]),
        (
            "SELECT * FROM \"silver._rejects.sales_master\"",
            &["silver._rejects.sales_master"],
        ),
        (
            "SELECT * FROM Silver._Rejects.Sales_Master",
            &["silver._rejects.sales_master"],
        ),
        ("SELECT * FROM \"gold\".\"rfm\"", &["gold.rfm"]),
        ("SELECT * FROM `gold`.`rfm`", &["gold.rfm"]),
        (
            "WITH top AS (SELECT * FROM gold.rfm), s AS (SELECT * FROM top) \
             SELECT * FROM s JOIN silver.sales_master m ON s.customer_id = m.customer_id",
            &["gold.rfm", "silver.sales_master"],
        ),
        (
            "SELECT * FROM gold.rfm WHERE customer_id IN (SELECT customer_id FROM silver.sales_master) \
             AND EXISTS (SELECT 1 FROM gold.kpi_summary)",
            &["gold.kpi_summary", "gold.rfm", "silver.sales_master"],
        ),
        (
            "SELECT a FROM (SELECT 1 AS a) AS x UNION ALL SELECT order_count FROM gold.kpi_summary",
            &["gold.kpi_summary"],
        ),
        (
            "SELECT * FROM (gold.rfm r JOIN silver.sales_master m ON r.customer_id = m.customer_id)",
            &["gold.rfm", "silver.sales_master"],
        ),
        // Later CTEs see the earlier ones.
        (
            "WITH a AS (SELECT * FROM gold.rfm), b AS (SELECT * FROM a) SELECT * FROM b",
            &["gold.rfm"],
        ),
        // A CTE is visible in nested queries of the query that defines it.
        (
            "WITH t AS (SELECT 1 AS a) SELECT * FROM (SELECT * FROM t) AS u WHERE a IN (SELECT a FROM t)",
            &[],
        ),
        ("VALUES (1, 2)", &[]),
        ("SELECT 1 AS a,", &[]),
    ] {
        let prepared = accepted(query);
        let expected: BTreeSet<String> = tables.iter().map(|t| t.to_string()).collect();
        assert_eq!(prepared.tables, expected, "{query}");
        assert_eq!(check_shape(query), Ok(()), "{query}");
    }
}

#[test]
fn lake_names_become_quoted_identifiers() {
    let prepared = accepted(
        "SELECT r.segment, 'gold.rfm' AS s, silver.sales_master.country, gold.rfm.* \
         FROM gold.rfm r JOIN silver.sales_master ON silver.sales_master.customer_id = r.customer_id \
         WHERE silver._rejects.sales_master.x = 1 OR \"gold.rfm\".y = 2 OR gold.rfm_segments.z = 3;",
    );
    assert_eq!(
        prepared.text,
        "SELECT r.segment, 'gold.rfm' AS s, \"silver.sales_master\".country, \"gold.rfm\".* \
         FROM \"gold.rfm\" r JOIN \"silver.sales_master\" \
         ON \"silver.sales_master\".customer_id = r.customer_id \
         WHERE \"silver._rejects.sales_master\".x = 1 OR \"gold.rfm\".y = 2 OR gold.rfm_segments.z = 3"
    );
    assert_eq!(
        prepared.tables,
        ["gold.rfm", "silver.sales_master"]
            .into_iter()
            .map(String::from)
            .collect()
    );
}

#[test]
fn a_prepared_query_runs_over_its_tables() {
    let rfm =
        df!("segment" => ["Champions", "At Risk", "Champions"], "monetary" => [10.0, 2.0, 5.0])
            .unwrap();
    let prepared = accepted(
        "SELECT segment, SUM(monetary) AS revenue FROM gold.rfm GROUP BY segment ORDER BY segment",
    );
    let out = plan(&prepared, vec![("gold.rfm".into(), rfm.lazy())])
        .unwrap()
        .collect()
        .unwrap();
    let expected = df!("segment" => ["At Risk", "Champions"], "revenue" => [2.0, 15.0]).unwrap();
    assert!(out.equals(&expected), "{out}");
}

#[test]
fn time_travel_reads_a_table_of_its_own_without_the_clause() {
    let prepared = accepted(
        "SELECT r.segment, gold.rfm.monetary FROM gold.rfm VERSION AS OF 3 \
         JOIN gold.rfm AS r ON r.customer_id = gold.rfm.customer_id \
         JOIN silver.sales_master TIMESTAMP AS OF '2026-12-07T10:00:00Z' AS s ON true",
    );
    assert_eq!(
        prepared.text,
        "SELECT r.segment, \"gold.rfm\".monetary FROM \"gold.rfm@v3\" AS \"gold.rfm\" \
         JOIN \"gold.rfm\" AS r ON r.customer_id = \"gold.rfm\".customer_id \
         JOIN \"silver.sales_master@2026-12-07T10:00:00.000Z\" AS s ON true"
    );
    let time = DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let read = |table: &str, as_of| TableRead {
        table: table.into(),
        as_of,
    };
    assert_eq!(
        prepared.reads,
        BTreeMap::from([
            ("gold.rfm".to_string(), read("gold.rfm", AsOf::Served)),
            (
                "gold.rfm@v3".to_string(),
                read("gold.rfm", AsOf::Version(3))
            ),
            (
                "silver.sales_master@2026-12-07T10:00:00.000Z".to_string(),
                read("silver.sales_master", AsOf::Time(time)),
            ),
        ])
    );
    assert_eq!(
        prepared.tables,
        ["gold.rfm", "silver.sales_master"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    // The times a client writes, all UTC.
    for (written, expected) in [
        ("2026-12-07T11:00:00+01:00", "2026-12-07T10:00:00.000Z"),
        ("2026-12-07 10:00:00", "2026-12-07T10:00:00.000Z"),
        ("2026-12-07 10:00:00.250", "2026-12-07T10:00:00.250Z"),
        ("2026-12-07", "2026-12-07T00:00:00.000Z"),
    ] {
        let prepared = accepted(&format!(
            "SELECT * FROM gold.rfm TIMESTAMP AS OF '{written}'"
        ));
        let names: Vec<&String> = prepared.reads.keys().collect();
        assert_eq!(names, [&format!("gold.rfm@{expected}")], "{written}");
    }
}

#[test]
fn naming_run_date_reads_every_date() {
    for (query, every_date) in [
        ("SELECT * FROM gold.rfm", false),
        ("SELECT 'run_date' AS s FROM gold.rfm", false),
        ("SELECT * FROM gold.rfm WHERE run_date = '2026-11-26'", true),
        (
            "SELECT * FROM gold.rfm r WHERE r.RUN_DATE > '2026-11-26'",
            true,
        ),
        ("SELECT run_date, COUNT(*) FROM gold.rfm GROUP BY 1", true),
        (
            "SELECT * FROM gold.rfm WHERE \"run_date\" IS NOT NULL",
            true,
        ),
        (
            "SELECT * FROM gold.rfm WHERE segment IN \
             (SELECT segment FROM gold.rfm VERSION AS OF 1 WHERE gold.rfm.run_date < '2026-11-26')",
            true,
        ),
    ] {
        assert_eq!(accepted(query).every_date, every_date, "{query}");
    }
}

/// The first parse's dialect is Polars' but for time travel: the same tree
/// for every query of these tests that has no version clause.
#[test]
fn the_time_travel_dialect_parses_the_rest_as_polars_does() {
    let corpus = [
        "SELECT * FROM gold.rfm r JOIN read_parquet('/x') p ON r.segment = p.segment",
        "WITH a AS (SELECT 1 AS x), b AS (SELECT * FROM a) SELECT * FROM b",
        "SELECT * FROM `gold`.`rfm` WHERE a @> b OR x #> '{a}' OR c ILIKE 'x%'",
        "SELECT * EXCLUDE (a), COUNT(*) FILTER (WHERE b > 1) FROM gold.rfm GROUP BY ALL",
        "SELECT a, FROM gold.rfm LIMIT 3 OFFSET 1",
        "SELECT {'a': 1} AS m, [1, 2][1] AS l, x::DATE, DATE '2026-11-26' FROM t",
        "SELECT * FROM gold.rfm r, LATERAL (SELECT 1) AS l TABLESAMPLE (10 PERCENT)",
        "SELECT * FROM gold.rfm PARTITION (p1) WHERE run_date = '2026-11-26' QUALIFY x = 1",
        "SELECT $1, #tmp.a, @v FROM gold.rfm",
        "SELECT 1 AS a UNION ALL (SELECT 2 EXCEPT SELECT a FROM read_parquet('/x'))",
        "SELECT * FROM gold.rfm ORDER BY 1 DESC NULLS LAST FETCH FIRST 3 ROWS ONLY",
    ];
    for query in corpus {
        let generic = parse(query, &GenericDialect);
        let ours = parse(query, &TimeTravelDialect);
        assert_eq!(
            format!("{generic:?}"),
            format!("{ours:?}"),
            "{query} parses differently"
        );
    }
}

#[test]
fn time_travel_refusals_say_what_is_wrong() {
    let refusals: Vec<String> = [
        "SELECT * FROM gold.rfm FOR SYSTEM_TIME AS OF '2026-12-07'",
        "SELECT * FROM gold.rfm AT(TIMESTAMP => '2026-12-07')",
        "SELECT * FROM gold.rfm BEFORE(STATEMENT => 'x')",
        "SELECT * FROM gold.rfm VERSION AS OF 1.5",
        "SELECT * FROM gold.rfm TIMESTAMP AS OF 'yesterday'",
        "SELECT * FROM gold.rfm TIMESTAMP AS OF now()",
        "SELECT * FROM gold.rfm TIMESTAMP AS OF 20261207",
        "SELECT * FROM gold.nothing VERSION AS OF 1",
        "WITH t AS (SELECT 1 AS a) SELECT * FROM t VERSION AS OF 0",
        "SELECT * FROM read_parquet VERSION AS OF 1 ('/x')",
        "SELECT * FROM gold.rfm VERSION AS OF 1 TABLESAMPLE (10 PERCENT)",
        "SELECT * FROM \"gold.rfm@v1\"",
    ]
    .iter()
    .map(|query| format!("{query}\n  -> {}", refused(query)))
    .collect();
    insta::assert_snapshot!(refusals.join("\n"));
}

// ---- Property tests -------------------------------------------------------

/// A generated query, with what every table reference is.
#[derive(Debug, Clone)]
enum Q {
    Select {
        from: Vec<F>,
        filter: Option<Box<Q>>,
        scalar: Option<Box<Q>>,
    },
    SetOp(Box<Q>, &'static str, Box<Q>),
    With(Vec<(usize, Q)>, Box<Q>),
}

#[derive(Debug, Clone)]
enum F {
    /// A lake table (index in LAKE) in one of its spellings.
    Lake(usize, usize),
    /// A reference to CTE `c{n}`: fine when a query around it defines it.
    Cte(usize),
    /// A reference that must be refused.
    Hostile(usize),
    Derived(Box<Q>),
    Join(Box<F>, Box<F>),
}

const CTES: usize = 3;

const HOSTILE: [&str; 16] = [
    "read_parquet('/any/path/file.parquet')",
    "READ_CSV('/etc/passwd')",
    "read_ipc('/x.arrow')",
    "read_json('/x.json')",
    "read_ndjson('/x.ndjson')",
    "read_delta('/lake/gold/x')",
    "\"read_parquet\"('/x')",
    "gold.kpi_summary('/x')",
    "\"/etc/passwd\"",
    "`/tmp/x.parquet`",
    "secrets",
    "gold.nothing",
    "gold",
    "\"gold.kpi_summary\".x",
    "\"GOLD.RFM\"",
    "UNNEST([1, 2]) AS u (a)",
];

fn spelling(table: usize, style: usize) -> String {
    let name = LAKE[table];
    match style % 5 {
        0 => name.to_string(),
        1 => name.to_ascii_uppercase(),
        2 => format!("\"{name}\""),
        3 => name
            .split('.')
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join("."),
        _ => name
            .split('.')
            .enumerate()
            .map(|(i, p)| {
                if i % 2 == 0 {
                    p.to_ascii_uppercase()
                } else {
                    format!("`{p}`")
                }
            })
            .collect::<Vec<_>>()
            .join("."),
    }
}

fn leaf() -> impl Strategy<Value = F> {
    prop_oneof![
        14 => (0..LAKE.len(), 0..5usize).prop_map(|(t, s)| F::Lake(t, s)),
        3 => (0..CTES).prop_map(F::Cte),
        1 => (0..HOSTILE.len()).prop_map(F::Hostile),
    ]
}

fn query() -> impl Strategy<Value = Q> {
    let select = prop::collection::vec(leaf(), 1..3).prop_map(|from| Q::Select {
        from,
        filter: None,
        scalar: None,
    });
    select.prop_recursive(5, 48, 4, |inner| {
        let from_item = prop_oneof![
            3 => leaf(),
            1 => inner.clone().prop_map(|q| F::Derived(Box::new(q))),
            1 => (leaf(), leaf()).prop_map(|(a, b)| F::Join(Box::new(a), Box::new(b))),
            1 => (inner.clone(), leaf())
                .prop_map(|(q, b)| F::Join(Box::new(F::Derived(Box::new(q))), Box::new(b))),
        ];
        prop_oneof![
            (
                prop::collection::vec(from_item, 1..3),
                prop::option::of(inner.clone()),
                prop::option::of(inner.clone()),
            )
                .prop_map(|(from, filter, scalar)| Q::Select {
                    from,
                    filter: filter.map(Box::new),
                    scalar: scalar.map(Box::new),
                }),
            (
                inner.clone(),
                prop::sample::select(vec!["UNION ALL", "UNION", "EXCEPT", "INTERSECT"]),
                inner.clone()
            )
                .prop_map(|(a, op, b)| Q::SetOp(Box::new(a), op, Box::new(b))),
            (
                prop::collection::vec((0..CTES, inner.clone()), 1..3),
                inner.clone()
            )
                .prop_map(|(ctes, body)| Q::With(ctes, Box::new(body))),
        ]
    })
}

/// Renders with separators drawn from `seps` (spaces, newlines,
/// comments that spell table names and quotes).
struct Render<'a> {
    seps: &'a [usize],
    at: usize,
    out: String,
}

const SEPARATORS: [&str; 6] = [
    " ",
    "\n",
    " /* gold.rfm */ ",
    " -- read_parquet('/x') ;\n",
    "\t",
    " /* ' \" ) */ ",
];

impl Render<'_> {
    fn sep(&mut self) {
        let i = self.seps[self.at % self.seps.len()];
        self.at += 1;
        self.out.push_str(SEPARATORS[i % SEPARATORS.len()]);
    }

    fn word(&mut self, word: &str) {
        self.out.push_str(word);
        self.sep();
    }

    fn query(&mut self, q: &Q) {
        match q {
            Q::Select {
                from,
                filter,
                scalar,
            } => {
                self.word("SELECT");
                match scalar {
                    Some(sub) => {
                        self.word("(");
                        self.query(sub);
                        self.word(")");
                        self.word("AS");
                        self.word("v");
                    }
                    None => self.word("1 AS v"),
                }
                self.word("FROM");
                for (i, item) in from.iter().enumerate() {
                    if i > 0 {
                        self.word(",");
                    }
                    self.from(item, i);
                }
                if let Some(sub) = filter {
                    self.word("WHERE");
                    self.word("1 IN (");
                    self.query(sub);
                    self.word(")");
                    self.word("OR EXISTS (");
                    self.query(sub);
                    self.word(")");
                }
            }
            Q::SetOp(a, op, b) => {
                self.word("SELECT * FROM (");
                self.query(a);
                self.word(") AS sa");
                self.word(op);
                self.word("SELECT * FROM (");
                self.query(b);
                self.word(") AS sb");
            }
            Q::With(ctes, body) => {
                self.word("WITH");
                for (i, (n, cte)) in ctes.iter().enumerate() {
                    if i > 0 {
                        self.word(",");
                    }
                    self.word(&format!("c{n}"));
                    self.word("AS (");
                    self.query(cte);
                    self.word(")");
                }
                if matches!(**body, Q::With(..)) {
                    // WITH cannot follow WITH directly.
                    self.word("SELECT * FROM (");
                    self.query(body);
                    self.word(") AS wb");
                } else {
                    self.query(body);
                }
            }
        }
    }

    fn from(&mut self, item: &F, i: usize) {
        match item {
            F::Lake(t, s) => self.word(&spelling(*t, *s)),
            F::Cte(n) => self.word(&format!("c{n}")),
            F::Hostile(h) => self.word(HOSTILE[*h]),
            F::Derived(q) => {
                self.word("(");
                self.query(q);
                self.word(")");
                self.word(&format!("AS d{i}"));
            }
            F::Join(a, b) => {
                self.from(a, i * 2 + 10);
                self.word("JOIN");
                self.from(b, i * 2 + 11);
                self.word("ON true");
            }
        }
    }
}

fn render(q: &Q, seps: &[usize]) -> String {
    let mut r = Render {
        seps,
        at: 0,
        out: String::new(),
    };
    r.query(q);
    r.out
}

/// The generator's own account: does `q` reference anything but lake
/// tables and CTEs defined around the reference?
fn hostile(q: &Q, scope: &mut Vec<usize>) -> bool {
    match q {
        Q::Select {
            from,
            filter,
            scalar,
        } => {
            from.iter().any(|f| hostile_from(f, scope))
                || filter.as_ref().is_some_and(|s| hostile(s, scope))
                || scalar.as_ref().is_some_and(|s| hostile(s, scope))
        }
        Q::SetOp(a, _, b) => hostile(a, scope) || hostile(b, scope),
        Q::With(ctes, body) => {
            // Each CTE's definition sees the CTEs around this query and
            // the ones before it; the body sees them all.
            let before = scope.len();
            for (n, cte) in ctes {
                if hostile(cte, scope) {
                    scope.truncate(before);
                    return true;
                }
                scope.push(*n);
            }
            let result = hostile(body, scope);
            scope.truncate(before);
            result
        }
    }
}

fn hostile_from(f: &F, scope: &mut Vec<usize>) -> bool {
    match f {
        F::Lake(..) => false,
        F::Cte(n) => !scope.contains(n),
        F::Hostile(_) => true,
        F::Derived(q) => hostile(q, scope),
        F::Join(a, b) => hostile_from(a, scope) || hostile_from(b, scope),
    }
}

/// An oracle apart from the checker: every relation sqlparser finds in
/// the text Polars would run is a lake table or a CTE the text defines,
/// and no table factor anywhere has arguments.
fn only_lake_tables(text: &str) -> Result<(), String> {
    let statements = parse(text, &GenericDialect).map_err(|e| e.to_string())?;
    let mut ctes = BTreeSet::new();
    struct Ctes<'a>(&'a mut BTreeSet<String>, bool);
    impl Visitor for Ctes<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
            if let Some(with) = &query.with {
                for cte in &with.cte_tables {
                    self.0.insert(cte.alias.name.value.clone());
                }
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
            match factor {
                TableFactor::Table { args: None, .. }
                | TableFactor::Derived { .. }
                | TableFactor::NestedJoin { .. } => ControlFlow::Continue(()),
                _ => {
                    self.1 = true;
                    ControlFlow::Break(())
                }
            }
        }
    }
    let mut visitor = Ctes(&mut ctes, false);
    let _ = statements.visit(&mut visitor);
    if visitor.1 {
        return Err(format!("a table function or other factor in {text}"));
    }
    let lake = known();
    let mut bad = None;
    let _ = visit_relations(&statements, |name| {
        let ok = match name.0.as_slice() {
            [part] => part
                .as_ident()
                .is_some_and(|i| lake.contains(&i.value) || ctes.contains(&i.value)),
            _ => false,
        };
        if !ok {
            bad = Some(name.to_string());
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    match bad {
        Some(name) => Err(format!("relation {name} in {text}")),
        None => Ok(()),
    }
}

/// The property below is not vacuous: the generator makes plenty of both
/// kinds of statement, and they nest.
#[test]
fn the_generator_makes_statements_of_both_kinds() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut clean, mut hostile_ones, mut nested) = (0, 0, 0);
    for _ in 0..1000 {
        let q = query().new_tree(&mut runner).unwrap().current();
        if hostile(&q, &mut Vec::new()) {
            hostile_ones += 1;
        } else {
            clean += 1;
            assert!(
                prepare(&render(&q, &[0]), &known()).is_ok(),
                "{}",
                render(&q, &[0])
            );
        }
        if render(&q, &[0]).matches("SELECT").count() >= 3 {
            nested += 1;
        }
    }
    assert!(
        clean >= 150 && hostile_ones >= 150 && nested >= 150 && std::env::var("SHOW_MIX").is_err(),
        "{clean} clean, {hostile_ones} hostile, {nested} nested"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// The check accepts a generated statement exactly when the generator
    /// says it names only lake tables and CTEs in scope; what it accepts
    /// passes the independent oracle.
    #[test]
    fn generated_statements_are_accepted_iff_they_read_only_lake_tables(
        q in query(),
        seps in prop::collection::vec(0..SEPARATORS.len(), 1..16),
    ) {
        let text = render(&q, &seps);
        let hostile = hostile(&q, &mut Vec::new());
        match prepare(&text, &known()) {
            Ok(prepared) => {
                prop_assert!(!hostile, "accepted a hostile statement: {}", text);
                prop_assert!(prepared.tables.iter().all(|t| known().contains(t)));
                if let Err(why) = only_lake_tables(&prepared.text) {
                    return Err(TestCaseError::fail(why));
                }
            }
            Err(refusal) => prop_assert!(hostile, "refused {}: {}", text, refusal),
        }
    }

    /// Token soup: never a panic, and whatever passes reads only lake
    /// tables.
    #[test]
    fn token_soup_never_passes_anything_but_lake_tables(
        tokens in prop::collection::vec(prop::sample::select(vec![
            "SELECT", "select", "*", "1", "FROM", "WHERE", "WITH", "AS", "(", ")", ",", ";",
            ".", "JOIN", "ON", "true", "UNION", "IN", "EXISTS", "t", "t", "gold", "kpi_summary",
            "gold.kpi_summary", "\"gold.kpi_summary\"", "silver._rejects.sales_master",
            "read_parquet", "READ_CSV", "'/etc/passwd'", "\"/etc/passwd\"", "`x`", "--", "\n",
            "/*", "*/", "'", "\"", "LATERAL", "UNNEST", "[1]", "INTO", "TABLE", "VALUES",
            "DROP", "EXPLAIN", "ORDER BY", "LIMIT", "FETCH", "=", "=>",
        ]), 1..40),
    ) {
        let text = tokens.join(" ");
        if let Ok(prepared) = prepare(&text, &known())
            && let Err(why) = only_lake_tables(&prepared.text)
        {
            return Err(TestCaseError::fail(why));
        }
    }
}
