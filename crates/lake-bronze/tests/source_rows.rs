//! `_source_row` (contract, section 3): every bronze row's 0-based position
//! in the run's read of its source table, for the six tables and both
//! sources, continuing across the batches a PostgreSQL copy is decoded in.

use chrono::NaiveDate;
use lake_bronze::metadata::SOURCE_ROW;
use lake_bronze::source::PgSource;
use lake_bronze::{BatchSource, TABLES};
use lake_table::{Lake, Layer, TableRef, read_date};
use lake_testkit::pg_server;
use polars::prelude::*;

fn date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 26).unwrap()
}

/// Copies every table from `source` into `lake` and commits the copies.
fn copy_all(lake: &Lake, source: &BatchSource) {
    for table in TABLES {
        let copy = source
            .copy(lake, table, date(), "source-rows", &|_| {})
            .unwrap();
        copy.commit().unwrap();
    }
}

fn bronze(lake: &Lake, table: &str) -> DataFrame {
    read_date(lake, &TableRef::new(Layer::Bronze, table), date())
        .unwrap()
        .unwrap_or_else(|| panic!("bronze/{table} holds no {}", date()))
}

/// The key columns of each table.
fn key_of(table: &str) -> Vec<&'static str> {
    match table {
        "categories" => vec!["category_id"],
        "customers" => vec!["customer_id"],
        "employees" => vec!["employee_id"],
        "orders" => vec!["order_id"],
        "order_details" => vec!["order_id", "product_id"],
        "products" => vec!["product_id"],
        other => panic!("no key known for {other}"),
    }
}

/// `columns` of `df`, as text (so the source's and bronze's widths of an
/// id compare).
fn as_text(df: &DataFrame, columns: &[&str]) -> DataFrame {
    df.clone()
        .lazy()
        .select(
            columns
                .iter()
                .map(|c| col(*c).cast(DataType::String))
                .collect::<Vec<_>>(),
        )
        .collect()
        .unwrap()
}

/// Checks that bronze numbers its rows 0..n and that, in that order, they
/// are `source`'s rows in the order the source gave them: every column
/// when `every_column`, else the table's key.
fn check(lake: &Lake, table: &str, source: &DataFrame, every_column: bool) {
    let copied = bronze(lake, table);
    let column = copied.column(SOURCE_ROW).unwrap();
    assert_eq!(column.dtype(), &DataType::Int64, "bronze/{table}");
    let rows: Vec<i64> = column.i64().unwrap().into_no_null_iter().collect();
    let expected: Vec<i64> = (0..source.height() as i64).collect();
    assert_eq!(rows, expected, "bronze/{table}: {SOURCE_ROW}");
    let same = if every_column {
        let data = copied.select(source.get_column_names_owned()).unwrap();
        data.equals_missing(source)
    } else {
        let key = key_of(table);
        as_text(&copied, &key).equals_missing(&as_text(source, &key))
    };
    assert!(
        same,
        "bronze/{table}: its rows in {SOURCE_ROW} order are not the source's"
    );
}

#[test]
fn the_generator_numbers_each_table_from_zero() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    let nw = lake_northwind::generate(1, 7).unwrap();
    let source = BatchSource::Generated(nw.clone());
    copy_all(&lake, &source);
    for table in TABLES {
        check(&lake, table, nw.table(table).unwrap(), true);
    }
}

#[test]
fn postgres_copies_number_rows_across_batches() {
    let db = pg_server().create_db("lake_source_rows");
    let mut client = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    let nw = lake_northwind::generate(1, 7).unwrap();
    lake_pg::load::seed_postgres(&mut client, &nw).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    // 500-row batches: order_details (over 2,000 lines) takes five, orders
    // two, the small tables one.
    let pg = PgSource::new(db.url.parse().unwrap()).with_batch_rows(500);
    assert!(nw.table("order_details").unwrap().height() > 2_000);
    copy_all(&lake, &BatchSource::Postgres(Box::new(pg)));
    for table in TABLES {
        // A freshly loaded table is read back in the order it was loaded
        // in: the generator's.
        check(&lake, table, nw.table(table).unwrap(), false);
    }
}
