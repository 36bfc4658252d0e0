//! kill -9 of `lake-silver` between its data files and its log commit: the
//! table stays at its previous version, and the next run commits cleanly.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use lake_core::config::SourceArgs;
use lake_core::dag::{RunOptions, run_steps};
use lake_table::{Lake, Layer, Table, TableRef};

fn date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 26).unwrap()
}

fn silver_command(lake: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lake-silver"));
    command
        .args(["--date", "2026-11-26", "--lake"])
        .arg(lake)
        .env_remove("LAKE_FAULT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

fn version(lake: &Lake, table: &str) -> Option<i64> {
    Table::open(lake, TableRef::new(Layer::Silver, table))
        .unwrap()
        .latest()
        .unwrap()
        .map(|s| s.version())
}

/// Data files under the table's folder for the date (committed or not).
fn files_on_disk(lake: &Lake, table: &str) -> usize {
    lake.list(Layer::Silver, &format!("{table}/2026-11-26"))
        .unwrap()
        .iter()
        .filter(|o| o.key.ends_with(".parquet"))
        .count()
}

#[test]
fn kill_9_before_the_log_commit_leaves_the_previous_version() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    let source = lake_bronze::BatchSource::from_args(&SourceArgs {
        pg: None,
        generator: lake_core::config::GeneratorArgs { scale: 5, seed: 7 },
    })
    .unwrap();
    let steps = lake_bronze::steps(
        &lake,
        Arc::new(source),
        date(),
        "bronze",
        &lake_bronze::TABLES.map(String::from),
        Default::default(),
    );
    let options = RunOptions {
        progress: false,
        ..RunOptions::default()
    };
    run_steps(&lake, "bronze", date(), "generator", steps, &options)
        .unwrap()
        .into_result()
        .unwrap();

    let first = silver_command(dir.path()).output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(version(&lake, "sales_master"), Some(0));
    let committed_files = files_on_disk(&lake, "sales_master");

    // The second run stops for good right before sales_master's commit.
    let marker = dir.path().join("hanging");
    let mut child = silver_command(dir.path())
        .env("LAKE_FAULT", "hang:before_commit@silver/sales_master")
        .env("LAKE_FAULT_MARKER", &marker)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !marker.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "lake-silver exited before reaching the commit"
        );
        assert!(
            Instant::now() < deadline,
            "lake-silver never reached the commit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The kill lands between the data files and the commit: the new files
    // are on disk, the log has not moved.
    assert!(files_on_disk(&lake, "sales_master") > committed_files);
    assert_eq!(version(&lake, "sales_master"), Some(0));
    // SAFETY: the child's pid, which is still running (checked above).
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGKILL) }, 0);
    let status = child.wait().unwrap();
    assert!(!status.success());

    assert_eq!(version(&lake, "sales_master"), Some(0));
    let rows = |lake: &Lake| {
        lake_table::read_date(lake, &TableRef::new(Layer::Silver, "sales_master"), date())
            .unwrap()
            .unwrap()
            .height()
    };
    let before = rows(&lake);

    let third = silver_command(dir.path()).output().unwrap();
    assert!(
        third.status.success(),
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
    assert_eq!(version(&lake, "sales_master"), Some(1));
    assert_eq!(rows(&lake), before, "the same bronze gives the same silver");
}
