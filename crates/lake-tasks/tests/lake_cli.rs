//! `cargo xtask lake ...` (the `lake-tasks` binary) over a lake with one
//! table whose log is corrupt: `ls` lists the others and names the broken
//! entry, then fails; an error stays one line whatever `RUST_BACKTRACE`
//! says, its backtrace printed after it only when `RUST_LIB_BACKTRACE`
//! asks. And over the lake the pipeline writes from the built-in data:
//! every table matches its section of `docs/tables.md`, and `lake
//! describe` prints both.

use std::path::Path;
use std::process::{Command, Output};

use chrono::NaiveDate;
use lake_table::{DateWriter, Lake, Layer, Table, TableRef};
use lake_tasks::lake::reference;
use polars::prelude::*;

/// A lake with `silver/customers` and `silver/orders` at version 1 each,
/// the second log entry of `orders` overwritten with something not JSON.
fn lake_with_a_corrupt_log() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    let date = NaiveDate::from_ymd_opt(2026, 2, 3).unwrap();
    for table in ["customers", "orders"] {
        for run in ["r1", "r2"] {
            let mut writer =
                DateWriter::new(&lake, TableRef::new(Layer::Silver, table), date, run).unwrap();
            writer
                .write_frame(&mut df!("x" => [1i64, 2, 3]).unwrap())
                .unwrap();
            writer.replace().unwrap();
        }
    }
    let entry = dir
        .path()
        .join("silver/orders/_delta_log/00000000000000000001.json");
    assert!(entry.exists());
    std::fs::write(&entry, b"{\"commitInfo\": {\"truncated").unwrap();
    dir
}

fn lake_tasks(lake: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lake-tasks"));
    command
        .arg("lake")
        .args(args)
        .args(["--lake", lake.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

/// No line of `text` is a backtrace's frame or overlong.
fn assert_no_backtrace(text: &str) {
    for line in text.lines() {
        assert!(line.len() < 1000, "an overlong line: {line}");
        let trimmed = line.trim_start();
        assert!(
            !trimmed.starts_with("0: ") && !trimmed.starts_with("at "),
            "a backtrace: {text}"
        );
    }
}

#[test]
fn ls_lists_the_readable_tables_and_names_the_broken_log_entry() {
    let lake = lake_with_a_corrupt_log();
    let output = lake_tasks(lake.path(), &["ls", "silver"], &[("RUST_BACKTRACE", "1")]);
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    // Listed, then a failure so scripts notice.
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("  customers  v1  committed "), "{stdout}");
    assert!(
        stdout.contains("    2026-02-03             3 rows     1 files"),
        "{stdout}"
    );
    let broken = stdout
        .lines()
        .find(|line| line.starts_with("  orders  "))
        .unwrap_or_else(|| panic!("orders is not listed: {stdout}"));
    assert!(
        broken.starts_with("  orders  BROKEN  _delta_log/00000000000000000001.json line 1: "),
        "{broken}"
    );
    assert_eq!(
        stderr.lines().last(),
        Some("error: 1 table(s) could not be read: silver/orders"),
        "{stderr}"
    );
    assert_no_backtrace(&stdout);
    assert_no_backtrace(&stderr);
}

#[test]
fn an_error_is_one_line_and_its_backtrace_comes_after_only_when_asked() {
    let lake = lake_with_a_corrupt_log();
    let show = ["show", "silver/orders"];
    // RUST_BACKTRACE=1 (often set for panics): the error alone, on one line.
    let output = lake_tasks(lake.path(), &show, &[("RUST_BACKTRACE", "1")]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_no_backtrace(&stderr);

    // RUST_LIB_BACKTRACE=1 asks for error backtraces: the same line first,
    // then the backtrace on lines of its own.
    let output = lake_tasks(
        lake.path(),
        &show,
        &[("RUST_BACKTRACE", "1"), ("RUST_LIB_BACKTRACE", "1")],
    );
    let asked = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{asked}");
    let mut lines = asked.lines();
    assert_eq!(lines.next(), stderr.lines().next(), "{asked}");
    assert_eq!(lines.next(), Some("backtrace:"), "{asked}");
    assert!(lines.count() > 3, "{asked}");
}

/// The pipeline over the built-in generator and producer writes every
/// table, the stream's and its dead letters included; each one's Delta
/// schema is its section of the reference, column for column and type for
/// type, and each section names a table the lake holds: neither side can
/// change without the other.
#[test]
fn the_reference_describes_every_table_the_pipeline_writes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut pipeline = Command::new(env!("CARGO_BIN_EXE_lake-tasks"));
    pipeline
        .args(["pipeline", "--events", "500", "--lake"])
        .arg(dir.path());
    // The built-in sources whatever the environment configures.
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("LAKE_")) {
        pipeline.env_remove(name);
    }
    let output = pipeline.env_remove("RUST_LOG").output().unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );

    let lake = Lake::open_existing(dir.path().to_str().unwrap()).unwrap();
    let tables: Vec<String> = lake_tasks::lake::tables_or_all(&lake, None)
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    let sections = reference::sections().unwrap();
    let mut problems = Vec::new();
    for name in &tables {
        let table = TableRef::parse(name).unwrap();
        let snapshot = Table::open(&lake, table)
            .unwrap()
            .latest()
            .unwrap()
            .unwrap();
        let fields = snapshot.description().unwrap().fields;
        let Some(section) = sections.iter().find(|s| &s.table == name) else {
            problems.push(format!("{name}: no section in {}", reference::PATH));
            continue;
        };
        let differences = reference::differences(&fields, section);
        if !differences.is_empty() {
            problems.push(format!("{name}: {}", differences.join("; ")));
        }
    }
    for section in &sections {
        if !tables.contains(&section.table) {
            problems.push(format!(
                "{}: described in {}, not written by the pipeline",
                section.table,
                reference::PATH
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "the lake and {} differ:\n{}",
        reference::PATH,
        problems.join("\n")
    );

    // `lake describe` on a stream table: its columns, the short log
    // retention the stream's tables keep, and its prose.
    let output = lake_tasks(dir.path(), &["describe", "bronze/ventes_temps_reel"], &[]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(stdout.starts_with("bronze/ventes_temps_reel@v"), "{stdout}");
    for expected in [
        "  event_id ",
        "  _offset ",
        "partitioned by: run_date",
        "delta.logRetentionDuration = interval 2 days",
        "one row per event counted once",
        "the topic partition the event was read from",
    ] {
        assert!(stdout.contains(expected), "{expected:?} not in:\n{stdout}");
    }
    assert!(!stdout.contains("the log differs"), "{stdout}");
}
