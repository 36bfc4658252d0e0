//! `POST /api/sql` on the `lake-serve` binary over HTTP: `run_date` is a
//! column of every table, a query that names it reads every date of the
//! version it reads (one that does not, the latest date, as before), and
//! Delta's time travel clauses (`VERSION AS OF`, `TIMESTAMP AS OF`) read
//! the version they name, through the same allow-list; a version or time
//! the table does not have is a 400 naming what it has.
//!
//! The lake is written here with figures chosen here, so every expected
//! answer is known without the server's code.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use lake_table::{At, DateWriter, Lake, Layer, Table, TableRef};
use polars::prelude::*;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_lake-serve");
const DAY1: &str = "2026-11-25";
const DAY2: &str = "2026-11-26";

fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

/// Replaces `date` of `table` with `frame`; returns the version committed
/// once the clock has moved 50 ms past its commit, so the next commit's
/// time is apart from this one's.
fn write(lake: &Lake, layer: Layer, table: &str, date: &str, mut frame: DataFrame) -> i64 {
    let table = TableRef::new(layer, table);
    let mut writer = DateWriter::new(lake, table.clone(), day(date), "run-test").unwrap();
    writer.write_frame(&mut frame).unwrap();
    let version = writer.replace().unwrap().version;
    let committed = committed_at(lake, &table, version);
    while Utc::now() < committed + chrono::Duration::milliseconds(50) {
        std::thread::sleep(Duration::from_millis(5));
    }
    version
}

fn committed_at(lake: &Lake, table: &TableRef, version: i64) -> DateTime<Utc> {
    Table::open(lake, table.clone())
        .unwrap()
        .at(At::Version(version))
        .unwrap()
        .committed_at()
        .unwrap()
}

fn kpi(revenue: f64) -> DataFrame {
    df!("total_revenue" => [revenue], "order_count" => [7i64]).unwrap()
}

fn lines(n: usize) -> DataFrame {
    df!("line_total" => (0..n).map(|i| i as f64).collect::<Vec<_>>()).unwrap()
}

struct Server {
    child: Child,
    base: String,
    client: reqwest::blocking::Client,
}

impl Server {
    fn start(lake: &std::path::Path) -> Server {
        let mut child = Command::new(BIN)
            .args(["--addr", "127.0.0.1:0", "--lake"])
            .arg(lake)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let addr = first
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("no address in {first:?}"))
            .to_string();
        Server {
            child,
            base: format!("http://{addr}"),
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    /// Status and JSON body of a query.
    fn sql(&self, query: &str) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/api/sql", self.base))
            .json(&json!({ "query": query }))
            .send()
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().unwrap();
        let body =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: not JSON: {text:?}"));
        (status, body)
    }

    /// The rows of a query that must succeed.
    fn rows(&self, query: &str) -> Vec<Value> {
        let (status, body) = self.sql(query);
        assert_eq!(status, 200, "{query}: {body}");
        body["rows"].as_array().unwrap().clone()
    }

    /// The message of a query that must be refused with a 400.
    fn refused(&self, query: &str) -> String {
        let (status, body) = self.sql(query);
        assert_eq!(status, 400, "{query}: {body}");
        body["error"].as_str().unwrap().to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn millis(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[test]
fn sql_reads_run_date_and_time_travels() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    // gold/kpi_summary: v0 DAY1 = 100, v1 DAY2 = 200, v2 DAY2 rerun = 300.
    // No run manifest: the API serves every table at its latest version.
    assert_eq!(
        write(&lake, Layer::Gold, "kpi_summary", DAY1, kpi(100.0)),
        0
    );
    assert_eq!(
        write(&lake, Layer::Gold, "kpi_summary", DAY2, kpi(200.0)),
        1
    );
    assert_eq!(
        write(&lake, Layer::Gold, "kpi_summary", DAY2, kpi(300.0)),
        2
    );
    // silver/sales_master: v0 DAY1 = 3 lines, v1 DAY2 = 5 lines.
    assert_eq!(
        write(&lake, Layer::Silver, "sales_master", DAY1, lines(3)),
        0
    );
    assert_eq!(
        write(&lake, Layer::Silver, "sales_master", DAY2, lines(5)),
        1
    );
    let kpi_table = TableRef::new(Layer::Gold, "kpi_summary");
    let (v0_at, v1_at, v2_at) = (
        committed_at(&lake, &kpi_table, 0),
        committed_at(&lake, &kpi_table, 1),
        committed_at(&lake, &kpi_table, 2),
    );
    assert!(v0_at < v1_at && v1_at < v2_at);

    let server = Server::start(dir.path());
    let revenues = |rows: &[Value]| -> Vec<f64> {
        rows.iter()
            .map(|r| r["total_revenue"].as_f64().unwrap())
            .collect()
    };

    // A query that does not name run_date reads the latest date, as before.
    assert_eq!(
        revenues(&server.rows("SELECT total_revenue FROM gold.kpi_summary")),
        [300.0]
    );
    assert_eq!(
        server.rows("SELECT COUNT(*) AS n FROM silver.sales_master"),
        [json!({"n": 5})]
    );
    // run_date is a column; naming it reads every date of the version.
    assert_eq!(
        server.rows("SELECT * FROM gold.kpi_summary"),
        [json!({"total_revenue": 300.0, "order_count": 7, "run_date": DAY2})]
    );
    assert_eq!(
        server.rows("SELECT run_date, total_revenue FROM gold.kpi_summary ORDER BY run_date"),
        [
            json!({"run_date": DAY1, "total_revenue": 100.0}),
            json!({"run_date": DAY2, "total_revenue": 300.0}),
        ]
    );
    assert_eq!(
        revenues(&server.rows(&format!(
            "SELECT total_revenue FROM gold.kpi_summary WHERE run_date = '{DAY1}'"
        ))),
        [100.0]
    );
    assert_eq!(
        server.rows(
            "SELECT k.run_date, COUNT(*) AS n, SUM(line_total) AS total \
             FROM silver.sales_master k GROUP BY k.run_date ORDER BY k.run_date"
        ),
        [
            json!({"run_date": DAY1, "n": 3, "total": 3.0}),
            json!({"run_date": DAY2, "n": 5, "total": 10.0}),
        ]
    );

    // VERSION AS OF: the version's latest date, or every date with run_date.
    assert_eq!(
        revenues(&server.rows("SELECT total_revenue FROM gold.kpi_summary VERSION AS OF 1")),
        [200.0]
    );
    assert_eq!(
        revenues(&server.rows("SELECT total_revenue FROM gold.kpi_summary VERSION AS OF 0")),
        [100.0]
    );
    assert_eq!(
        server.rows(
            "SELECT run_date, COUNT(*) AS n FROM silver.sales_master VERSION AS OF 0 \
             GROUP BY run_date"
        ),
        [json!({"run_date": DAY1, "n": 3})]
    );
    // Beside the version served, in one query; qualified columns still
    // name a table read at another version.
    assert_eq!(
        server.rows(
            "SELECT now.total_revenue AS now, gold.kpi_summary.total_revenue AS before \
             FROM gold.kpi_summary AS now CROSS JOIN gold.kpi_summary VERSION AS OF 1"
        ),
        [json!({"now": 300.0, "before": 200.0})]
    );
    // Inside a CTE and a subquery, through the same check.
    assert_eq!(
        revenues(&server.rows(
            "WITH old AS (SELECT total_revenue FROM gold.kpi_summary VERSION AS OF 0) \
             SELECT total_revenue FROM old WHERE total_revenue IN \
             (SELECT total_revenue FROM gold.kpi_summary VERSION AS OF 0)"
        )),
        [100.0]
    );

    // TIMESTAMP AS OF: the latest version committed at or before the time.
    let between = |a: DateTime<Utc>, b: DateTime<Utc>| a + (b - a) / 2;
    for (time, expected) in [
        (millis(between(v0_at, v1_at)), 100.0),
        (millis(between(v1_at, v2_at)), 200.0),
        (millis(v2_at + chrono::Duration::hours(1)), 300.0),
    ] {
        assert_eq!(
            revenues(&server.rows(&format!(
                "SELECT total_revenue FROM gold.kpi_summary TIMESTAMP AS OF '{time}'"
            ))),
            [expected],
            "as of {time}"
        );
    }

    // Refused: a version past the latest, a time before the first commit,
    // every other table modifier, a table function, a name that is no
    // lake table.
    assert_eq!(
        server.refused("SELECT * FROM gold.kpi_summary VERSION AS OF 3"),
        "gold.kpi_summary has no version 3: versions 0-2"
    );
    assert_eq!(
        server.refused("SELECT * FROM gold.kpi_summary TIMESTAMP AS OF '2000-01-01'"),
        format!(
            "gold.kpi_summary did not exist yet at 2000-01-01T00:00:00.000Z: \
             its first commit (version 0) was at {}",
            millis(v0_at)
        )
    );
    for (query, needle) in [
        (
            "SELECT * FROM gold.kpi_summary FOR SYSTEM_TIME AS OF '2026-12-07'",
            "not allowed in a query here: table modifiers in",
        ),
        (
            "SELECT * FROM gold.kpi_summary AT(TIMESTAMP => '2026-12-07')",
            "not allowed in a query here: table modifiers in",
        ),
        (
            "SELECT * FROM gold.kpi_summary TABLESAMPLE (10 PERCENT)",
            "not allowed in a query here: table modifiers in",
        ),
        (
            "SELECT * FROM gold.kpi_summary TIMESTAMP AS OF 'yesterday'",
            "time travel: TIMESTAMP AS OF 'yesterday': a time is a string such as",
        ),
        (
            "SELECT * FROM gold.kpi_summary TIMESTAMP AS OF CURRENT_TIMESTAMP",
            "time travel: TIMESTAMP AS OF CURRENT_TIMESTAMP",
        ),
        (
            "SELECT * FROM gold.nothing VERSION AS OF 1",
            "time travel: gold.nothing is not a lake table",
        ),
        (
            "WITH t AS (SELECT 1 AS a) SELECT * FROM t VERSION AS OF 0",
            "time travel: t is not a lake table",
        ),
        (
            "SELECT * FROM read_parquet VERSION AS OF 1 ('/etc/passwd')",
            "table function read_parquet(...) is not allowed",
        ),
        // The name a time travel read is registered under is not a name
        // a client may use.
        (
            "SELECT * FROM \"gold.kpi_summary@v0\"",
            "unknown table \"gold.kpi_summary@v0\"",
        ),
    ] {
        let message = server.refused(query);
        assert!(
            message.contains(needle),
            "{query}: {message:?} lacks {needle:?}"
        );
    }
    // Still answering.
    assert_eq!(
        revenues(&server.rows("SELECT total_revenue FROM gold.kpi_summary VERSION AS OF 2")),
        [300.0]
    );
}
