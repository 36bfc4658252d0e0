//! The pipeline against a real PostgreSQL: generated Northwind at two
//! scales (smallint and integer ids) and the standard public dump, every
//! gold figure compared with the same figure computed by SQL inside
//! PostgreSQL; bronze compared with the source; schema evolution and TLS.

use lake_table::Layer;
use lake_testkit::{TestDb, pg_server};
use lake_tests::oracle::{assert_gold_matches_oracle, oracle_rejects};
use lake_tests::{connect, read, run, seeded, test_date};
use polars::prelude::*;

fn count(client: &mut postgres::Client, table: &str) -> usize {
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .unwrap()
        .get::<_, i64>(0) as usize
}

/// Runs the pipeline from `db` and checks bronze against the source and gold
/// against the oracle.
fn check_against_oracle(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let date = test_date();
    let run = run(dir.path(), Some(db.url.clone()), 1, date).unwrap();
    let mut client = connect(db);

    for table in lake_bronze::TABLES {
        let bronze = read(&run.lake, Layer::Bronze, table, date);
        assert_eq!(
            bronze.height(),
            count(&mut client, table),
            "bronze/{table} row count"
        );
        let source = bronze
            .column("_source")
            .unwrap()
            .str()
            .unwrap()
            .get(0)
            .unwrap()
            .to_string();
        assert_eq!(
            source,
            format!(
                "postgresql://127.0.0.1:{}/{}/public.{table}",
                pg_server().port,
                db.name
            )
        );
    }
    // Nulls survive bronze unchanged.
    let customers = read(&run.lake, Layer::Bronze, "customers", date);
    let null_regions: i64 = client
        .query_one("SELECT count(*) FROM customers WHERE region IS NULL", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        customers.column("region").unwrap().null_count() as i64,
        null_regions
    );

    assert_gold_matches_oracle(&mut client, &run.lake, date);
    let silver_step = run.manifest.step("silver/sales_master").unwrap();
    assert_eq!(silver_step.rejects, oracle_rejects(&mut client));

    // The password appears nowhere in the run manifest.
    let manifest = serde_json::to_string(&run.manifest).unwrap();
    assert!(!manifest.contains(lake_testkit::postgres_server::TEST_PASSWORD));
}

#[test]
fn generated_scale_1_with_smallint_ids_matches_the_sql_oracle() {
    let db = seeded(1);
    let mut client = connect(&db);
    let id_type: String = client
        .query_one(
            "SELECT data_type FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'order_id'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(id_type, "smallint");
    check_against_oracle(&db);
}

#[test]
fn generated_scale_50_with_integer_ids_matches_the_sql_oracle() {
    let db = seeded(50);
    check_against_oracle(&db);
}

#[test]
fn standard_northwind_dump_matches_the_sql_oracle() {
    let path = std::env::var("LAKE_NORTHWIND_SQL").unwrap_or_else(|_| {
        panic!("set LAKE_NORTHWIND_SQL to the path of the standard Northwind dump for PostgreSQL (northwind.sql)")
    });
    let sql = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("reading {path}: {err}"));
    let db = pg_server().create_db("lake_dump");
    connect(&db).batch_execute(&sql).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let date = test_date();
    let run = run(dir.path(), Some(db.url.clone()), 1, date).unwrap();
    // The facts of the standard dump.
    for (table, rows) in [
        ("orders", 830),
        ("order_details", 2155),
        ("customers", 91),
        ("products", 77),
        ("categories", 8),
        ("employees", 9),
    ] {
        assert_eq!(
            read(&run.lake, Layer::Bronze, table, date).height(),
            rows,
            "bronze/{table}"
        );
    }
    let orders = read(&run.lake, Layer::Bronze, "orders", date);
    assert_eq!(orders.column("order_id").unwrap().dtype(), &DataType::Int16);
    assert_eq!(
        orders.column("freight").unwrap().dtype(),
        &DataType::Float32
    );
    assert_eq!(orders.column("shipped_date").unwrap().null_count(), 21);
    let categories = read(&run.lake, Layer::Bronze, "categories", date);
    assert_eq!(
        categories.column("picture").unwrap().dtype(),
        &DataType::Binary
    );
    let customers = read(&run.lake, Layer::Bronze, "customers", date);
    assert_eq!(customers.column("region").unwrap().null_count(), 60);

    check_against_oracle(&db);
    // A clean source: nothing is rejected, 89 customers bought something.
    let sales = read(&run.lake, Layer::Silver, "sales_master", date);
    assert_eq!(sales.height(), 2155);
    assert_eq!(read(&run.lake, Layer::Gold, "rfm", date).height(), 89);
}

#[test]
fn a_column_added_to_the_source_appears_in_bronze_and_silver_still_runs() {
    let db = seeded(1);
    connect(&db)
        .batch_execute("ALTER TABLE orders ADD COLUMN loyalty_tier text DEFAULT 'gold'")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = run(dir.path(), Some(db.url.clone()), 1, test_date()).unwrap();
    let orders = read(&run.lake, Layer::Bronze, "orders", test_date());
    let tier = orders.column("loyalty_tier").unwrap().str().unwrap();
    assert_eq!(tier.get(0), Some("gold"));
    // The Delta table's schema holds the new column, with no code change.
    let orders = lake_tests::snapshot(&run.lake, Layer::Bronze, "orders");
    assert!(
        orders
            .columns()
            .iter()
            .any(|c| c.name == "loyalty_tier" && c.dtype == "String")
    );

    // A column silver needs, gone: a clear error naming it.
    connect(&db)
        .batch_execute("ALTER TABLE order_details DROP COLUMN discount")
        .unwrap();
    let err = run_err(dir.path(), &db.url);
    assert!(
        err.contains("bronze/order_details: required column discount is missing"),
        "{err}"
    );
    // And one with an incompatible type.
    connect(&db)
        .batch_execute("ALTER TABLE order_details ADD COLUMN discount text; ALTER TABLE order_details ALTER COLUMN quantity TYPE text")
        .unwrap();
    let err = run_err(dir.path(), &db.url);
    assert!(
        err.contains("bronze/order_details.quantity: expected an integer, found String"),
        "{err}"
    );
}

/// Every table of a run is copied at one snapshot: an order and its line
/// written after the first copy are in neither copy (before, the line alone
/// reached bronze and silver rejected it as an `orphan_order`).
#[test]
fn every_table_of_a_run_is_copied_at_one_snapshot() {
    use lake_bronze::source::{BatchSource, PgSource};
    let db = seeded(1);
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_table::Lake::open(&dir.path().display().to_string()).unwrap();
    let date = test_date();
    let url: lake_pg::url::PgUrl = db.url.parse().unwrap();
    let run = BatchSource::Postgres(Box::new(PgSource::new(url.clone())));
    let mut client = connect(&db);
    let (orders, lines) = (
        count(&mut client, "orders"),
        count(&mut client, "order_details"),
    );
    ingest(&run, &lake, "orders", "run-a");
    client
        .batch_execute(
            "INSERT INTO orders (order_id, customer_id, order_date) \
               SELECT max(order_id) + 1, (SELECT min(customer_id) FROM customers), DATE '1998-05-07' FROM orders; \
             INSERT INTO order_details (order_id, product_id, unit_price, quantity, discount) \
               SELECT max(order_id), 1, 10.0, 2, 0 FROM orders;",
        )
        .unwrap();
    ingest(&run, &lake, "order_details", "run-a");
    assert_eq!(read(&lake, Layer::Bronze, "orders", date).height(), orders);
    assert_eq!(
        read(&lake, Layer::Bronze, "order_details", date).height(),
        lines
    );
    // The write did land between the two copies: a new run sees it.
    let next = BatchSource::Postgres(Box::new(PgSource::new(url)));
    ingest(&next, &lake, "order_details", "run-b");
    assert_eq!(
        read(&lake, Layer::Bronze, "order_details", date).height(),
        lines + 1
    );
}

/// Copies `table` from `source` into the test date and commits it alone.
fn ingest(source: &lake_bronze::BatchSource, lake: &lake_table::Lake, table: &str, run_id: &str) {
    source
        .copy(lake, table, test_date(), run_id, &|_| {})
        .unwrap()
        .commit()
        .unwrap();
}

fn run_err(lake: &std::path::Path, url: &str) -> String {
    let err = run(lake, Some(url.to_string()), 1, test_date())
        .err()
        .expect("the run must fail");
    format!("{err:#}")
}

#[test]
fn tls_is_used_when_the_url_asks_for_it() {
    let server = pg_server();
    let Some(root) = &server.root_cert else {
        panic!("the TLS test needs the private test cluster (unset LAKE_TEST_PG_URL)");
    };
    let db = seeded(1);
    let with = |query: &str| -> String {
        let base = db.url.replace("127.0.0.1", "localhost");
        format!("{base}?{query}")
    };
    let ssl_in_use = |url: &str| -> bool {
        let parsed: lake_pg::url::PgUrl = url.parse().unwrap();
        let mut client = parsed.connect().unwrap();
        client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .unwrap()
            .get(0)
    };
    assert!(ssl_in_use(&with("sslmode=require")));
    assert!(ssl_in_use(&with(&format!(
        "sslmode=verify-full&sslrootcert={}",
        root.display()
    ))));
    assert!(!ssl_in_use(&with("sslmode=disable")));
    // verify-full against a certificate nobody vouches for is refused.
    let untrusted: lake_pg::url::PgUrl = with("sslmode=verify-full").parse().unwrap();
    let err = format!(
        "{:#}",
        untrusted
            .connect()
            .err()
            .expect("unverified certificate accepted")
    );
    assert!(err.contains("cannot connect to PostgreSQL"), "{err}");
    assert!(!err.contains(lake_testkit::postgres_server::TEST_PASSWORD));

    // The whole bronze layer over verified TLS.
    let dir = tempfile::tempdir().unwrap();
    let url = with(&format!(
        "sslmode=verify-full&sslrootcert={}",
        root.display()
    ));
    let run = run(dir.path(), Some(url), 1, test_date()).unwrap();
    assert_eq!(
        read(&run.lake, Layer::Bronze, "orders", test_date()).height(),
        830
    );
}
