//! Every endpoint of the API on a small hand-made lake, through the router
//! (no socket): the figures it returns, and a clear 4xx JSON error for
//! each kind of bad input. The workspace test `tests/serve.rs` runs the
//! real server over HTTP on a lake the pipeline and the stream wrote.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{NaiveDate, Utc};
use http_body_util::BodyExt;
use lake_core::run::{Outcome, RunKind, RunManifest, StepRecord, TableVersion};
use lake_serve::{AppState, Catalog, LiveSnapshot, MemoryLive, SqlLimits, router};
use lake_stream::stream_status::StreamStatus;
use lake_table::{DateWriter, Lake, Layer, TableRef};
use polars::prelude::*;
use serde_json::{Value, json};
use tower::ServiceExt;

const DAY1: &str = "2026-11-25";
const DAY2: &str = "2026-11-26";

fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

fn write(lake: &Lake, layer: Layer, table: &str, date: &str, mut df: DataFrame) -> TableVersion {
    let mut writer =
        DateWriter::new(lake, TableRef::new(layer, table), day(date), "run-test").unwrap();
    writer.write_frame(&mut df).unwrap();
    (&writer.replace().unwrap()).into()
}

fn kpi(revenue: f64) -> DataFrame {
    df!(
        "total_revenue" => [revenue],
        "order_count" => [830i64],
        "customer_count" => [89i64],
        "avg_order_value" => [revenue / 830.0],
        "first_order_date" => [day("1996-07-04")],
    )
    .unwrap()
}

fn step(name: &str, writes: Vec<TableVersion>, outcome: Outcome) -> StepRecord {
    StepRecord {
        name: name.into(),
        sources: Vec::new(),
        reads: Vec::new(),
        writes,
        rows_in: 1,
        rows_out: 1,
        rejects: Default::default(),
        duration_ms: 3,
        attempts: 1,
        outcome,
        error: None,
    }
}

/// `lines` sales lines: line i has customer `C{i % 7}`, country `A`/`B`/`C`
/// by i % 3, and total i + 0.5.
fn sales_master(lines: usize) -> DataFrame {
    let countries = ["A", "B", "C"];
    df!(
        "order_id" => (0..lines as i64).map(|i| 10_000 + i / 2).collect::<Vec<_>>(),
        "customer_id" => (0..lines).map(|i| format!("C{}", i % 7)).collect::<Vec<_>>(),
        "country" => (0..lines).map(|i| countries[i % 3]).collect::<Vec<_>>(),
        "line_total" => (0..lines).map(|i| i as f64 + 0.5).collect::<Vec<_>>(),
    )
    .unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    lake: Lake,
    live: MemoryLive,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    write(&lake, Layer::Gold, "kpi_summary", DAY1, kpi(100.0));
    let complete = write(&lake, Layer::Gold, "kpi_summary", DAY2, kpi(1_234_567.891));
    // A later run rewrote DAY2 and then failed: pages keep showing the
    // versions of the latest complete run.
    let failed = write(&lake, Layer::Gold, "kpi_summary", DAY2, kpi(-1.0));
    let revenue_by_country = write(
        &lake,
        Layer::Gold,
        "revenue_by_country",
        DAY2,
        df!(
            "country" => ["France", "Germany", "USA"],
            "revenue" => [300.0, 200.0, 100.0],
            "order_count" => [3i64, 2, 1],
            "rank" => [1i64, 2, 3],
        )
        .unwrap(),
    );
    write(
        &lake,
        Layer::Silver,
        "sales_master",
        DAY2,
        sales_master(2000),
    );
    write(
        &lake,
        Layer::Silver,
        "_rejects/sales_master",
        DAY2,
        df!("order_id" => [1i64], "reason" => ["orphan_product"]).unwrap(),
    );
    let silver = StepRecord {
        name: "silver/sales_master".into(),
        sources: Vec::new(),
        reads: vec![TableVersion {
            table: "bronze/order_details".into(),
            version: 0,
            date: day(DAY2),
        }],
        writes: Vec::new(),
        rows_in: 2001,
        rows_out: 2000,
        rejects: [("orphan_product".to_string(), 1u64)].into_iter().collect(),
        duration_ms: 12,
        attempts: 1,
        outcome: Outcome::Succeeded,
        error: None,
    };
    let manifest = |run_id: &str, outcome: Outcome, steps: Vec<StepRecord>| RunManifest {
        run_id: run_id.into(),
        kind: RunKind::Batch,
        project_version: "0.1.0".into(),
        date: day(DAY2),
        source: "generator".into(),
        started_at: Utc::now(),
        finished_at: Utc::now(),
        outcome,
        steps,
    };
    manifest(
        "run-20261126",
        Outcome::Succeeded,
        vec![
            silver,
            step("gold/kpi_summary", vec![complete], Outcome::Succeeded),
            step(
                "gold/revenue_by_country",
                vec![revenue_by_country],
                Outcome::Succeeded,
            ),
        ],
    )
    .save(&lake)
    .unwrap();
    manifest(
        "run-20261127-failed",
        Outcome::Failed,
        vec![
            step("gold/kpi_summary", vec![failed], Outcome::Succeeded),
            step("gold/revenue_by_country", Vec::new(), Outcome::Failed),
        ],
    )
    .save(&lake)
    .unwrap();

    let live = MemoryLive::new().unwrap();
    let by_country = df!(
        "pays" => ["France", "Japan"],
        "total_ventes_live" => [10.25, 4.0],
        "nb_transactions" => [2i64, 1],
    )
    .unwrap();
    // Minutes 10:00 and 10:01 of 2026-12-07 (window_start in µs, UTC).
    let mut by_minute = df!(
        "pays" => ["France", "Japan", "France"],
        "total_ventes" => [10.25, 4.0, 1.5],
    )
    .unwrap();
    let minute = 60_000_000i64;
    let starts = Series::new(
        "window_start".into(),
        [
            1_796_637_600_000_000i64,
            1_796_637_600_000_000 + minute,
            1_796_637_600_000_000 + minute,
        ],
    )
    .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
    .into_column();
    by_minute.with_column(starts).unwrap();
    let status = StreamStatus {
        query: "ventes_temps_reel".into(),
        events_consumed: 5,
        counted: 3,
        dlq: [("invalid_json".to_string(), 2u64)].into_iter().collect(),
        lag: Some(7),
        last_batch_duration_ms: Some(40),
        last_checkpoint_at: Some(Utc::now()),
        ..StreamStatus::default()
    };
    live.publish(LiveSnapshot::new(by_country, by_minute, Some(status), "memory").unwrap());
    Fixture {
        _dir: dir,
        lake,
        live,
    }
}

fn app(fixture: &Fixture, limits: SqlLimits) -> axum::Router {
    let catalog = Arc::new(Catalog::new(fixture.lake.clone()));
    router(AppState::new(
        catalog,
        Arc::new(fixture.live.clone()),
        "ventes_temps_reel",
        limits,
    ))
}

async fn call(app: &axum::Router, request: Request<Body>) -> (StatusCode, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, Value) {
    let (status, body) = call(app, Request::get(uri).body(Body::empty()).unwrap()).await;
    let value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{uri}: not JSON: {body}"));
    (status, value)
}

async fn sql(app: &axum::Router, body: &str) -> (StatusCode, Value) {
    let request = Request::post("/api/sql")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let (status, body) = call(app, request).await;
    (status, serde_json::from_str(&body).unwrap())
}

/// Status, headers and JSON body of a `POST /api/sql`.
async fn sql_response(
    app: &axum::Router,
    body: &str,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let request = Request::post("/api/sql")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).to_string();
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{status}: the body is not JSON: {text:?}"));
    (status, headers, value)
}

fn query(text: &str) -> String {
    json!({ "query": text }).to_string()
}

/// A 4xx with `{"error": ...}` containing `needle`.
fn assert_client_error(got: &(StatusCode, Value), status: StatusCode, needle: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["status"], status.as_u16());
    let message = got.1["error"].as_str().unwrap();
    assert!(message.contains(needle), "{message:?} lacks {needle:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn gold_tables_and_partitions() {
    let fixture = fixture();
    let app = app(&fixture, SqlLimits::default());

    let (status, listing) = get(&app, "/api/gold").await;
    assert_eq!(status, StatusCode::OK);
    let tables: Vec<&str> = listing["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    assert_eq!(tables, ["kpi_summary", "revenue_by_country"]);
    let kpi = &listing["tables"][0];
    assert_eq!(kpi["partitions"][0]["date"], DAY1);
    assert_eq!(kpi["partitions"][1]["date"], DAY2);
    assert_eq!(kpi["partitions"][1]["rows"], 1);
    assert_eq!(kpi["version"], 2);

    // Every layer's tables with their SQL names.
    let (status, all) = get(&app, "/api/tables").await;
    assert_eq!(status, StatusCode::OK);
    let sql_names: Vec<&str> = all["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["sql_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        sql_names,
        [
            "silver._rejects.sales_master",
            "silver.sales_master",
            "gold.kpi_summary",
            "gold.revenue_by_country"
        ]
    );

    // By default the version of the latest complete run (not the failed
    // run's later version), another date at its latest version.
    let (status, latest) = get(&app, "/api/gold/kpi_summary").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(latest["date"], DAY2);
    assert_eq!(latest["version"], 1);
    assert_eq!(latest["run_id"], "run-20261126");
    assert_eq!(latest["rows"][0]["total_revenue"], 1_234_567.891);
    assert_eq!(latest["rows"][0]["first_order_date"], "1996-07-04");
    assert_eq!(
        latest["columns"][1],
        json!({"name": "order_count", "type": "i64"})
    );
    let (_, older) = get(&app, &format!("/api/gold/kpi_summary?date={DAY1}")).await;
    assert_eq!(older["rows"][0]["total_revenue"], 100.0);

    // Bad input.
    assert_client_error(
        &get(&app, "/api/gold/kpi_summary?date=26-11-2026").await,
        StatusCode::BAD_REQUEST,
        "YYYY-MM-DD",
    );
    assert_client_error(
        &get(&app, "/api/gold/kpi_summary?date=2020-01-01").await,
        StatusCode::NOT_FOUND,
        &format!("gold/kpi_summary holds no 2020-01-01; it holds {DAY1}, {DAY2}"),
    );
    assert_client_error(
        &get(&app, "/api/gold/no_such_metric").await,
        StatusCode::NOT_FOUND,
        "gold tables: kpi_summary, revenue_by_country",
    );
    assert_client_error(
        &get(&app, "/api/gold/..%2F..%2Fsilver").await,
        StatusCode::BAD_REQUEST,
        "is not a table name",
    );
    assert_client_error(
        &get(&app, "/api/nothing").await,
        StatusCode::NOT_FOUND,
        "no route /api/nothing",
    );
}

/// A run's manifest, finished `minutes` after a fixed time.
fn run_of(run_id: &str, date: &str, minutes: i64, steps: Vec<StepRecord>) -> RunManifest {
    let at = day("2026-12-07").and_hms_opt(10, 0, 0).unwrap().and_utc()
        + chrono::Duration::minutes(minutes);
    RunManifest {
        run_id: run_id.into(),
        kind: RunKind::Batch,
        project_version: "0.1.0".into(),
        date: day(date),
        source: "generator".into(),
        started_at: at,
        finished_at: at,
        outcome: Outcome::Succeeded,
        steps,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backfill_never_turns_the_served_date_back_and_any_date_is_one_parameter_away() {
    let fixture = fixture();
    let lake = &fixture.lake;
    // The daily run of 12-07, then a backfill of 11-20, run after it.
    let newest = write(lake, Layer::Gold, "kpi_summary", "2026-12-07", kpi(700.0));
    let countries = |revenue: f64| {
        df!(
            "country" => ["France"],
            "revenue" => [revenue],
            "order_count" => [7i64],
            "rank" => [1i64],
        )
        .unwrap()
    };
    let newest_countries = write(
        lake,
        Layer::Gold,
        "revenue_by_country",
        "2026-12-07",
        countries(700.0),
    );
    let live_sales = |sales: f64| {
        df!("pays" => ["France"], "total_ventes_live" => [sales], "nb_transactions" => [1i64])
            .unwrap()
    };
    // The pipeline's stream stage wrote the live view too.
    let staged_live = write(
        lake,
        Layer::Gold,
        "live_sales_by_country",
        "2026-12-07",
        live_sales(0.5),
    );
    run_of(
        "run-20261207",
        "2026-12-07",
        0,
        vec![step(
            "gold",
            vec![newest.clone(), newest_countries, staged_live],
            Outcome::Succeeded,
        )],
    )
    .save(lake)
    .unwrap();
    let backfill = write(lake, Layer::Gold, "kpi_summary", "2026-11-20", kpi(20.0));
    let backfill_countries = write(
        lake,
        Layer::Gold,
        "revenue_by_country",
        "2026-11-20",
        countries(20.0),
    );
    run_of(
        "run-20261207-backfill",
        "2026-11-20",
        5,
        vec![step(
            "gold",
            vec![backfill.clone(), backfill_countries],
            Outcome::Succeeded,
        )],
    )
    .save(lake)
    .unwrap();
    // A stream run, the newest of all, wrote only a live view: not a batch run.
    let live = write(
        lake,
        Layer::Gold,
        "live_sales_by_country",
        "2026-12-08",
        live_sales(1.0),
    );
    RunManifest {
        kind: RunKind::Stream,
        ..run_of(
            "run-20261208-stream",
            "2026-12-08",
            60,
            vec![step("stream", vec![live.clone()], Outcome::Succeeded)],
        )
    }
    .save(lake)
    .unwrap();
    let app = app(&fixture, SqlLimits::default());

    // By default the newest date's run, though the backfill ran last.
    let (status, served) = get(&app, "/api/gold/kpi_summary").await;
    assert_eq!(status, StatusCode::OK, "{served}");
    assert_eq!(served["date"], "2026-12-07");
    assert_eq!(served["run_id"], "run-20261207");
    assert_eq!(served["version"], newest.version);
    assert_eq!(served["rows"][0]["total_revenue"], 700.0);
    // The live view at its latest version, not the one the batch run's
    // stream stage wrote.
    let (_, live_view) = get(&app, "/api/gold/live_sales_by_country").await;
    assert_eq!(live_view["version"], live.version, "{live_view}");
    assert_eq!(live_view["rows"][0]["total_ventes_live"], 1.0);
    // The backfilled date at the version its run wrote.
    let (_, older) = get(&app, "/api/gold/kpi_summary?date=2026-11-20").await;
    assert_eq!(older["run_id"], "run-20261207-backfill");
    assert_eq!(older["version"], backfill.version);
    assert_eq!(older["rows"][0]["total_revenue"], 20.0);
    // A date without a complete run (the fixture's 11-25, written by no
    // run) at the latest version, without a run.
    let (_, no_run) = get(&app, &format!("/api/gold/kpi_summary?date={DAY1}")).await;
    assert_eq!(no_run["run_id"], Value::Null);
    assert_eq!(no_run["rows"][0]["total_revenue"], 100.0);

    // The dates the picker offers: one per complete batch run, newest
    // first; the stream run and the failed run are not among them.
    let (status, dates) = get(&app, "/api/dates").await;
    assert_eq!(status, StatusCode::OK, "{dates}");
    assert_eq!(dates["default"], "2026-12-07");
    let listed: Vec<(&str, &str)> = dates["dates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["date"].as_str().unwrap(), d["run_id"].as_str().unwrap()))
        .collect();
    assert_eq!(
        listed,
        [
            ("2026-12-07", "run-20261207"),
            (DAY2, "run-20261126"),
            ("2026-11-20", "run-20261207-backfill"),
        ]
    );
    // The fixture's run of DAY2 had a silver step; these had none.
    assert_eq!(dates["dates"][1]["order_lines"], 2001);
    assert_eq!(dates["dates"][1]["rejects"]["orphan_product"], 1);
    assert_eq!(dates["dates"][0]["order_lines"], Value::Null);

    // The unified view takes the same date.
    let (_, unified) = get(&app, "/api/unified/sales-by-country?date=2026-11-20").await;
    assert_eq!(unified["batch_date"], "2026-11-20");
    assert_eq!(unified["batch_run_id"], "run-20261207-backfill");
    let (_, unified) = get(&app, "/api/unified/sales-by-country").await;
    assert_eq!(unified["batch_run_id"], "run-20261207");
    assert_client_error(
        &get(&app, "/api/dates?date=2026-11-20").await,
        StatusCode::BAD_REQUEST,
        "takes no parameter",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn live_unified_metrics_runs_and_health() {
    let fixture = fixture();
    let app = app(&fixture, SqlLimits::default());

    let (status, live) = get(&app, "/api/live/sales-by-country").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(live["origin"], "memory");
    assert_eq!(
        live["rows"][0],
        json!({"pays": "France", "total_ventes_live": 10.25, "nb_transactions": 2})
    );
    assert_eq!(live["freshness"]["lag"], 7);
    let (_, minute) = get(&app, "/api/live/sales-by-minute").await;
    assert_eq!(minute["rows"][0]["total_ventes"], 10.25);
    assert_eq!(minute["row_count"], 3);
    assert_eq!(minute["next_since"], Value::Null);
    // A page of two rows would split minute 10:01: it stops before it, and
    // the next page starts there.
    let (status, first) = get(&app, "/api/live/sales-by-minute?limit=2").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["row_count"], 1);
    assert_eq!(first["next_since"], "2026-12-07T10:01:00Z");
    let (_, second) = get(
        &app,
        "/api/live/sales-by-minute?limit=2&since=2026-12-07T10:01:00Z",
    )
    .await;
    assert_eq!(second["row_count"], 2);
    assert_eq!(second["rows"][0]["pays"], "France");
    assert_eq!(second["rows"][1]["pays"], "Japan");
    assert_eq!(second["next_since"], Value::Null);
    let (_, japan) = get(&app, "/api/live/sales-by-minute?pays=Japan").await;
    assert_eq!(japan["row_count"], 1);
    assert_eq!(japan["rows"][0]["total_ventes"], 4.0);

    // Full outer join: France on both sides, Germany and USA batch only,
    // Japan live only; totals add the two sides.
    let (status, unified) = get(&app, "/api/unified/sales-by-country").await;
    assert_eq!(status, StatusCode::OK);
    let rows = unified["rows"].as_array().unwrap();
    let by_country = |c: &str| rows.iter().find(|r| r["country"] == c).unwrap().clone();
    assert_eq!(rows.len(), 4);
    assert_eq!(by_country("France")["revenue_total"], 300.0 + 10.25);
    assert_eq!(by_country("Japan")["revenue_batch"], Value::Null);
    assert_eq!(by_country("Japan")["revenue_total"], 4.0);
    assert_eq!(by_country("USA")["transactions_live"], Value::Null);

    let (status, text) = call(&app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    for line in [
        "lake_stream_events_consumed_total{query=\"ventes_temps_reel\"} 5",
        "lake_stream_dlq_total{query=\"ventes_temps_reel\",reason=\"invalid_json\"} 2",
        "lake_stream_lag_messages{query=\"ventes_temps_reel\"} 7",
        "lake_stream_micro_batch_duration_seconds{query=\"ventes_temps_reel\"} 0.04",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }

    let (status, runs) = get(&app, "/api/runs").await;
    assert_eq!(status, StatusCode::OK);
    // Newest first: the failed run, then the complete one.
    assert_eq!(runs["runs"][0]["run_id"], "run-20261127-failed");
    assert_eq!(runs["runs"][1]["run_id"], "run-20261126");
    assert_eq!(runs["runs"][1]["steps"][0]["rejects"]["orphan_product"], 1);
    assert_eq!(runs["runs"][1]["steps"][1]["writes"][0]["version"], 1);
    assert_client_error(
        &get(&app, "/api/runs?limit=0").await,
        StatusCode::BAD_REQUEST,
        "limit",
    );
    // A parameter an endpoint does not take is refused, naming what it takes.
    assert_client_error(
        &get(&app, "/api/gold/kpi_summary?limit=5").await,
        StatusCode::BAD_REQUEST,
        "/api/gold/kpi_summary does not take ?limit=: it takes date",
    );
    assert_client_error(
        &get(&app, "/api/runs?limt=5").await,
        StatusCode::BAD_REQUEST,
        "does not take ?limt=: it takes limit",
    );
    assert_client_error(
        &get(&app, "/api/live/sales-by-minute?page=2").await,
        StatusCode::BAD_REQUEST,
        "it takes since, pays, limit",
    );
    assert_client_error(
        &get(&app, "/api/live/sales-by-country?limit=2").await,
        StatusCode::BAD_REQUEST,
        "it takes no parameter",
    );
    assert_client_error(
        &get(&app, "/api/live/sales-by-minute?since=yesterday").await,
        StatusCode::BAD_REQUEST,
        "since must be an RFC 3339 time",
    );
    assert_client_error(
        &get(&app, "/api/live/sales-by-minute?limit=0").await,
        StatusCode::BAD_REQUEST,
        "limit must be a whole number from 1 to 10000",
    );
    let (status, _) = get(&app, "/api/runs?limit=1").await;
    assert_eq!(status, StatusCode::OK);

    let (status, health) = get(&app, "/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["live_source"], "memory");

    let (status, page) = call(&app, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"kpi-total-revenue\""));
    let (status, script) = call(
        &app,
        Request::get("/assets/app.js").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(script.contains("/api/live/sales-by-country"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_reads_and_refuses() {
    let fixture = fixture();
    let app = app(
        &fixture,
        SqlLimits {
            max_rows: 100,
            ..SqlLimits::default()
        },
    );
    // Revenue per country of the 2000 hand-made lines, computed here.
    let lines = sales_master(2000);
    let mut expected = [0.0f64; 3];
    for (i, total) in lines
        .column("line_total")
        .unwrap()
        .f64()
        .unwrap()
        .iter()
        .enumerate()
    {
        expected[i % 3] += total.unwrap();
    }
    let (status, result) = sql(
        &app,
        &query(
            "SELECT country, SUM(line_total) AS revenue, COUNT(*) AS n \
             FROM silver.sales_master GROUP BY country ORDER BY country",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    for (i, country) in ["A", "B", "C"].iter().enumerate() {
        let row = &result["rows"][i];
        assert_eq!(row["country"], *country);
        assert!((row["revenue"].as_f64().unwrap() - expected[i]).abs() < 1e-6);
    }
    // Joins across layers, folders as dots, quoted names.
    let (status, result) = sql(
        &app,
        &query(
            "SELECT k.order_count, r.reason FROM gold.kpi_summary k \
             CROSS JOIN \"silver._rejects.sales_master\" r",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(
        result["rows"][0],
        json!({"order_count": 830, "reason": "orphan_product"})
    );

    // Refused before running.
    assert_client_error(
        &sql(&app, &query("DROP TABLE gold.kpi_summary")).await,
        StatusCode::BAD_REQUEST,
        "only SELECT queries are allowed",
    );
    assert_client_error(
        &sql(&app, &query("SELECT 1; DELETE FROM gold.kpi_summary")).await,
        StatusCode::BAD_REQUEST,
        "one statement only",
    );
    assert_client_error(
        &sql(&app, "{\"sql\": 1}").await,
        StatusCode::BAD_REQUEST,
        "the body must be JSON",
    );
    assert_client_error(
        &sql(&app, "SELECT 1").await,
        StatusCode::BAD_REQUEST,
        "the body must be JSON",
    );
    // Malformed or wrong.
    assert_client_error(
        &sql(&app, &query("SELECT * FROM (")).await,
        StatusCode::BAD_REQUEST,
        "SQL error",
    );
    // Parsed, then refused by Polars.
    assert_client_error(
        &sql(&app, &query("SELECT 1 FROM gold.kpi_summary LIMIT 'x'")).await,
        StatusCode::BAD_REQUEST,
        "SQL error",
    );
    assert_client_error(
        &sql(&app, &query("SELECT * FROM gold.nothing")).await,
        StatusCode::BAD_REQUEST,
        "tables are named layer.table",
    );
    assert_client_error(
        &sql(&app, &query("SELECT no_column FROM gold.kpi_summary")).await,
        StatusCode::BAD_REQUEST,
        "no_column",
    );
    // Over the row limit.
    assert_client_error(
        &sql(&app, &query("SELECT * FROM silver.sales_master")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "more than 100 rows",
    );
    let (status, limited) = sql(&app, &query("SELECT * FROM silver.sales_master LIMIT 100")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(limited["row_count"], 100);
    // Still answering.
    assert_eq!(get(&app, "/health").await.0, StatusCode::OK);
}

/// A hook that holds every query whose text contains `marker` until the
/// test releases it, and panics on queries containing "PANIC".
struct Gate {
    release: std::sync::mpsc::Sender<()>,
    hook: lake_serve::state::SqlHook,
}

fn gate(marker: &'static str) -> Gate {
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = std::sync::Mutex::new(released);
    let hook: lake_serve::state::SqlHook = Arc::new(move |query: &str| {
        if query.contains("PANIC") {
            panic!("the test's hook panics on purpose");
        }
        if query.contains(marker) {
            let _ = released.lock().unwrap_or_else(|p| p.into_inner()).recv();
        }
    });
    Gate { release, hook }
}

fn app_with(
    fixture: &Fixture,
    limits: SqlLimits,
    hook: lake_serve::state::SqlHook,
) -> axum::Router {
    let catalog = Arc::new(Catalog::new(fixture.lake.clone()));
    router(
        AppState::new(
            catalog,
            Arc::new(fixture.live.clone()),
            "ventes_temps_reel",
            limits,
        )
        .with_sql_hook_for_tests(hook),
    )
}

/// Polls `check` every 20 ms until it holds, for at most 10 s.
async fn eventually<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_past_its_time_limit_is_cut_off_and_holds_its_slot() {
    let fixture = fixture();
    let gate = gate("HOLD");
    let app = app_with(
        &fixture,
        SqlLimits {
            max_rows: 10,
            timeout: Duration::from_millis(50),
            concurrent: 1,
            ..SqlLimits::default()
        },
        gate.hook.clone(),
    );
    // Held by the hook until released: past any time limit, whatever the
    // machine's speed, and outside Polars, where no stop reaches it.
    assert_client_error(
        &sql(&app, &query("SELECT 'HOLD' AS held")).await,
        StatusCode::REQUEST_TIMEOUT,
        "time limit of 0.05 s",
    );
    // Its work has not ended: the one slot stays taken, and the refusal
    // says when to try again.
    let (status, headers, body) = sql_response(&app, &query("SELECT 1 AS one")).await;
    assert_client_error(
        &(status, body),
        StatusCode::TOO_MANY_REQUESTS,
        "1 SQL queries are already running",
    );
    assert_eq!(
        headers.get("retry-after").map(|v| v.to_str().unwrap()),
        Some("1")
    );
    let text = metrics_text(&app).await;
    assert_eq!(metric(&text, "lake_serve_sql_queries_running "), 1.0);
    assert_eq!(
        metric(
            &text,
            "lake_serve_sql_queries_stopped_total{reason=\"time_limit\"} "
        ),
        1.0
    );
    assert_eq!(metric(&text, "lake_serve_sql_refused_busy_total "), 1.0);
    assert_eq!(get(&app, "/health").await.0, StatusCode::OK);
    // Released, it ends and frees its slot.
    gate.release.send(()).unwrap();
    eventually("the held query to free its slot", || async {
        let (status, body) = sql(&app, &query("SELECT 1 AS one")).await;
        status == StatusCode::OK && body["rows"][0]["one"] == 1
    })
    .await;
    let text = metrics_text(&app).await;
    assert_eq!(metric(&text, "lake_serve_sql_queries_running "), 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_goes_away_stops_its_query() {
    let fixture = fixture();
    let gate = gate("HOLD");
    let app = app_with(
        &fixture,
        SqlLimits {
            concurrent: 1,
            ..SqlLimits::default()
        },
        gate.hook.clone(),
    );
    let waiting = {
        let app = app.clone();
        tokio::spawn(async move { sql(&app, &query("SELECT 'HOLD' AS held")).await })
    };
    eventually("the query to run", || async {
        metric(&metrics_text(&app).await, "lake_serve_sql_queries_running ") == 1.0
    })
    .await;
    // The client goes away: its handler is dropped before it answered.
    waiting.abort();
    let stopped = "lake_serve_sql_queries_stopped_total{reason=\"client_gone\"} ";
    eventually("the query to be asked to stop", || async {
        metric(&metrics_text(&app).await, stopped) == 1.0
    })
    .await;
    // Held outside Polars by the hook, it ends when released, and gives
    // its slot back then.
    gate.release.send(()).unwrap();
    eventually("the slot to come back", || async {
        let (status, _) = sql(&app, &query("SELECT 1 AS one")).await;
        status == StatusCode::OK
    })
    .await;
    assert_eq!(
        metric(&metrics_text(&app).await, "lake_serve_sql_queries_running "),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_query_answers_500_and_the_server_stays_up() {
    let fixture = fixture();
    let gate = gate("HOLD");
    let app = app_with(
        &fixture,
        SqlLimits {
            concurrent: 1,
            ..SqlLimits::default()
        },
        gate.hook.clone(),
    );
    let (status, body) = sql(&app, &query("SELECT 'PANIC' AS p")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["status"], 500);
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("the SQL engine failed") && message.contains("panics on purpose"),
        "{message}"
    );
    // Up, and the panicking query's slot is free again.
    assert_eq!(get(&app, "/health").await.0, StatusCode::OK);
    let (status, body) = sql(
        &app,
        &query("SELECT COUNT(*) AS n FROM silver.sales_master"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rows"][0]["n"], 2000);
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_reads_nothing_but_the_lake_tables() {
    let fixture = fixture();
    let app = app(&fixture, SqlLimits::default());
    // A Parquet file the server can read, outside the lake.
    let outside = tempfile::tempdir().unwrap();
    let path = outside.path().join("secret.parquet");
    let mut secret = df!("s" => ["the-secret-value"]).unwrap();
    ParquetWriter::new(std::fs::File::create(&path).unwrap())
        .finish(&mut secret)
        .unwrap();
    let path = path.display().to_string();
    for (text, needle) in [
        (
            format!("SELECT * FROM read_parquet('{path}')"),
            "table function read_parquet(...) is not allowed",
        ),
        (
            format!("SELECT s FROM gold.kpi_summary, read_parquet('{path}')"),
            "table function read_parquet(...) is not allowed",
        ),
        (
            format!(
                "SELECT * FROM gold.kpi_summary WHERE EXISTS (SELECT * FROM read_parquet('{path}'))"
            ),
            "table function read_parquet(...) is not allowed",
        ),
        (
            format!("WITH t AS (SELECT * FROM READ_PARQUET('{path}')) SELECT * FROM t"),
            "table function READ_PARQUET(...) is not allowed",
        ),
        (
            format!("SELECT * FROM read_csv('{path}')"),
            "table function read_csv(...) is not allowed",
        ),
        (
            format!("SELECT * FROM \"{path}\""),
            "is a path, not a table",
        ),
        (
            "SELECT * FROM secrets".to_string(),
            "unknown table secrets (tables are named layer.table: gold.kpi_summary, gold.revenue_by_country, silver._rejects.sales_master, silver.sales_master)",
        ),
    ] {
        let got = sql(&app, &query(&text)).await;
        assert_client_error(&got, StatusCode::BAD_REQUEST, needle);
        assert!(!got.1.to_string().contains("the-secret-value"), "{}", got.1);
    }
    // The same file is readable: the refusals are the check's, not luck.
    assert_eq!(
        ParquetReader::new(std::fs::File::open(&path).unwrap())
            .finish()
            .unwrap()
            .height(),
        1
    );
}

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in\n{text}"))
}

async fn metrics_text(app: &axum::Router) -> String {
    let (status, text) = call(app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn the_frame_cache_stays_within_its_bytes_evicting_the_least_recently_used() {
    let fixture = fixture();
    let router_with_limit = |bytes: u64| {
        router(AppState::new(
            Arc::new(Catalog::with_cache_limit(fixture.lake.clone(), bytes)),
            Arc::new(fixture.live.clone()),
            "ventes_temps_reel",
            SqlLimits::default(),
        ))
    };
    const BYTES: &str = "lake_serve_cache_bytes{cache=\"frames\"}";
    const EVICTED: &str = "lake_serve_cache_evictions_total{cache=\"frames\"}";
    // The size of one date of kpi_summary (both dates have the same shape).
    let roomy = router_with_limit(1 << 30);
    assert_eq!(
        get(&roomy, &format!("/api/gold/kpi_summary?date={DAY1}"))
            .await
            .0,
        StatusCode::OK
    );
    let one = metric(&metrics_text(&roomy).await, BYTES);
    assert!(one > 0.0);

    // Room for exactly one of them.
    let app = router_with_limit(one as u64);
    let text = metrics_text(&app).await;
    assert_eq!(
        metric(&text, "lake_serve_cache_limit_bytes{cache=\"frames\"}"),
        one
    );
    let (_, first) = get(&app, &format!("/api/gold/kpi_summary?date={DAY1}")).await;
    assert_eq!(first["rows"][0]["total_revenue"], 100.0);
    // DAY2 as its complete run wrote it (not the failed run's later version).
    let (_, second) = get(&app, &format!("/api/gold/kpi_summary?date={DAY2}")).await;
    assert_eq!(second["rows"][0]["total_revenue"], 1_234_567.891);
    let text = metrics_text(&app).await;
    assert_eq!(metric(&text, BYTES), one);
    assert_eq!(
        metric(&text, "lake_serve_cache_entries{cache=\"frames\"}"),
        1.0
    );
    assert_eq!(metric(&text, EVICTED), 1.0);
    // Its page is still at hand, encoded.
    let (_, again) = get(&app, &format!("/api/gold/kpi_summary?date={DAY1}")).await;
    assert_eq!(again["rows"][0]["total_revenue"], 100.0);
    let text = metrics_text(&app).await;
    assert_eq!(metric(&text, EVICTED), 1.0);
    assert_eq!(
        metric(&text, "lake_serve_cache_hits_total{cache=\"gold_pages\"}"),
        1.0
    );

    // A frame larger than the whole cache is served and not kept.
    let tiny = router_with_limit(16);
    let (status, body) = sql(
        &tiny,
        &query("SELECT COUNT(*) AS n FROM silver.sales_master"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rows"][0]["n"], 2000);
    let text = metrics_text(&tiny).await;
    assert_eq!(metric(&text, BYTES), 0.0);
    assert_eq!(
        metric(&text, "lake_serve_cache_entries{cache=\"frames\"}"),
        0.0
    );
}

const KEY: &str = "test-key-0123456789abcdef";

#[tokio::test(flavor = "multi_thread")]
async fn api_keys_guard_everything_but_the_dashboard_and_health() {
    let fixture = fixture();
    let keys =
        lake_serve::ApiKeys::parse(&format!("other-key-0123456789abcdef,{KEY}"), "test").unwrap();
    let app = router(
        AppState::new(
            Arc::new(Catalog::new(fixture.lake.clone())),
            Arc::new(fixture.live.clone()),
            "ventes_temps_reel",
            SqlLimits::default(),
        )
        .with_keys(keys),
    );
    let request = |method: &str, uri: &str, authorization: Option<&str>| {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(value) = authorization {
            builder = builder.header("authorization", value);
        }
        let body = if method == "POST" {
            Body::from(query("SELECT 1 AS one"))
        } else {
            Body::empty()
        };
        builder.body(body).unwrap()
    };
    // Open without a key.
    for uri in ["/", "/assets/app.js", "/assets/style.css", "/health"] {
        let (status, _) = call(&app, request("GET", uri, None)).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
    }
    let (_, health) = get(&app, "/health").await;
    assert_eq!(health["api_key_required"], true);
    // Everything else: 401 JSON without a key or with a wrong one.
    let guarded = [
        ("GET", "/api/gold"),
        ("GET", "/api/gold/kpi_summary"),
        ("GET", "/api/tables"),
        ("GET", "/api/live/sales-by-country"),
        ("GET", "/api/live/sales-by-minute"),
        ("GET", "/api/unified/sales-by-country"),
        ("GET", "/api/runs"),
        ("POST", "/api/sql"),
        ("GET", "/metrics"),
        ("GET", "/api/no-such-route"),
        ("GET", "/assets/../api/gold"),
    ];
    let wrong = "Bearer test-key-0123456789abcdeX";
    for (method, uri) in guarded {
        for (authorization, needle) in [
            (None, "needs an API key"),
            (Some(wrong), "the API key is not valid"),
            (Some(&format!("Basic {KEY}")[..]), "must be `Bearer <key>`"),
            (
                Some(&format!("Bearer {}", &KEY[..KEY.len() - 1])[..]),
                "the API key is not valid",
            ),
        ] {
            let response = app
                .clone()
                .oneshot(request(method, uri, authorization))
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {uri}"
            );
            assert_eq!(
                response.headers()["www-authenticate"],
                "Bearer realm=\"lake\""
            );
            let body = response.into_body().collect().await.unwrap().to_bytes();
            let body: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["status"], 401);
            let message = body["error"].as_str().unwrap();
            assert!(message.contains(needle), "{method} {uri}: {message}");
            // Neither the key nor what the client sent shows.
            assert!(!body.to_string().contains("0123456789abcde"), "{body}");
        }
    }
    // The right key (either of the two, any case of the scheme).
    let right = format!("Bearer {KEY}");
    for (method, uri) in guarded {
        let (status, body) = call(&app, request(method, uri, Some(&right))).await;
        let expected = if uri.contains("no-such-route") || uri.contains("..") {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::OK
        };
        assert_eq!(status, expected, "{method} {uri}: {body}");
    }
    let (status, _) = call(
        &app,
        request(
            "GET",
            "/api/gold",
            Some("bearer other-key-0123456789abcdef"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn lake_live_serves_its_snapshot_while_it_rereads_the_lake() {
    let fixture = fixture();
    let live_tables = |total: f64| {
        write(
            &fixture.lake,
            Layer::Gold,
            "live_sales_by_country",
            DAY2,
            df!("pays" => ["France"], "total_ventes_live" => [total], "nb_transactions" => [1i64])
                .unwrap(),
        );
        write(&fixture.lake, Layer::Gold, "live_sales_by_minute", DAY2, {
            let mut df = df!("pays" => ["France"], "total_ventes" => [total]).unwrap();
            let start = Series::new("window_start".into(), [1_796_637_600_000_000i64])
                .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
                .into_column();
            df.with_column(start).unwrap();
            df
        });
    };
    live_tables(1.5);
    let catalog = Arc::new(Catalog::new(fixture.lake.clone()));
    let live = Arc::new(lake_serve::LakeLive::new(
        catalog.clone(),
        "ventes_temps_reel",
        Duration::ZERO,
    ));
    let app = router(AppState::new(
        catalog,
        live,
        "ventes_temps_reel",
        SqlLimits::default(),
    ));
    // One worker thread: a lake read on it would stall the test's requests.
    let (status, body) = get(&app, "/api/live/sales-by-country").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["origin"], "lake");
    assert_eq!(body["rows"][0]["total_ventes_live"], 1.5);
    live_tables(2.5);
    // Each request is answered from the snapshot at hand and starts a
    // re-read in the background; the new figures show once it is done.
    eventually("the new live figures", || async {
        let (status, body) = get(&app, "/api/live/sales-by-country").await;
        assert_eq!(status, StatusCode::OK);
        body["rows"][0]["total_ventes_live"] == 2.5
    })
    .await;
}

/// Status and raw body of a request, with the body's JSON error checked:
/// `{"error": <text containing needle>, "status": <the status>}`.
async fn assert_json_error(
    app: &axum::Router,
    request: Request<Body>,
    status: StatusCode,
    needle: &str,
) {
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), status);
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).to_string();
    assert_eq!(content_type.as_deref(), Some("application/json"), "{text}");
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: not JSON: {text:?}"));
    assert_eq!(body["status"], status.as_u16(), "{body}");
    let message = body["error"].as_str().unwrap_or_else(|| panic!("{body}"));
    assert!(message.contains(needle), "{message:?} lacks {needle:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn what_axum_refuses_by_itself_is_a_json_error_too() {
    let fixture = fixture();
    let app = app(&fixture, SqlLimits::default());
    // A body over the limit: axum's rejection, plain text until now.
    let big = format!(
        "{{\"query\": \"SELECT '{}'\"}}",
        "x".repeat(lake_serve::api::SQL_BODY_LIMIT)
    );
    assert_json_error(
        &app,
        Request::post("/api/sql")
            .header("content-type", "application/json")
            .body(Body::from(big))
            .unwrap(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "the body is larger than 2 MiB: a query is at most 64 KiB",
    )
    .await;
    // A method the route does not take: 405 with an empty body until now.
    assert_json_error(
        &app,
        Request::get("/api/sql").body(Body::empty()).unwrap(),
        StatusCode::METHOD_NOT_ALLOWED,
        "GET is not allowed on /api/sql",
    )
    .await;
    // A path that is not UTF-8 once decoded: the path extractor's rejection.
    assert_json_error(
        &app,
        Request::get("/api/gold/%FF").body(Body::empty()).unwrap(),
        StatusCode::BAD_REQUEST,
        "UTF-8",
    )
    .await;
    // A body that is not JSON, and one of the wrong shape: the handler's
    // own 400, whatever the content type says.
    for (content_type, body) in [
        ("text/plain", "SELECT 1"),
        ("application/json", "{\"query\": 1}"),
        ("application/x-www-form-urlencoded", "query=SELECT+1"),
    ] {
        assert_json_error(
            &app,
            Request::post("/api/sql")
                .header("content-type", content_type)
                .body(Body::from(body))
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "the body must be JSON",
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn health_says_nothing_about_where_the_lake_is() {
    let fixture = fixture();
    let app = app(&fixture, SqlLimits::default());
    let (status, body) = call(&app, Request::get("/health").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let health: Value = serde_json::from_str(&body).unwrap();
    // What a liveness probe needs, and whether the API needs a key.
    let mut keys: Vec<&str> = health
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["api_key_required", "live_source", "status"],
        "{body}"
    );
    assert_eq!(health["status"], "ok");
    assert_eq!(health["api_key_required"], false);
    let lake_dir = fixture._dir.path().display().to_string();
    assert!(!body.contains(&lake_dir), "{body} shows {lake_dir}");
    assert!(!body.contains("file://"), "{body}");
}
