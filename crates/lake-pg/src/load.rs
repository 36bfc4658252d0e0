//! Loading a generated Northwind into PostgreSQL (`cargo xtask seed`, the
//! benchmark's database, `cargo xtask up`): the tables it would replace,
//! and the load itself.

use anyhow::{Context, Result, ensure};

/// Rows loaded per table by [`seed_postgres`], in load order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedReport {
    pub rows: Vec<(&'static str, u64)>,
}

/// Drops the six tables if they exist, creates them with
/// [`lake_northwind::ddl`] and loads every table with `COPY … FROM STDIN`
/// (text format), all in one transaction. Rows are streamed to the server
/// in chunks of about 1 MiB.
pub fn seed_postgres(
    client: &mut postgres::Client,
    nw: &lake_northwind::Northwind,
) -> Result<SeedReport> {
    let mut tx = client
        .transaction()
        .context("seeding Northwind: starting a transaction")?;
    let drop = format!(
        "DROP TABLE IF EXISTS {};\n",
        lake_northwind::TABLES
            .iter()
            .rev()
            .copied()
            .collect::<Vec<_>>()
            .join(", ")
    );
    tx.batch_execute(&(drop + &lake_northwind::ddl(nw)))
        .context("seeding Northwind: dropping and creating the tables")?;
    let mut rows = Vec::with_capacity(nw.tables.len());
    for (table, df) in &nw.tables {
        let columns = lake_northwind::table_columns(table)
            .with_context(|| format!("seeding Northwind: unknown table {table}"))?;
        let names: Vec<&str> = df.columns().iter().map(|c| c.name().as_str()).collect();
        ensure!(
            names == columns,
            "seeding Northwind: table {table} has columns {names:?}, expected {columns:?}"
        );
        let statement = format!("COPY {table} ({}) FROM STDIN", columns.join(", "));
        let mut writer = tx
            .copy_in(&statement)
            .with_context(|| format!("seeding Northwind: starting COPY into {table}"))?;
        lake_northwind::write_copy_text(df, &mut writer)
            .with_context(|| format!("seeding Northwind: streaming rows of {table}"))?;
        let n = writer
            .finish()
            .with_context(|| format!("seeding Northwind: finishing COPY into {table}"))?;
        rows.push((*table, n));
    }
    tx.commit()
        .context("seeding Northwind: committing the transaction")?;
    Ok(SeedReport { rows })
}

/// Which of the six Northwind tables the database's current schema holds.
pub fn existing_tables(client: &mut postgres::Client) -> Result<Vec<String>> {
    let names: Vec<String> = lake_northwind::TABLES
        .iter()
        .map(|t| t.to_string())
        .collect();
    let rows = client.query(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_name = ANY($1)",
        &[&names],
    )?;
    let found: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
    Ok(names.into_iter().filter(|n| found.contains(n)).collect())
}

/// Seeds a fresh database of the test PostgreSQL server and reads it back.
#[cfg(test)]
mod postgres_round_trip {
    use lake_northwind::{DEFAULT_SEED, generate};
    use lake_testkit::pg_server;
    use polars::prelude::*;
    use postgres::{Client, NoTls};

    use super::seed_postgres;

    fn scale1() -> lake_northwind::Northwind {
        generate(1, DEFAULT_SEED).expect("generate scale 1")
    }

    fn table<'a>(nw: &'a lake_northwind::Northwind, name: &str) -> &'a DataFrame {
        nw.table(name)
            .unwrap_or_else(|| panic!("table {name} missing"))
    }

    /// The generated picture of category `id`.
    fn category_picture(nw: &lake_northwind::Northwind, id: i32) -> Vec<u8> {
        let categories = table(nw, "categories");
        let ids = categories
            .column("category_id")
            .unwrap()
            .cast(&DataType::Int32)
            .unwrap();
        let row = ids
            .as_materialized_series()
            .i32()
            .unwrap()
            .into_no_null_iter()
            .position(|c| c == id)
            .unwrap_or_else(|| panic!("no category {id}"));
        categories
            .column("picture")
            .unwrap()
            .as_materialized_series()
            .binary()
            .unwrap()
            .get(row)
            .unwrap()
            .to_vec()
    }

    fn count_rows(client: &mut Client, sql: &str) -> i64 {
        client
            .query_one(sql, &[])
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    }

    fn check(client: &mut Client, nw: &lake_northwind::Northwind, id_type: &str) {
        let report = seed_postgres(client, nw).expect("seed_postgres");
        assert_eq!(report.rows.len(), 6);
        for ((name, df), (reported, rows)) in nw.tables.iter().zip(&report.rows) {
            assert_eq!(name, reported);
            assert_eq!(*rows, df.height() as u64, "COPY rows of {name}");
            let n = count_rows(client, &format!("SELECT count(*) FROM {name}"));
            assert_eq!(n, df.height() as i64, "rows of {name}");
        }
        let od = table(nw, "order_details");
        let null_discounts = od.column("discount").unwrap().null_count() as i64;
        assert!(null_discounts >= 1);
        assert_eq!(
            count_rows(
                client,
                "SELECT count(*) FROM order_details WHERE discount IS NULL"
            ),
            null_discounts
        );
        let ty: String = client
            .query_one(
                "SELECT data_type FROM information_schema.columns \
                 WHERE table_name = 'order_details' AND column_name = 'order_id'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(ty, id_type);
    }

    #[test]
    fn seeds_and_reads_back() {
        let db = pg_server().create_db("lake_northwind");
        let mut client = Client::connect(&db.url, NoTls).expect("connect to the test database");

        let nw = scale1();
        check(&mut client, &nw, "smallint");

        // Values that exercise the escapes survive.
        let address: String = client
            .query_one("SELECT address FROM employees WHERE employee_id = 1", &[])
            .unwrap()
            .get(0);
        assert_eq!(address, r"507 - 20th Ave. E.\nApt. 2A");
        let picture: Vec<u8> = client
            .query_one("SELECT picture FROM categories WHERE category_id = 3", &[])
            .unwrap()
            .get(0);
        assert_eq!(picture, category_picture(&nw, 3));
        let blank = count_rows(
            &mut client,
            "SELECT count(*) FROM orders WHERE customer_id = '  '",
        );
        assert!(blank >= 1);
        let first: String = client
            .query_one("SELECT min(order_date)::text FROM orders", &[])
            .unwrap()
            .get(0);
        assert_eq!(first, "1996-07-04");
        let sums: (i64, f64) = {
            let row = client
                .query_one(
                    "SELECT sum(quantity)::bigint, sum(unit_price::float8) FROM order_details",
                    &[],
                )
                .unwrap();
            (row.get(0), row.get(1))
        };
        let q = od_sum_quantity(table(&nw, "order_details"));
        let p = od_sum_price(table(&nw, "order_details"));
        assert_eq!(sums.0, q);
        assert!(
            (sums.1 - p).abs() < 1e-6 * p.abs().max(1.0),
            "{} vs {p}",
            sums.1
        );

        // Seeding again replaces the tables, here with widened ids.
        let nw50 = generate(50, DEFAULT_SEED).expect("generate scale 50");
        check(&mut client, &nw50, "integer");
    }

    fn od_sum_quantity(od: &DataFrame) -> i64 {
        od.column("quantity")
            .unwrap()
            .as_materialized_series()
            .i16()
            .unwrap()
            .into_no_null_iter()
            .map(i64::from)
            .sum()
    }

    fn od_sum_price(od: &DataFrame) -> f64 {
        od.column("unit_price")
            .unwrap()
            .as_materialized_series()
            .f32()
            .unwrap()
            .into_no_null_iter()
            .map(f64::from)
            .sum()
    }
}
