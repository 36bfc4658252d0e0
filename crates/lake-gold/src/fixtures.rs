//! A hand-made silver/sales_master for the gold snapshot tests: 7 customers
//! (NTILE buckets of 2, 2, 1, 1, 1), ties in recency, frequency and
//! monetary value, a lowercase customer id (byte-wise order), two
//! `Uncategorized` groups (null and unknown category id) with equal revenue,
//! two countries with equal revenue, an unknown and a free-text country.

use chrono::NaiveDate;
use polars::prelude::*;

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

pub fn sales() -> LazyFrame {
    // (customer, order, date, category id, category, company, country, code, quantity, line_total)
    #[allow(clippy::type_complexity)]
    let rows: Vec<(
        &str,
        i64,
        NaiveDate,
        Option<i64>,
        &str,
        &str,
        &str,
        Option<&str>,
        i64,
        f64,
    )> = vec![
        (
            "ALFKI",
            1,
            d(1998, 5, 1),
            Some(1),
            "Beverages",
            "Alfreds",
            "Germany",
            Some("DE"),
            2,
            100.0,
        ),
        (
            "ALFKI",
            1,
            d(1998, 5, 1),
            Some(2),
            "Condiments",
            "Alfreds",
            "Germany",
            Some("DE"),
            1,
            50.0,
        ),
        (
            "ALFKI",
            2,
            d(1998, 4, 1),
            Some(1),
            "Beverages",
            "Alfreds",
            "Germany",
            Some("DE"),
            1,
            25.0,
        ),
        (
            "BERGS",
            3,
            d(1998, 5, 1),
            None,
            "Uncategorized",
            "Berglunds",
            "Sweden",
            Some("SE"),
            3,
            15.0,
        ),
        (
            "BLONP",
            4,
            d(1998, 1, 1),
            Some(2),
            "Condiments",
            "Blondel",
            "France",
            Some("FR"),
            1,
            60.0,
        ),
        (
            "BLONP",
            5,
            d(1998, 2, 1),
            Some(99),
            "Uncategorized",
            "Blondel",
            "France",
            Some("FR"),
            1,
            15.0,
        ),
        (
            "CHOPS",
            6,
            d(1997, 12, 1),
            Some(1),
            "Beverages",
            "Chop-suey",
            "Switzerland",
            Some("CH"),
            4,
            75.0,
        ),
        (
            "DRACD",
            7,
            d(1998, 3, 1),
            Some(2),
            "Condiments",
            "Drachenblut",
            "Germany",
            Some("DE"),
            1,
            10.0,
        ),
        (
            "DRACD",
            8,
            d(1998, 3, 15),
            Some(2),
            "Condiments",
            "Drachenblut",
            "Germany",
            Some("DE"),
            1,
            10.0,
        ),
        (
            "DRACD",
            9,
            d(1998, 4, 20),
            Some(2),
            "Condiments",
            "Drachenblut",
            "Germany",
            Some("DE"),
            1,
            10.0,
        ),
        (
            "EASTC",
            10,
            d(1996, 7, 4),
            Some(1),
            "Beverages",
            "Eastern",
            "Unknown",
            None,
            1,
            5.0,
        ),
        (
            "alfki",
            11,
            d(1998, 5, 6),
            Some(1),
            "Beverages",
            "alfreds lower",
            "Atlantis",
            None,
            2,
            40.0,
        ),
    ];
    let epoch = d(1970, 1, 1);
    let dates: Vec<i32> = rows
        .iter()
        .map(|r| (r.2 - epoch).num_days() as i32)
        .collect();
    df!(
        "order_id" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        "customer_id" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        "order_date" => Series::new("order_date".into(), dates).into_date(),
        "category_id" => rows.iter().map(|r| r.3).collect::<Vec<_>>(),
        "category_name" => rows.iter().map(|r| r.4).collect::<Vec<_>>(),
        "company_name" => rows.iter().map(|r| r.5).collect::<Vec<_>>(),
        "country" => rows.iter().map(|r| r.6).collect::<Vec<_>>(),
        "country_code" => rows.iter().map(|r| r.7).collect::<Vec<_>>(),
        "quantity" => rows.iter().map(|r| r.8).collect::<Vec<_>>(),
        "line_total" => rows.iter().map(|r| r.9).collect::<Vec<_>>(),
    )
    .unwrap()
    .lazy()
}

/// Empty input with the same schema.
pub fn no_sales() -> LazyFrame {
    sales().limit(0)
}
