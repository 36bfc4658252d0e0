//! Runaway SQL queries against the `lake-serve` binary over HTTP, on a
//! lake holding the generator's order lines (about 54,000) as the bronze
//! table `order_details`: the cross join of the biggest table with itself,
//! summed (2.9e9 rows: 4.8 s of both cores of the test machine when let
//! run), or grouped by both order ids (4e8 groups: gigabytes).
//!
//! A query past its time limit answers 408 at the limit and stops: the
//! server's CPU time stops growing, its running-queries gauge goes back to
//! 0, its resident memory comes back, and its slots serve other clients
//! within a second. A query past its memory budget is stopped the same way.
//!
//! The server runs under an address-space limit (`ulimit -v`, then `exec`:
//! the same process), so that a server that materializes the cross join (as
//! the in-memory engine did, 2.9e9 rows of indices alone being 23 GB) fails
//! its allocation and dies here instead of taking the test machine's
//! memory. No fixed sleeps: every wait polls with a deadline.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_lake-serve");

/// About 54,000 order lines: a cross join of 2.9e9 rows, under the 2^32
/// rows a Polars cross join may have.
const SCALE: u32 = 25;

/// The server's address space, in KiB: far above what it needs (its
/// virtual size peaked at 1.1 GiB running these queries), far below the
/// test machine's memory.
const ADDRESS_SPACE_KIB: u64 = 6 * 1024 * 1024;

const SUMMED: &str = "SELECT SUM(a.quantity * b.unit_price) AS s \
                      FROM bronze.order_details a CROSS JOIN bronze.order_details b";

const GROUPED: &str = "SELECT one, other, COUNT(*) AS n FROM \
                       (SELECT a.order_id AS one, b.order_id AS other \
                        FROM bronze.order_details a CROSS JOIN bronze.order_details b) \
                       GROUP BY one, other";

const SMALL: &str = "SELECT COUNT(*) AS n FROM bronze.order_details";

const MIB: u64 = 1024 * 1024;

struct GeneratedLake {
    _dir: tempfile::TempDir,
    path: PathBuf,
    lines: u64,
}

/// The generator's `order_details` written as `bronze/order_details`.
fn generated_lake() -> GeneratedLake {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let lake = lake_table::Lake::open(path.to_str().unwrap()).unwrap();
    let northwind =
        lake_northwind::generate(SCALE, lake_core::config::DEFAULT_GENERATOR_SEED).unwrap();
    let lines = northwind.table("order_details").unwrap().height() as u64;
    let date = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
    let mut lines_frame = northwind.table("order_details").unwrap().clone();
    let table = lake_table::TableRef::new(lake_table::Layer::Bronze, "order_details");
    let mut writer = lake_table::DateWriter::new(&lake, table, date, "run-runaway-test").unwrap();
    writer.write_frame(&mut lines_frame).unwrap();
    writer.replace().unwrap();
    GeneratedLake {
        _dir: dir,
        path,
        lines,
    }
}

/// The server, killed when dropped (a failing test leaves nothing running).
struct Server {
    child: Child,
    pid: u32,
    base: String,
    client: reqwest::blocking::Client,
}

impl Server {
    fn start(lake: &Path, args: &[&str]) -> Server {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -v {ADDRESS_SPACE_KIB} && exec \"$0\" \"$@\""
            ))
            .arg(BIN)
            .args(["--addr", "127.0.0.1:0", "--lake"])
            .arg(lake)
            .args(args)
            .env_remove("LAKE_API_KEYS")
            .env_remove("LAKE_API_KEY_FILE")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
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
        let server = Server {
            child,
            pid,
            base: format!("http://{addr}"),
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
        };
        // `exec` kept the process: what is measured below is the server.
        assert_eq!(server.proc_file("comm").trim(), "lake-serve");
        server
    }

    fn proc_file(&self, name: &str) -> String {
        std::fs::read_to_string(format!("/proc/{}/{name}", self.pid))
            .unwrap_or_else(|err| panic!("/proc/{}/{name}: {err} (has the server died?)", self.pid))
    }

    /// A `/proc/PID/status` figure in bytes (`VmRSS`, `VmHWM`, ...).
    fn memory(&self, field: &str) -> u64 {
        let status = self.proc_file("status");
        status
            .lines()
            .find(|l| l.starts_with(&format!("{field}:")))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {field} in {status}"))
            * 1024
    }

    /// User + system CPU time, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat = self.proc_file("stat");
        // After the command name in parentheses: state is field 3, utime
        // and stime fields 14 and 15.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }

    /// Status, `Retry-After` and JSON body of a query.
    fn sql(&self, query: &str) -> (u16, Option<String>, Value) {
        let response = self
            .client
            .post(format!("{}/api/sql", self.base))
            .json(&json!({ "query": query }))
            .send()
            .unwrap();
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        let text = response.text().unwrap();
        let body =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: not JSON: {text:?}"));
        (status, retry_after, body)
    }

    /// A sample of `/metrics`, by the start of its line.
    fn metric(&self, line_start: &str) -> f64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .unwrap()
            .text()
            .unwrap();
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {line_start} in\n{text}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100)
}

/// Polls `check` every 20 ms until it holds, failing past `limit`.
fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the server's CPU time grows by at most 50 ms over 300 ms:
/// no query works any more.
fn cpu_settles(server: &Server, limit: Duration) {
    let ticks = clock_ticks_per_second();
    let mut window = (Instant::now(), server.cpu_ticks());
    eventually("the server's CPU time to stop growing", limit, || {
        let now = (Instant::now(), server.cpu_ticks());
        if now.0 - window.0 < Duration::from_millis(300) {
            return false;
        }
        let grew = (now.1 - window.1) * 1000 / ticks;
        window = now;
        grew <= 50
    });
}

/// The warm-up: the table read once (into the frame cache), the answer
/// checked.
/// After stopped queries: none is running, `stopped` of them were stopped
/// for `reason`, the CPU time stands still, and the resident memory comes
/// back to within 256 MiB of `rss_before`. Returns the peak and the
/// resident memory then.
fn stopped_and_given_back(
    server: &Server,
    reason: &str,
    stopped: f64,
    rss_before: u64,
) -> (u64, u64) {
    eventually("no query running", Duration::from_secs(5), || {
        server.metric("lake_serve_sql_queries_running ") == 0.0
    });
    assert_eq!(
        server.metric(&format!(
            "lake_serve_sql_queries_stopped_total{{reason=\"{reason}\"}} "
        )),
        stopped
    );
    cpu_settles(server, Duration::from_secs(10));
    let peak = server.memory("VmHWM");
    let mut rss_after = 0;
    eventually(
        "the resident memory to come back",
        Duration::from_secs(5),
        || {
            rss_after = server.memory("VmRSS");
            rss_after <= rss_before + 256 * MIB
        },
    );
    (peak, rss_after)
}

fn warm_up(server: &Server, lake: &GeneratedLake) {
    let (status, _, body) = server.sql(SMALL);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"][0]["n"], lake.lines);
}

#[test]
fn a_query_past_its_time_limit_is_stopped_and_frees_its_slot_and_memory() {
    let lake = generated_lake();
    assert!(lake.lines > 50_000, "{} lines", lake.lines);
    let server = Server::start(&lake.path, &["--sql-timeout", "1"]);
    warm_up(&server, &lake);
    let rss_before = server.memory("VmRSS");
    let cpu_before = server.cpu_ticks();

    // Two at once: both slots.
    let runaways: Vec<_> = (0..2)
        .map(|_| {
            let client = server.client.clone();
            let url = format!("{}/api/sql", server.base);
            std::thread::spawn(move || {
                let sent = Instant::now();
                let response = client
                    .post(url)
                    .json(&json!({ "query": SUMMED }))
                    .send()
                    .unwrap();
                let status = response.status().as_u16();
                let body: Value = response.json().unwrap();
                (status, body, sent.elapsed(), Instant::now())
            })
        })
        .collect();
    let mut answered = Vec::new();
    for runaway in runaways {
        let (status, body, took, at) = runaway.join().unwrap();
        assert_eq!(status, 408, "{body}");
        assert_eq!(body["status"], 408);
        let message = body["error"].as_str().unwrap();
        assert!(message.contains("time limit of 1 s"), "{message}");
        // At the limit, not when the work would have ended.
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(3),
            "answered after {took:?}"
        );
        answered.push(at);
    }
    let last_408 = answered.into_iter().max().unwrap();
    let ticks = clock_ticks_per_second();
    let worked_ms = (server.cpu_ticks() - cpu_before) * 1000 / ticks;
    // The server did work on them (it was not idle waiting).
    assert!(worked_ms >= 500, "{worked_ms} ms of CPU");

    // Another client is served within a second of the 408s: both slots
    // came back.
    let mut refusals = 0;
    loop {
        let (status, retry_after, body) = server.sql(SMALL);
        if status == 200 {
            assert_eq!(body["rows"][0]["n"], lake.lines);
            break;
        }
        assert_eq!(status, 429, "{body}");
        assert_eq!(retry_after.as_deref(), Some("1"), "{body}");
        refusals += 1;
        assert!(
            last_408.elapsed() < Duration::from_secs(1),
            "still refused {:?} after the 408s ({refusals} refusals)",
            last_408.elapsed()
        );
    }
    let served_after = last_408.elapsed();

    // The work stopped (no query running, the CPU time stands still) and,
    // the cross join never materialized, what the queries took is given
    // back.
    let (peak, rss_after) = stopped_and_given_back(&server, "time_limit", 2.0, rss_before);
    eprintln!(
        "time limit: RSS before {} MiB, peak {} MiB, after {} MiB; {worked_ms} ms of CPU in \
         the queries; another client served {served_after:?} after the 408s ({refusals} 429s)",
        rss_before / MIB,
        peak / MIB,
        rss_after / MIB
    );
    assert!(peak <= rss_before + 1024 * MIB, "peak {} MiB", peak / MIB);
}

#[test]
fn a_query_past_its_memory_budget_is_stopped_and_its_memory_freed() {
    let lake = generated_lake();
    let server = Server::start(
        &lake.path,
        &["--sql-timeout", "120", "--sql-memory-mb", "64"],
    );
    warm_up(&server, &lake);
    let rss_before = server.memory("VmRSS");
    let sent = Instant::now();
    let (status, _, body) = server.sql(GROUPED);
    let took = sent.elapsed();
    assert_eq!(status, 422, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("needed more than 64 MiB of memory"),
        "{message}"
    );
    let (peak, rss_after) = stopped_and_given_back(&server, "memory_limit", 1.0, rss_before);
    eprintln!(
        "memory budget: stopped after {took:?}; RSS before {} MiB, peak {} MiB, after {} MiB",
        rss_before / MIB,
        peak / MIB,
        rss_after / MIB
    );
    // The budget plus what runs between two looks and a stop point.
    assert!(peak <= rss_before + 512 * MIB, "peak {} MiB", peak / MIB);
    // Still serving.
    let (status, _, body) = server.sql(SMALL);
    assert_eq!(status, 200, "{body}");
}
