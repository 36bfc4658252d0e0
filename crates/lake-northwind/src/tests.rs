use std::collections::HashSet;

use polars::prelude::*;

use crate::calendar::{civil_from_days, days_from_civil};
use crate::{COUNTRY_ALIASES, DEFAULT_SEED, FIRST_ORDER_ID, TABLE_COLUMNS, TABLES, ddl, generate};

fn scale1() -> crate::Northwind {
    generate(1, DEFAULT_SEED).expect("generate scale 1")
}

fn table<'a>(nw: &'a crate::Northwind, name: &str) -> &'a DataFrame {
    nw.table(name)
        .unwrap_or_else(|| panic!("table {name} missing"))
}

/// Rows of `df` matching `predicate`.
fn count(df: &DataFrame, predicate: Expr) -> usize {
    df.clone()
        .lazy()
        .filter(predicate)
        .collect()
        .expect("filter")
        .height()
}

/// The values of a column as a literal, for `is_in`.
fn values(df: &DataFrame, column: &str) -> Expr {
    lit(df
        .column(column)
        .expect("column")
        .as_materialized_series()
        .clone())
}

fn not_in(column: &str, df: &DataFrame, other: &str) -> Expr {
    col(column).is_in(values(df, other), false).not()
}

#[test]
fn date_helpers_round_trip() {
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(days_from_civil(1996, 7, 4), 9681);
    assert_eq!(days_from_civil(2000, 3, 1), 11017);
    for z in -800_000..800_000 {
        let (y, m, d) = civil_from_days(z);
        assert_eq!(days_from_civil(y as i32, m, d), z);
    }
}

#[test]
fn deterministic_for_scale_and_seed() {
    let a = scale1();
    let b = scale1();
    assert_eq!(a.tables.len(), b.tables.len());
    for ((na, da), (nb, db)) in a.tables.iter().zip(&b.tables) {
        assert_eq!(na, nb);
        assert!(da.equals_missing(db), "table {na} differs between runs");
    }
    let c = generate(1, DEFAULT_SEED + 1).expect("generate");
    for name in ["customers", "orders", "order_details"] {
        assert!(
            !table(&a, name).equals_missing(table(&c, name)),
            "table {name} does not depend on the seed"
        );
    }
    // The reference tables do not depend on the seed.
    for name in ["categories", "employees", "products"] {
        assert!(table(&a, name).equals_missing(table(&c, name)));
    }
}

#[test]
fn sizes() {
    let nw = scale1();
    let names: Vec<&str> = nw.tables.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, TABLES);
    assert_eq!(table(&nw, "orders").height(), 830);
    assert_eq!(table(&nw, "customers").height(), 91);
    assert_eq!(table(&nw, "products").height(), 77);
    assert_eq!(table(&nw, "categories").height(), 8);
    assert_eq!(table(&nw, "employees").height(), 9);
    let lines = table(&nw, "order_details").height();
    assert!((2000..=2400).contains(&lines), "{lines} order lines");

    let nw3 = generate(3, 7).expect("generate scale 3");
    assert_eq!(table(&nw3, "orders").height(), 2490);
    assert_eq!(table(&nw3, "customers").height(), 273);
    assert_eq!(table(&nw3, "products").height(), 77);
    let lines = table(&nw3, "order_details").height();
    assert!((6000..=7200).contains(&lines), "{lines} order lines");
}

#[test]
fn rejects_bad_scales() {
    assert!(generate(0, 1).is_err());
    assert!(generate(crate::MAX_SCALE + 1, 1).is_err());
}

/// The Polars type reading a column of the given SQL type gives.
fn dtype_of_sql(sql: &str, id: &DataType) -> DataType {
    let ty = sql.trim_end_matches(" NOT NULL");
    match ty {
        "{id}" => id.clone(),
        "smallint" => DataType::Int16,
        "integer" => DataType::Int32,
        "real" => DataType::Float32,
        "date" => DataType::Date,
        "bytea" => DataType::Binary,
        "text" => DataType::String,
        t if t.starts_with("character varying") => DataType::String,
        t => panic!("unexpected SQL type {t}"),
    }
}

fn assert_schema(nw: &crate::Northwind, id: &DataType) {
    assert_eq!(&nw.id_dtype(), id);
    for crate::TableDef {
        name,
        columns: cols,
        ..
    } in TABLE_COLUMNS
    {
        let df = table(nw, name);
        let actual: Vec<(String, DataType)> = df
            .columns()
            .iter()
            .map(|c| (c.name().to_string(), c.dtype().clone()))
            .collect();
        let expected: Vec<(String, DataType)> = cols
            .iter()
            .map(|(c, sql)| (c.to_string(), dtype_of_sql(sql, id)))
            .collect();
        assert_eq!(actual, expected, "schema of {name}");
    }
}

#[test]
fn dtypes_follow_the_id_width() {
    assert_schema(&scale1(), &DataType::Int16);
    let nw27 = generate(27, DEFAULT_SEED).expect("generate scale 27");
    assert_schema(&nw27, &DataType::Int16);
    let nw50 = generate(50, DEFAULT_SEED).expect("generate scale 50");
    assert_schema(&nw50, &DataType::Int32);
    assert!(ddl(&nw50).contains("order_id integer NOT NULL"));
    assert!(!ddl(&nw50).contains("smallint NOT NULL,\n    product_name"));
}

#[test]
fn every_messy_kind_exists_at_scale_1() {
    let nw = scale1();
    let od = table(&nw, "order_details");
    let orders = table(&nw, "orders");
    let customers = table(&nw, "customers");
    let products = table(&nw, "products");
    let categories = table(&nw, "categories");

    // order_details
    assert!(count(od, not_in("product_id", products, "product_id")) >= 1);
    assert!(count(od, col("quantity").eq(lit(0))) >= 1);
    assert!(count(od, col("discount").is_null()) >= 1);
    let dups = od
        .clone()
        .lazy()
        .group_by([col("order_id"), col("product_id")])
        .agg([len().alias("n")])
        .filter(col("n").gt(lit(1)))
        .collect()
        .expect("duplicates")
        .height();
    assert!(dups >= 1);
    assert!(count(od, not_in("order_id", orders, "order_id")) >= 1);
    assert!(count(od, col("unit_price").lt(lit(0.0f32))) >= 1);
    assert!(count(od, col("discount").eq(lit(1.5f32))) >= 1);

    // orders
    assert!(count(orders, col("order_date").is_null()) >= 1);
    assert!(count(orders, col("customer_id").eq(lit("  "))) >= 1);
    assert!(count(orders, col("customer_id").eq(lit(""))) >= 1);
    let nonexistent = col("customer_id")
        .str()
        .strip_chars(lit(" "))
        .neq(lit(""))
        .and(not_in("customer_id", customers, "customer_id"));
    assert!(count(orders, nonexistent) >= 1);

    // customers
    for (alias, _) in COUNTRY_ALIASES {
        assert!(
            count(customers, col("country").eq(lit(alias))) >= 1,
            "no customer with country {alias:?}"
        );
    }
    assert!(count(customers, col("country").is_null()) >= 1);
    assert!(count(customers, col("country").eq(lit(""))) >= 1);
    let null_regions = count(customers, col("region").is_null());
    assert!(
        (40..=80).contains(&null_regions),
        "{null_regions} null regions"
    );

    // products
    assert_eq!(count(products, col("category_id").is_null()), 2);
    let unknown =
        col("category_id")
            .is_not_null()
            .and(not_in("category_id", categories, "category_id"));
    assert_eq!(count(products, unknown), 1);
}

/// `later - earlier` in days.
fn days_between(earlier: &str, later: &str) -> Expr {
    col(later).cast(DataType::Int32) - col(earlier).cast(DataType::Int32)
}

/// The counts the crate documentation states for scale 1 and the default seed.
#[test]
fn documented_counts_at_scale_1() {
    let nw = scale1();
    let od = table(&nw, "order_details");
    let orders = table(&nw, "orders");
    let customers = table(&nw, "customers");
    let products = table(&nw, "products");
    let duplicated = od
        .clone()
        .lazy()
        .group_by([col("order_id"), col("product_id")])
        .agg([len().alias("n")])
        .filter(col("n").gt(lit(1)))
        .collect()
        .unwrap()
        .height();
    let line_counts = [
        count(od, not_in("product_id", products, "product_id")),
        count(od, col("quantity").eq(lit(0))),
        count(od, col("discount").is_null()),
        duplicated,
        count(od, not_in("order_id", orders, "order_id")),
        count(od, col("unit_price").lt(lit(0.0f32))),
        count(od, col("discount").eq(lit(1.5f32))),
    ];
    assert_eq!(line_counts, [7, 7, 11, 4, 2, 1, 1]);
    assert_eq!(od.height(), 2188 + 4 + 2);
    assert_eq!(count(orders, col("order_date").is_null()), 2);
    assert_eq!(
        count(orders, not_in("customer_id", customers, "customer_id")),
        3
    );
    let aliases = Series::new(
        "a".into(),
        COUNTRY_ALIASES.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
    );
    assert_eq!(
        count(customers, col("country").is_in(lit(aliases), false)),
        9
    );
    assert_eq!(count(customers, col("country").is_null()), 1);
    assert_eq!(count(customers, col("country").eq(lit(""))), 1);
}

#[test]
fn plausible_values() {
    let nw = scale1();
    let orders = table(&nw, "orders");
    let od = table(&nw, "order_details");
    let customers = table(&nw, "customers");

    // Customer ids: unique, 5 uppercase ASCII letters.
    let ids = customers.column("customer_id").unwrap().str().unwrap();
    let set: HashSet<&str> = ids.iter().flatten().collect();
    assert_eq!(set.len(), customers.height());
    assert!(
        set.iter()
            .all(|id| id.len() == 5 && id.bytes().all(|b| b.is_ascii_uppercase()))
    );

    // Dates.
    let stats = orders
        .clone()
        .lazy()
        .select([
            col("order_date").min().alias("first"),
            col("order_date").max().alias("last"),
            days_between("order_date", "required_date")
                .min()
                .alias("req_min"),
            days_between("order_date", "required_date")
                .max()
                .alias("req_max"),
            days_between("order_date", "shipped_date")
                .min()
                .alias("ship_min"),
            days_between("order_date", "shipped_date")
                .max()
                .alias("ship_max"),
            col("shipped_date").null_count().alias("unshipped"),
            col("order_id")
                .min()
                .cast(DataType::Int32)
                .alias("first_id"),
            col("freight").min().alias("freight_min"),
            col("freight").max().alias("freight_max"),
        ])
        .collect()
        .unwrap();
    let get = |c: &str| stats.column(c).unwrap().get(0).unwrap().into_static();
    assert_eq!(get("first"), AnyValue::Date(days_from_civil(1996, 7, 4)));
    assert_eq!(get("last"), AnyValue::Date(days_from_civil(1998, 5, 6)));
    assert_eq!(get("req_min").extract::<i64>(), Some(28));
    assert_eq!(get("req_max").extract::<i64>(), Some(28));
    assert!(get("ship_min").extract::<i64>().unwrap() >= 1);
    assert!(get("ship_max").extract::<i64>().unwrap() <= 30);
    assert_eq!(get("unshipped").extract::<u32>(), Some(21));
    assert_eq!(get("first_id").extract::<i32>(), Some(FIRST_ORDER_ID));
    assert!(get("freight_min").extract::<f64>().unwrap() >= 0.02);
    assert!(get("freight_max").extract::<f64>().unwrap() <= 1100.0);

    // Quantities and discounts (defects aside).
    assert_eq!(
        count(
            od,
            col("quantity").lt(lit(0)).or(col("quantity").gt(lit(120)))
        ),
        0
    );
    let median = od
        .clone()
        .lazy()
        .select([col("quantity").cast(DataType::Float64).median()])
        .collect()
        .unwrap()
        .column("quantity")
        .unwrap()
        .get(0)
        .unwrap()
        .extract::<f64>()
        .unwrap();
    assert!((12.0..=25.0).contains(&median), "median quantity {median}");
    let ones = count(od, col("quantity").eq(lit(1))) as f64 / od.height() as f64;
    assert!(ones < 0.02, "{ones} of the lines have quantity 1");
    let zero_discount = count(od, col("discount").eq(lit(0.0f32))) as f64 / od.height() as f64;
    assert!((0.5..0.7).contains(&zero_discount), "{zero_discount}");
    let allowed = Series::new("d".into(), [0.0f32, 0.05, 0.1, 0.15, 0.2, 0.25, 1.5]);
    assert_eq!(
        count(
            od,
            col("discount")
                .is_not_null()
                .and(col("discount").is_in(lit(allowed), false).not())
        ),
        0
    );

    // Lines per order of existing orders: 1..=6 (+1 for a duplicated line).
    let per_order = od
        .clone()
        .lazy()
        .filter(col("order_id").is_in(values(orders, "order_id"), false))
        .group_by([col("order_id")])
        .agg([len().alias("n")])
        .collect()
        .unwrap();
    assert_eq!(per_order.height(), 830);
    let n = per_order.column("n").unwrap();
    let max = n.as_materialized_series().max::<u32>().unwrap().unwrap();
    assert!(max <= 7);

    // Customers without orders: the dump has 2 of 91.
    let without = count(customers, not_in("customer_id", orders, "customer_id"));
    assert!(
        (1..=4).contains(&without),
        "{without} customers without orders"
    );
}

/// The first rows of a frame, one `column: value` per line, for snapshots.
fn render_head(df: &DataFrame, n: usize) -> String {
    use std::fmt::Write;
    let head = df.head(Some(n));
    let mut s = String::new();
    for c in head.columns() {
        writeln!(s, "{}: {}", c.name(), c.dtype()).unwrap();
    }
    for i in 0..head.height() {
        writeln!(s, "--- row {i}").unwrap();
        for c in head.columns() {
            let v = match c.get(i).unwrap() {
                AnyValue::Null => "null".to_string(),
                AnyValue::String(v) => format!("{v:?}"),
                AnyValue::StringOwned(v) => format!("{:?}", v.as_str()),
                AnyValue::Binary(b) => hex(b),
                AnyValue::BinaryOwned(b) => hex(&b),
                AnyValue::Float32(f) => format!("{f}"),
                AnyValue::Date(d) => {
                    let (y, m, d) = civil_from_days(d);
                    format!("{y:04}-{m:02}-{d:02}")
                }
                other => other.to_string(),
            };
            writeln!(s, "{}: {v}", c.name()).unwrap();
        }
    }
    s
}

fn hex(b: &[u8]) -> String {
    let mut s = String::from("\\x");
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

#[test]
fn snapshot_ddl() {
    insta::assert_snapshot!("ddl_scale_1", ddl(&scale1()));
}

#[test]
fn snapshot_heads() {
    let nw = scale1();
    for (name, df) in &nw.tables {
        insta::assert_snapshot!(format!("head_{name}"), render_head(df, 5));
    }
}
