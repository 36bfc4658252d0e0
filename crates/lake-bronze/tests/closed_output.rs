//! A layer binary whose output is closed early (`lake-bronze ... 2>&1 |
//! head -3`) neither hangs nor crashes: writes to the broken pipe are
//! dropped, every step still reports back to the runner, and the process
//! ends with the exit code of its run.

use std::io::{BufRead, BufReader, PipeReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use lake_testkit::free_port;

/// `lake-bronze` over `lake` with stdout and stderr both on one pipe, as
/// `2>&1 |` makes them; the read end is returned.
fn spawn_bronze(lake: &Path, pg: Option<&str>) -> (Child, PipeReader) {
    let (reader, writer) = std::io::pipe().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_lake-bronze"));
    command
        .args(["--lake", lake.to_str().unwrap(), "--date", "2026-11-26"])
        .env_remove("LAKE_PG_URL")
        .env_remove("LAKE_FAULT")
        .env_remove("RUST_LOG")
        .stdout(writer.try_clone().unwrap())
        .stderr(writer);
    if let Some(pg) = pg {
        command.env("LAKE_PG_URL", pg).args(["--tables", "orders"]);
    }
    let child = command.spawn().unwrap();
    // The command's copies of the write end close with it.
    drop(command);
    (child, reader)
}

/// The child's exit status, or a failure (after killing it) if it has not
/// exited within `limit`.
fn exit_within(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("lake-bronze still ran {limit:?} after its output was closed: it hangs");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn committed(lake: &Path, table: &str) -> bool {
    lake.join("bronze")
        .join(table)
        .join("_delta_log/00000000000000000000.json")
        .exists()
}

#[test]
fn a_run_whose_output_is_closed_at_once_succeeds() {
    let lake = tempfile::tempdir().unwrap();
    let (mut child, reader) = spawn_bronze(lake.path(), None);
    drop(reader);
    let status = exit_within(&mut child, Duration::from_secs(180));
    assert_eq!(status.code(), Some(0), "{status}");
    for table in lake_bronze::TABLES {
        assert!(committed(lake.path(), table), "{table} not committed");
    }
    assert_eq!(
        std::fs::read_dir(lake.path().join("_runs"))
            .unwrap()
            .count(),
        1
    );
}

#[test]
fn a_run_whose_reader_stops_after_a_line_succeeds() {
    let lake = tempfile::tempdir().unwrap();
    let (mut child, reader) = spawn_bronze(lake.path(), None);
    // `| head -1`: one line read, then the pipe closed.
    let mut first = String::new();
    BufReader::new(reader).read_line(&mut first).unwrap();
    assert!(first.contains("bronze/"), "{first:?}");
    let status = exit_within(&mut child, Duration::from_secs(180));
    assert_eq!(status.code(), Some(0), "{status}");
    for table in lake_bronze::TABLES {
        assert!(committed(lake.path(), table), "{table} not committed");
    }
}

#[test]
fn a_failing_run_whose_output_is_closed_exits_with_its_failure() {
    let lake = tempfile::tempdir().unwrap();
    // Nothing listens there: the step fails after its retries.
    let url = format!(
        "postgresql://lake@127.0.0.1:{}/northwind?sslmode=disable",
        free_port()
    );
    let (mut child, reader) = spawn_bronze(lake.path(), Some(&url));
    drop(reader);
    let status = exit_within(&mut child, Duration::from_secs(120));
    // 1 is the run's failure; a panic would exit with 101.
    assert_eq!(status.code(), Some(1), "{status}");
    assert!(!committed(lake.path(), "orders"));
}
