//! `cargo xtask lake ...` (the `lake-tasks` binary) answering the
//! mistakes that used to pass silently: a time before a table existed, a
//! version past the latest, a vacuum shorter than the table's retention
//! (and reading what it deleted), a lake or table name that does not exist.

use std::path::Path;
use std::process::{Command, Output};

use chrono::{NaiveDate, Utc};
use lake_table::{At, DateWriter, Lake, Layer, Table, TableRef};
use polars::prelude::*;

fn replace(lake: &Lake, table: &str, run: &str, x: i64) {
    let date = NaiveDate::from_ymd_opt(2026, 2, 3).unwrap();
    let mut writer = DateWriter::new(lake, TableRef::new(Layer::Silver, table), date, run).unwrap();
    writer.write_frame(&mut df!("x" => [x]).unwrap()).unwrap();
    writer.replace().unwrap();
}

fn lake_tasks(lake: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lake-tasks"))
        .arg("lake")
        .args(args)
        .args(["--lake", lake.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

#[test]
fn a_time_before_a_table_existed_is_not_its_first_version() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    for (run, x) in [("r1", 1), ("r2", 2), ("r3", 3), ("r4", 4)] {
        replace(&lake, "early", run, x);
    }
    let first = Table::open(&lake, TableRef::new(Layer::Silver, "early"))
        .unwrap()
        .at(At::Version(0))
        .unwrap()
        .committed_at()
        .unwrap();
    // `late` is created after `early`'s first commit (commit times are in
    // milliseconds: wait for the clock to pass it, no fixed sleep).
    while Utc::now() <= first + chrono::Duration::milliseconds(2) {
        std::thread::yield_now();
    }
    replace(&lake, "late", "r1", 9);

    // Before every table: each listed as not yet created, with its first
    // commit, not as version 0; the listing itself succeeds.
    let output = lake_tasks(
        dir.path(),
        &["ls", "silver", "--as-of", "2020-01-01T00:00:00Z"],
    );
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    assert!(
        stdout.contains("  early  not yet created (first commit "),
        "{stdout}"
    );
    assert!(
        stdout.contains("  late  not yet created (first commit "),
        "{stdout}"
    );
    assert!(!stdout.contains(" v0"), "{stdout}");

    // At early's first commit: early at v0, late not there yet.
    let at = first.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let output = lake_tasks(dir.path(), &["ls", "silver", "--as-of", &at]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("  early  v0  committed "), "{stdout}");
    assert!(
        stdout.contains("  late  not yet created (first commit "),
        "{stdout}"
    );

    // show: an error naming the table and its first commit's time.
    let output = lake_tasks(
        dir.path(),
        &["show", "silver/early", "--as-of", "2020-01-01T00:00:00Z"],
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stdout));
    assert!(
        stderr.contains("silver/early did not exist yet at 2020-01-01T00:00:00.000Z")
            && stderr.contains(&format!(
                "its first commit (version 0) was at {}",
                first.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            )),
        "{stderr}"
    );

    // A version past the latest names the versions there are.
    let output = lake_tasks(dir.path(), &["show", "silver/early", "--version", "99"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("silver/early has no version 99: versions 0-3"),
        "{stderr}"
    );
    assert!(!stderr.contains("LogSegment"), "{stderr}");
}

#[test]
fn a_short_vacuum_is_refused_and_a_vacuumed_version_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    replace(&lake, "orders", "r1", 1);
    replace(&lake, "orders", "r2", 2);
    let parquet_files = || {
        walk(&dir.path().join("silver/orders"))
            .into_iter()
            .filter(|p| p.ends_with(".parquet"))
            .count()
    };
    assert_eq!(parquet_files(), 2);

    // Shorter than the table's 7 days: refused, nothing deleted.
    let output = lake_tasks(dir.path(), &["vacuum", "silver/orders", "--retain", "0s"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "refusing to vacuum silver/orders with a retention of 0s shorter than the table's 7d"
        ) && stderr.contains("--allow-short-retention"),
        "{stderr}"
    );
    assert_eq!(parquet_files(), 2);

    // Asked for explicitly: version 0's file goes.
    let output = lake_tasks(
        dir.path(),
        &[
            "vacuum",
            "silver/orders",
            "--retain",
            "0s",
            "--allow-short-retention",
        ],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("silver/orders: deleted 1 files"),
        "{}",
        text(&output.stdout)
    );
    assert_eq!(parquet_files(), 1);

    // Reading version 0 says its file was vacuumed, once, not Polars' error.
    let output = lake_tasks(dir.path(), &["show", "silver/orders", "--version", "0"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("silver/orders@v0: its data file 2026-02-03/")
            && stderr.contains("was deleted by vacuum"),
        "{stderr}"
    );
    assert!(!stderr.contains("No such file"), "{stderr}");
    // ls at version 0 marks it; the latest reads as before.
    let output = lake_tasks(dir.path(), &["ls", "silver", "--version", "0"]);
    let stdout = text(&output.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("  orders  v0"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        line.contains("UNREADABLE: data file 2026-02-03/") && line.contains("deleted by vacuum"),
        "{line}"
    );
    let output = lake_tasks(dir.path(), &["show", "silver/orders"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
}

#[test]
fn a_mistyped_lake_or_table_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/lake");
    for args in [
        &["ls"][..],
        &["history", "gold/kpi_summary"],
        &["show", "gold/kpi_summary"],
    ] {
        let output = lake_tasks(&missing, args);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "the lake {} does not exist",
                missing.to_str().unwrap()
            )),
            "{args:?}: {stderr}"
        );
        assert!(!missing.exists(), "{args:?} created the lake");
    }

    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    replace(&lake, "orders", "r1", 1);
    let output = lake_tasks(dir.path(), &["history", "gold/nope"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stdout));
    assert!(
        stderr.contains("gold/nope is not a table of the lake")
            && stderr.contains("its tables: silver/orders"),
        "{stderr}"
    );
    let output = lake_tasks(dir.path(), &["history", "silver/orders"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
}

/// Every file under `dir`, as paths.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path.to_string_lossy().to_string());
        }
    }
    out
}

/// `seed` on a database that already holds some of the six tables: refused,
/// naming them and the flag, the tables untouched; `--replace` replaces them.
#[test]
fn seed_refuses_to_drop_tables_it_finds_unless_asked() {
    let db = lake_testkit::pg_server().create_db("lake_seed_refusal");
    let mut client = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    client
        .batch_execute(
            "CREATE TABLE customers (mine text); INSERT INTO customers VALUES ('keep me');
             CREATE TABLE orders (mine text);",
        )
        .unwrap();
    let seed = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_lake-tasks"))
            .args(["seed", "--pg", &db.url, "--scale", "1"])
            .args(extra)
            .env_remove("LAKE_PG_URL")
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    let output = seed(&[]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stdout));
    assert!(
        stderr.contains("already holds customers, orders") && stderr.contains("--replace"),
        "{stderr}"
    );
    let mine: String = client
        .query_one("SELECT mine FROM customers", &[])
        .unwrap()
        .get(0);
    assert_eq!(mine, "keep me");

    let output = seed(&["--replace"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let customers: i64 = client
        .query_one("SELECT count(*) FROM customers", &[])
        .unwrap()
        .get(0);
    assert!(customers > 0);
}
