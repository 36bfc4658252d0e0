//! The serving layer over HTTP on a real socket, with the stream consuming
//! a real Kafka topic in the same process: gold figures as the lake holds
//! them, live views equal to what the producer sent, the unified view,
//! metrics, SQL, bad input; then `lake-serve` alone reading the stream's
//! snapshot from gold.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use lake_serve::{AppState, Catalog, LakeLive, SqlLimits};
use lake_table::Layer;
use lake_tests::live_stack::{LiveStack, QUERY, wait_for};
use lake_tests::{read, sum_f64, test_date};
use serde_json::{Value, json};

fn get(url: &str) -> (u16, Value) {
    let response = reqwest::blocking::get(url).unwrap();
    let status = response.status().as_u16();
    (status, response.json().unwrap())
}

/// A number of a JSON body read from its text with Rust's correctly
/// rounded parser: serde_json's default float parsing (without its
/// `float_roundtrip` feature, which would rebuild Polars) can be one ulp
/// off, and the served figure must be the stored one to the bit.
fn exact_number(body: &str, path: &[&str]) -> f64 {
    use serde_json::value::RawValue;
    use std::collections::HashMap;
    let mut raw: Box<RawValue> = serde_json::from_str(body).unwrap();
    for key in path {
        raw = match key.parse::<usize>() {
            Ok(index) => serde_json::from_str::<Vec<Box<RawValue>>>(raw.get())
                .unwrap()
                .swap_remove(index),
            Err(_) => serde_json::from_str::<HashMap<String, Box<RawValue>>>(raw.get())
                .unwrap()
                .remove(*key)
                .unwrap_or_else(|| panic!("no {key} in {}", raw.get())),
        };
    }
    raw.get().parse().unwrap()
}

fn post_sql(base: &str, query: &str) -> (u16, Value) {
    let response = reqwest::blocking::Client::new()
        .post(format!("{base}/api/sql"))
        .json(&json!({ "query": query }))
        .send()
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().unwrap())
}

/// Per country: (sum of sales, transactions) of a live view response.
fn live_totals(body: &Value) -> BTreeMap<String, (f64, u64)> {
    body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["pays"].as_str().unwrap().to_string(),
                (
                    row["total_ventes_live"].as_f64().unwrap(),
                    row["nb_transactions"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

fn assert_live_equals_report(
    live: &BTreeMap<String, (f64, u64)>,
    report: &lake_stream::generator::ProducerReport,
) {
    assert_eq!(live.len(), report.by_country.len(), "{live:?}");
    for (country, expected) in &report.by_country {
        let (total, count) = live[country];
        assert_eq!(count, expected.count, "{country}");
        assert!(
            (total - expected.total).abs() <= 1e-9 * expected.total.max(1.0),
            "{country}"
        );
    }
}

#[test]
fn the_api_serves_gold_live_unified_sql_and_metrics() {
    let mut stack = LiveStack::start("serve-api");
    let base = stack.url();

    // Gold: the figures of the committed partition, read here from Parquet.
    let kpi = read(&stack.lake, Layer::Gold, "kpi_summary", test_date());
    let response = reqwest::blocking::get(format!("{base}/api/gold/kpi_summary")).unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["date"], test_date().to_string());
    assert_eq!(
        exact_number(&text, &["rows", "0", "total_revenue"]),
        sum_f64(&kpi, "total_revenue")
    );
    let (status, listing) = get(&format!("{base}/api/gold"));
    assert_eq!(status, 200);
    let names: Vec<&str> = listing["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    for table in [
        "kpi_summary",
        "revenue_by_country",
        "sales_by_category",
        "rfm",
        "rfm_segments",
    ] {
        assert!(names.contains(&table), "{table} not in {names:?}");
    }

    // Live: what the producer sent, fresh within a few micro-batches.
    let report = stack.produce(3000, 41);
    let live = wait_for(
        Duration::from_secs(60),
        "the stream to process every message",
        || {
            // Every message processed (the last ones may be DLQ-bound and
            // come a batch after the last counted event), every valid
            // event counted.
            let (_, body) = get(&format!("{base}/api/live/sales-by-country"));
            let totals = live_totals(&body);
            let counted: u64 = totals.values().map(|(_, n)| n).sum();
            let consumed = body["freshness"]["events_consumed"].as_u64();
            (counted == report.counted && consumed == Some(report.sent)).then_some(body)
        },
    );
    assert_eq!(live["origin"], "memory");
    assert_live_equals_report(&live_totals(&live), &report);
    assert!(live["freshness"]["last_event_time"].is_string());
    // Page after page, every window once: the counts add up to every
    // event counted.
    let mut per_minute = 0u64;
    let mut pages = 0;
    let mut url = format!("{base}/api/live/sales-by-minute?limit=10");
    loop {
        let (status, page) = get(&url);
        assert_eq!(status, 200, "{page}");
        pages += 1;
        per_minute += page["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["nb_transactions"].as_u64().unwrap())
            .sum::<u64>();
        match page["next_since"].as_str() {
            Some(next) => url = format!("{base}/api/live/sales-by-minute?limit=10&since={next}"),
            None => break,
        }
    }
    // The events here fall in few windows, each larger than a page (a
    // window goes whole): the pages across windows are the unit tests'.
    assert_eq!(per_minute, report.counted, "over {pages} page(s)");

    // Unified: batch and live side by side, totals their sum.
    let (_, batch) = get(&format!("{base}/api/gold/revenue_by_country"));
    let batch: BTreeMap<String, f64> = batch["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["country"].as_str().unwrap().to_string(),
                r["revenue"].as_f64().unwrap(),
            )
        })
        .collect();
    let (status, unified) = get(&format!("{base}/api/unified/sales-by-country"));
    assert_eq!(status, 200, "{unified}");
    let live = live_totals(&live);
    let rows = unified["rows"].as_array().unwrap();
    let countries: std::collections::BTreeSet<&String> = batch.keys().chain(live.keys()).collect();
    assert_eq!(rows.len(), countries.len());
    for row in rows {
        let country = row["country"].as_str().unwrap();
        let expected = batch.get(country).copied().unwrap_or(0.0)
            + live.get(country).map_or(0.0, |(total, _)| *total);
        let got = row["revenue_total"].as_f64().unwrap();
        assert!(
            (got - expected).abs() <= 1e-9 * expected.max(1.0),
            "{country}: {got} vs {expected}"
        );
    }

    // Metrics: the processor's counts.
    let text = reqwest::blocking::get(format!("{base}/metrics"))
        .unwrap()
        .text()
        .unwrap();
    let consumed = text
        .lines()
        .find(|l| l.starts_with("lake_stream_events_consumed_total{"))
        .unwrap();
    assert!(
        consumed.ends_with(&format!(" {}", report.sent)),
        "{consumed} vs {} sent",
        report.sent
    );
    for (reason, n) in &report.dlq {
        let line = format!("lake_stream_dlq_total{{query=\"{QUERY}\",reason=\"{reason}\"}} {n}");
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }

    // SQL over silver equals gold's figure.
    let (status, result) = post_sql(
        &base,
        "SELECT SUM(line_total) AS revenue FROM silver.sales_master",
    );
    assert_eq!(status, 200, "{result}");
    let revenue = result["rows"][0]["revenue"].as_f64().unwrap();
    let total = sum_f64(&kpi, "total_revenue");
    assert!((revenue - total).abs() <= 1e-9 * total);

    // Bad input: clear 4xx, the server stays up.
    for (status, body) in [
        get(&format!("{base}/api/gold/unknown_table")),
        get(&format!("{base}/api/gold/kpi_summary?date=yesterday")),
        post_sql(&base, "DELETE FROM silver.sales_master"),
        post_sql(&base, "SELECT * FROM"),
        // 2,159 lines x 7 segments: over the 10,000-row limit.
        post_sql(
            &base,
            "SELECT * FROM silver.sales_master CROSS JOIN gold.rfm_segments",
        ),
    ] {
        let text = body.to_string();
        assert!(
            (400..500).contains(&status),
            "{status} {}",
            &text[..text.len().min(300)]
        );
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
    }
    assert_eq!(get(&format!("{base}/health")).0, 200);

    // The stream stops; `lake-serve` alone serves its snapshot from gold.
    stack.stop();
    let catalog = Arc::new(Catalog::new(stack.lake.clone()));
    let live_from_lake = Arc::new(LakeLive::new(
        catalog.clone(),
        QUERY,
        Duration::from_millis(0),
    ));
    let alone = lake_serve::spawn(
        "127.0.0.1:0",
        AppState::new(catalog, live_from_lake, QUERY, SqlLimits::default()),
    )
    .unwrap();
    let (status, body) = get(&format!("{}/api/live/sales-by-country", alone.url()));
    assert_eq!(status, 200);
    assert_eq!(body["origin"], "lake");
    assert_live_equals_report(&live_totals(&body), &report);
    let text = reqwest::blocking::get(format!("{}/metrics", alone.url()))
        .unwrap()
        .text()
        .unwrap();
    assert!(
        text.contains(&format!(
            "lake_stream_events_consumed_total{{query=\"{QUERY}\"}} {}",
            report.sent
        )),
        "{text}"
    );
}
