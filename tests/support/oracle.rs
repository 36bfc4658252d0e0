//! Comparison of gold tables with the SQL oracle (`tests/oracle.sql`).

use chrono::NaiveDate;
use polars::prelude::*;

/// How a column is compared.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// Money and shares: relative tolerance 1e-9.
    Float,
    /// Counts, ranks, scores: exact.
    Int,
    Text,
    Date,
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    Date(NaiveDate),
}

fn gold_value(df: &DataFrame, column: &str, row: usize, kind: Kind) -> Value {
    let value = df
        .column(column)
        .unwrap_or_else(|_| panic!("gold has no column {column}"))
        .get(row)
        .unwrap();
    match (value, kind) {
        (AnyValue::Null, _) => Value::Null,
        (AnyValue::Float64(v), Kind::Float) => Value::Float(v),
        (AnyValue::Int64(v), Kind::Int) => Value::Int(v),
        (AnyValue::Int32(v), Kind::Int) => Value::Int(v as i64),
        (AnyValue::String(v), Kind::Text) => Value::Text(v.to_string()),
        (AnyValue::StringOwned(v), Kind::Text) => Value::Text(v.to_string()),
        (AnyValue::Date(days), Kind::Date) => Value::Date(
            NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(days as i64),
        ),
        (other, kind) => panic!("gold column {column}: unexpected value {other:?} for {kind:?}"),
    }
}

fn oracle_value(row: &postgres::Row, column: &str, kind: Kind) -> Value {
    match kind {
        Kind::Float => row
            .get::<_, Option<f64>>(column)
            .map_or(Value::Null, Value::Float),
        Kind::Int => {
            // NTILE gives integer, counts bigint.
            if let Ok(v) = row.try_get::<_, Option<i64>>(column) {
                v.map_or(Value::Null, Value::Int)
            } else {
                row.get::<_, Option<i32>>(column)
                    .map_or(Value::Null, |v| Value::Int(v as i64))
            }
        }
        Kind::Text => row
            .get::<_, Option<String>>(column)
            .map_or(Value::Null, Value::Text),
        Kind::Date => row
            .get::<_, Option<NaiveDate>>(column)
            .map_or(Value::Null, Value::Date),
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => crate::close(*x, *y, 1e-9),
        _ => a == b,
    }
}

/// Asserts that `gold` equals the oracle's rows, row by row, column by column.
pub fn assert_matches(
    table: &str,
    gold: &DataFrame,
    oracle: &[postgres::Row],
    columns: &[(&str, Kind)],
) {
    assert_eq!(
        gold.height(),
        oracle.len(),
        "gold/{table}: {} rows, the SQL oracle {}",
        gold.height(),
        oracle.len()
    );
    assert_eq!(
        gold.width(),
        columns.len(),
        "gold/{table}: columns {:?}",
        gold.get_column_names()
    );
    for (i, row) in oracle.iter().enumerate() {
        for (column, kind) in columns {
            let mine = gold_value(gold, column, i, *kind);
            let expected = oracle_value(row, column, *kind);
            assert!(
                same(&mine, &expected),
                "gold/{table} row {i} column {column}: lake {mine:?}, SQL oracle {expected:?}"
            );
        }
    }
}

/// A gold table, the ORDER BY giving the oracle its row order, and how each
/// column compares.
pub type GoldTableSpec = (&'static str, &'static str, &'static [(&'static str, Kind)]);

/// The gold tables and how each column compares.
pub const GOLD_COLUMNS: [GoldTableSpec; 5] = [
    (
        "kpi_summary",
        "",
        &[
            ("total_revenue", Kind::Float),
            ("order_count", Kind::Int),
            ("customer_count", Kind::Int),
            ("line_count", Kind::Int),
            ("units_sold", Kind::Int),
            ("avg_order_value", Kind::Float),
            ("first_order_date", Kind::Date),
            ("last_order_date", Kind::Date),
        ],
    ),
    (
        "revenue_by_country",
        "ORDER BY rank",
        &[
            ("country", Kind::Text),
            ("country_code", Kind::Text),
            ("revenue", Kind::Float),
            ("order_count", Kind::Int),
            ("customer_count", Kind::Int),
            ("revenue_share", Kind::Float),
            ("rank", Kind::Int),
        ],
    ),
    (
        "sales_by_category",
        "ORDER BY rank",
        &[
            ("category_id", Kind::Int),
            ("category_name", Kind::Text),
            ("revenue", Kind::Float),
            ("units_sold", Kind::Int),
            ("order_count", Kind::Int),
            ("revenue_share", Kind::Float),
            ("rank", Kind::Int),
        ],
    ),
    (
        "rfm",
        "ORDER BY customer_id COLLATE \"C\"",
        &[
            ("customer_id", Kind::Text),
            ("company_name", Kind::Text),
            ("country", Kind::Text),
            ("last_order_date", Kind::Date),
            ("recency_days", Kind::Int),
            ("frequency", Kind::Int),
            ("monetary", Kind::Float),
            ("r_score", Kind::Int),
            ("f_score", Kind::Int),
            ("m_score", Kind::Int),
            ("rfm_score", Kind::Text),
            ("segment", Kind::Text),
        ],
    ),
    (
        "rfm_segments",
        "ORDER BY segment COLLATE \"C\"",
        &[
            ("segment", Kind::Text),
            ("customer_count", Kind::Int),
            ("revenue", Kind::Float),
            ("avg_recency_days", Kind::Float),
            ("avg_frequency", Kind::Float),
            ("avg_monetary", Kind::Float),
        ],
    ),
];

/// Loads the alias table and the oracle views into `client`'s session.
pub fn install(client: &mut postgres::Client) {
    let aliases = lake_core::country::alias_table();
    let spellings: Vec<&str> = aliases.iter().map(|a| a.0).collect();
    let names: Vec<&str> = aliases.iter().map(|a| a.1).collect();
    let codes: Vec<&str> = aliases.iter().map(|a| a.2).collect();
    client
        .batch_execute("CREATE TEMP TABLE lake_country_alias (spelling text, name text, code text)")
        .unwrap();
    client
        .execute(
            "INSERT INTO lake_country_alias SELECT * FROM unnest($1::text[], $2::text[], $3::text[])",
            &[&spellings, &names, &codes],
        )
        .unwrap();
    client
        .batch_execute(include_str!("../oracle.sql"))
        .unwrap_or_else(|err| panic!("installing the SQL oracle: {err:?}"));
}

/// Compares every gold table of `date` in `lake` with the oracle.
pub fn assert_gold_matches_oracle(
    client: &mut postgres::Client,
    lake: &lake_table::Lake,
    date: NaiveDate,
) {
    install(client);
    for (table, order, columns) in GOLD_COLUMNS {
        let gold = crate::read(lake, lake_table::Layer::Gold, table, date);
        let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
        let sql = format!("SELECT {} FROM oracle_{table} {order}", names.join(", "));
        let rows = client.query(sql.as_str(), &[]).unwrap();
        assert_matches(table, &gold, &rows, columns);
    }
}

/// Reject counts by reason computed by the oracle.
pub fn oracle_rejects(client: &mut postgres::Client) -> std::collections::BTreeMap<String, u64> {
    client
        .query(
            "SELECT reject_reason, count(*)::bigint FROM oracle_lines WHERE reject_reason IS NOT NULL GROUP BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1) as u64))
        .collect()
}
