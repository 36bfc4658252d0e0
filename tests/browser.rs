//! The dashboard in headless Chromium: the KPI tiles show the gold figures,
//! and events produced to Kafka appear in the live table within seconds.
//! A screenshot is saved under `target/test-artifacts/`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use lake_core::dag::group_digits;
use lake_table::Layer;
use lake_testkit::browser::ChromeDriver;
use lake_tests::live_stack::LiveStack;
use lake_tests::{read, sum_f64, test_date};
use xtask::summary::money;

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

#[test]
fn the_dashboard_shows_gold_figures_and_live_sales() {
    let driver = ChromeDriver::start().unwrap_or_else(|err| panic!("{err:#}"));
    let stack = LiveStack::start("browser");
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

        let png = client.screenshot().await.unwrap();
        let dir = artifacts_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dashboard.png");
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
        client.close().await.unwrap();
    });
}
