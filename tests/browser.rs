//! The dashboard in headless Chromium, behind an API key: the page asks for
//! the key (refusing a wrong one) and keeps it for the tab; the KPI tiles
//! show the gold figures; the data-quality, runs and batch-freshness panels
//! show the API's figures; events produced to Kafka appear in the live
//! table and the DLQ panel within seconds. A screenshot is saved under
//! `target/test-artifacts/`. After a backfill of an older date the page
//! still shows the newest date, and its date picker turns to the older one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use lake_core::dag::group_digits;
use lake_serve::ApiKeys;
use lake_serve::{AppState, Catalog, LakeLive, SqlLimits};
use lake_table::Layer;
use lake_tasks::summary::money;
use lake_testkit::browser::ChromeDriver;
use lake_tests::live_stack::LiveStack;
use lake_tests::{read, run, sum_f64, test_date};

/// Where test artifacts go: `$CARGO_TARGET_DIR/test-artifacts`, else the
/// workspace's `target/test-artifacts`.
fn artifacts_dir() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("test-artifacts")
}

async fn text_of(client: &fantoccini::Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|err| panic!("{css}: {err}"))
        .text()
        .await
        .unwrap()
}

/// Waits until the element's text satisfies `ready`; its last text.
async fn wait_text(
    client: &fantoccini::Client,
    css: &str,
    timeout: Duration,
    ready: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = text_of(client, css).await;
        if ready(&text) {
            return text;
        }
        if Instant::now() > deadline {
            let status = text_of(client, "#status").await;
            panic!("{css} still shows {text:?} (page status: {status:?})");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the element is shown (`true`) or hidden (`false`).
async fn wait_displayed(client: &fantoccini::Client, css: &str, shown: bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let element = client.find(Locator::Css(css)).await.unwrap();
        if element.is_displayed().await.unwrap() == shown {
            return;
        }
        if Instant::now() > deadline {
            panic!("{css} is still {}", if shown { "hidden" } else { "shown" });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn type_key(client: &fantoccini::Client, key: &str) {
    wait_displayed(client, "#login", true).await;
    let input = client.find(Locator::Css("#api-key")).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(key).await.unwrap();
    client
        .find(Locator::Css("#login-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// The rows of a reasons table: reason -> (count as shown, share in %).
async fn reason_rows(client: &fantoccini::Client, table: &str) -> BTreeMap<String, (String, f64)> {
    let mut rows = BTreeMap::new();
    for row in client
        .find_all(Locator::Css(&format!("#{table} tbody tr[data-reason]")))
        .await
        .unwrap()
    {
        let cells = row.find_all(Locator::Css("td")).await.unwrap();
        let mut texts = Vec::new();
        for cell in cells {
            texts.push(cell.text().await.unwrap());
        }
        let share: f64 = texts[2].trim_end_matches('%').parse().unwrap_or(f64::NAN);
        rows.insert(texts[0].clone(), (texts[1].clone(), share));
    }
    rows
}

/// Asserts the page's reasons table holds exactly `expected` (reason ->
/// count), each with its share of `input` to the one decimal shown.
async fn assert_reasons(
    client: &fantoccini::Client,
    table: &str,
    expected: &BTreeMap<String, u64>,
    input: u64,
) {
    let shown = reason_rows(client, table).await;
    assert_eq!(
        shown.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "{table}"
    );
    for (reason, count) in expected {
        let (text, share) = &shown[reason];
        assert_eq!(text, &group_digits(*count), "{table} {reason}");
        let want = 100.0 * *count as f64 / input as f64;
        assert!(
            (share - want).abs() <= 0.05 + 1e-9,
            "{table} {reason}: share {share}% shown, {want}% expected"
        );
    }
}

const KEY: &str = "browser-test-key-0123456789";

#[test]
fn the_dashboard_shows_gold_figures_and_live_sales() {
    let driver = ChromeDriver::start().unwrap_or_else(|err| panic!("{err:#}"));
    let keys = ApiKeys::parse(KEY, "the test").unwrap();
    let stack = LiveStack::start_with_keys("browser", Some(keys));
    // The runs as the API serves them, with the key.
    let runs: serde_json::Value = reqwest::blocking::Client::new()
        .get(format!("{}/api/runs?limit=20", stack.url()))
        .bearer_auth(KEY)
        .send()
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .unwrap();
    let runs = runs["runs"].as_array().unwrap().clone();
    let batch = runs
        .iter()
        .find(|run| {
            run["outcome"] == "succeeded"
                && run["steps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|step| step["name"] == lake_silver::STEP)
        })
        .expect("a complete batch run")
        .clone();
    let silver = batch["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|step| step["name"] == lake_silver::STEP)
        .unwrap()
        .clone();
    let rejects: BTreeMap<String, u64> = serde_json::from_value(silver["rejects"].clone()).unwrap();
    let lines = silver["rows_in"].as_u64().unwrap();
    // The built-in data has rejects of several kinds: the panel has rows.
    assert!(rejects.len() >= 2, "{rejects:?}");
    let kpi = read(&stack.lake, Layer::Gold, "kpi_summary", test_date());
    let countries = read(&stack.lake, Layer::Gold, "revenue_by_country", test_date());
    // The tiles as the gold figures read, formatted here (not by the page).
    let revenue = money(sum_f64(&kpi, "total_revenue"));
    let orders = group_digits(
        kpi.column("order_count")
            .unwrap()
            .i64()
            .unwrap()
            .get(0)
            .unwrap() as u64,
    );
    let average = money(sum_f64(&kpi, "avg_order_value"));
    let top_country = {
        let rank = countries.column("rank").unwrap().i64().unwrap();
        let at = (0..countries.height())
            .find(|i| rank.get(*i) == Some(1))
            .unwrap();
        countries
            .column("country")
            .unwrap()
            .str()
            .unwrap()
            .get(at)
            .unwrap()
            .to_string()
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Both of rustls's crypto back ends are in the build: pick one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    runtime.block_on(async {
        let client = ClientBuilder::rustls()
            .unwrap()
            .capabilities(driver.capabilities())
            .connect(&driver.url)
            .await
            .unwrap_or_else(|err| panic!("no Chromium session: {err}"));
        client.goto(&format!("{}/", stack.url())).await.unwrap();

        // The page asks for the key; a wrong one is refused and asked again.
        type_key(&client, "not-the-key-but-long-enough").await;
        wait_text(&client, "#login-message", Duration::from_secs(20), |t| {
            t.contains("refused")
        })
        .await;
        type_key(&client, KEY).await;
        wait_displayed(&client, "#login", false).await;

        let shown = wait_text(
            &client,
            "#kpi-total-revenue",
            Duration::from_secs(20),
            |t| t != "…",
        )
        .await;
        assert_eq!(shown, revenue);
        assert_eq!(text_of(&client, "#kpi-orders").await, orders);
        assert_eq!(text_of(&client, "#kpi-aov").await, average);
        let first = text_of(&client, "#top-countries li:first-child").await;
        assert!(
            first.starts_with(&top_country),
            "{first:?} should start with {top_country}"
        );
        assert_eq!(
            client
                .find_all(Locator::Css("#category-chart rect"))
                .await
                .unwrap()
                .len(),
            read(&stack.lake, Layer::Gold, "sales_by_category", test_date()).height()
        );

        // The key is kept for the tab: a reload asks nothing.
        let stored = client
            .execute("return sessionStorage.getItem('lake-api-key')", vec![])
            .await
            .unwrap();
        assert_eq!(stored, serde_json::json!(KEY));
        client.refresh().await.unwrap();
        wait_text(
            &client,
            "#kpi-total-revenue",
            Duration::from_secs(20),
            |t| t == revenue,
        )
        .await;
        assert!(
            !client
                .find(Locator::Css("#login"))
                .await
                .unwrap()
                .is_displayed()
                .await
                .unwrap()
        );

        // Batch freshness, the last runs and the silver rejects, as the API has them.
        let date = batch["date"].as_str().unwrap();
        wait_text(&client, "#batch-freshness", Duration::from_secs(20), |t| {
            t.contains(date)
        })
        .await;
        let shown_runs = client
            .find_all(Locator::Css("#runs-table tbody tr"))
            .await
            .unwrap();
        assert_eq!(shown_runs.len(), runs.len().min(5));
        assert_eq!(
            shown_runs[0].attr("data-run-id").await.unwrap().as_deref(),
            runs[0]["run_id"].as_str()
        );
        wait_text(&client, "#rejects-input", Duration::from_secs(20), |t| {
            t.contains(&group_digits(lines))
        })
        .await;
        assert_reasons(&client, "rejects-table", &rejects, lines).await;

        // Events in, live table up to date within seconds.
        let report = tokio::task::block_in_place(|| stack.produce(2000, 43));
        let expected = group_digits(report.counted);
        wait_text(&client, "#live-total-count", Duration::from_secs(60), |t| {
            t == expected
        })
        .await;
        let rows = client
            .find_all(Locator::Css("#live-table tbody tr"))
            .await
            .unwrap();
        assert_eq!(rows.len(), report.by_country.len());
        let freshness = text_of(&client, "#freshness").await;
        assert!(freshness.contains("last event"), "{freshness}");
        // The DLQ panel: the generator's bad messages, by reason, against
        // what the producer says a consumer must reject.
        let dlq_total = group_digits(report.dlq.values().sum());
        wait_text(
            &client,
            "#dlq-table tr.total td:nth-child(2)",
            Duration::from_secs(20),
            |t| t == dlq_total,
        )
        .await;
        assert!(report.dlq.len() >= 2, "{:?}", report.dlq);
        // Every message sent is consumed once (duplicates included).
        let sent = format!("of {} events consumed", group_digits(report.sent));
        wait_text(&client, "#dlq-input", Duration::from_secs(20), |t| {
            t == sent
        })
        .await;
        assert_reasons(&client, "dlq-table", &report.dlq, report.sent).await;

        let png = client.screenshot().await.unwrap();
        let dir = artifacts_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dashboard.png");
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
        client.close().await.unwrap();
    });
}

/// The dashboard's total revenue tile for `date`'s gold figures.
fn revenue_tile(lake: &lake_table::Lake, date: chrono::NaiveDate) -> String {
    money(sum_f64(
        &read(lake, Layer::Gold, "kpi_summary", date),
        "total_revenue",
    ))
}

#[test]
fn after_a_backfill_the_dashboard_shows_the_newest_date_and_picks_any_other() {
    let driver = ChromeDriver::start().unwrap_or_else(|err| panic!("{err:#}"));
    let dir = tempfile::tempdir().unwrap();
    let newest = test_date();
    let older = newest - chrono::Days::new(14);
    // The daily run, then a backfill of an older date, run after it. The
    // source held other data then (scale 2), so the two dates' figures
    // differ and the page shows which one it serves.
    let lake = run(dir.path(), None, 1, newest).unwrap().lake;
    run(dir.path(), None, 2, older).unwrap();
    let (newest_revenue, older_revenue) = (revenue_tile(&lake, newest), revenue_tile(&lake, older));
    assert_ne!(newest_revenue, older_revenue);

    let catalog = std::sync::Arc::new(Catalog::new(lake.clone()));
    let live = std::sync::Arc::new(LakeLive::new(
        catalog.clone(),
        lake_stream::config::QUERY,
        Duration::from_millis(500),
    ));
    let state = AppState::new(
        catalog,
        live,
        lake_stream::config::QUERY,
        SqlLimits::default(),
    );
    let server = lake_serve::spawn("127.0.0.1:0", state).unwrap();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    runtime.block_on(async {
        let client = ClientBuilder::rustls()
            .unwrap()
            .capabilities(driver.capabilities())
            .connect(&driver.url)
            .await
            .unwrap_or_else(|err| panic!("no Chromium session: {err}"));
        client.goto(&format!("{}/", server.url())).await.unwrap();

        // The newest date, though the backfill ran last.
        wait_text(
            &client,
            "#kpi-total-revenue",
            Duration::from_secs(20),
            |t| t == newest_revenue,
        )
        .await;
        let picker = client.find(Locator::Css("#batch-date")).await.unwrap();
        assert_eq!(
            picker.prop("value").await.unwrap().as_deref(),
            Some(newest.to_string().as_str())
        );
        let mut offered = Vec::new();
        for option in client
            .find_all(Locator::Css("#batch-date option"))
            .await
            .unwrap()
        {
            offered.push(option.attr("value").await.unwrap().unwrap_or_default());
        }
        assert_eq!(offered, [newest.to_string(), older.to_string()]);
        wait_text(&client, "#batch-freshness", Duration::from_secs(20), |t| {
            t.contains(&newest.to_string())
        })
        .await;

        // The older date, picked: its figures, its run, and an address that
        // opens it again.
        picker.select_by_value(&older.to_string()).await.unwrap();
        wait_text(
            &client,
            "#kpi-total-revenue",
            Duration::from_secs(20),
            |t| t == older_revenue,
        )
        .await;
        wait_text(&client, "#batch-freshness", Duration::from_secs(20), |t| {
            t.contains(&older.to_string())
        })
        .await;
        let address = client.current_url().await.unwrap();
        assert!(
            address.as_str().ends_with(&format!("/?date={older}")),
            "{address}"
        );
        client.refresh().await.unwrap();
        wait_text(&client, "#batch-freshness", Duration::from_secs(20), |t| {
            t.contains(&older.to_string())
        })
        .await;
        wait_text(
            &client,
            "#kpi-total-revenue",
            Duration::from_secs(20),
            |t| t == older_revenue,
        )
        .await;
        client.close().await.unwrap();
    });
}
