//! `lake-bronze` on bad input: a one-line error naming what is wrong, a
//! non-zero exit, never a password, and no version committed.

use std::path::Path;
use std::process::Command;

use lake_testkit::{TestDb, free_port, pg_server};

const DATE: &str = "2026-11-26";

struct Outcome {
    success: bool,
    stderr: String,
}

fn bronze(lake: &Path, pg: &str, tables: &str) -> Outcome {
    let output = Command::new(env!("CARGO_BIN_EXE_lake-bronze"))
        .args([
            "--lake",
            lake.to_str().unwrap(),
            "--date",
            DATE,
            "--tables",
            tables,
        ])
        .env("LAKE_PG_URL", pg)
        .env_remove("LAKE_FAULT")
        .output()
        .unwrap();
    Outcome {
        success: output.status.success(),
        stderr: String::from_utf8_lossy(&output.stderr).to_string(),
    }
}

/// The error line the binary ends with.
fn error_line(outcome: &Outcome) -> &str {
    assert!(
        !outcome.success,
        "the run should have failed:\n{}",
        outcome.stderr
    );
    let last = outcome.stderr.lines().last().unwrap_or("");
    assert!(
        last.starts_with("lake-bronze: error: "),
        "{}",
        outcome.stderr
    );
    last
}

/// True when the table has a commit (a `_delta_log` entry).
fn committed(lake: &Path, table: &str) -> bool {
    lake.join("bronze")
        .join(table)
        .join("_delta_log/00000000000000000000.json")
        .exists()
}

/// The table's log entries.
fn log_entries(lake: &Path, table: &str) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(lake.join("bronze").join(table).join("_delta_log"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
    names.sort();
    names
}

fn with_password(db: &TestDb, password: &str) -> String {
    db.url
        .replace(lake_testkit::postgres_server::TEST_PASSWORD, password)
}

#[test]
fn unreachable_server() {
    let lake = tempfile::tempdir().unwrap();
    let url = format!(
        "postgresql://lake:hunter2@127.0.0.1:{}/northwind",
        free_port()
    );
    let outcome = bronze(lake.path(), &url, "orders");
    let line = error_line(&outcome);
    assert!(
        line.contains("cannot connect to PostgreSQL at postgresql://lake:***@127.0.0.1:"),
        "{line}"
    );
    assert!(
        outcome.stderr.contains("retry bronze/orders"),
        "transient errors are retried"
    );
    assert!(!outcome.stderr.contains("hunter2"));
    assert!(!committed(lake.path(), "orders"));
}

#[test]
fn wrong_password() {
    let db = pg_server().create_db("lake_cli");
    let lake = tempfile::tempdir().unwrap();
    let outcome = bronze(
        lake.path(),
        &with_password(&db, "not-the-password"),
        "orders",
    );
    let line = error_line(&outcome);
    assert!(line.contains("password authentication failed"), "{line}");
    assert!(!outcome.stderr.contains("not-the-password"));
    assert!(
        !outcome.stderr.contains("retry"),
        "a refused password is not retried"
    );
}

#[test]
fn missing_table() {
    let db = pg_server().create_db("lake_cli");
    let lake = tempfile::tempdir().unwrap();
    let outcome = bronze(lake.path(), &db.url, "orders");
    let line = error_line(&outcome);
    assert!(
        line.contains("table public.orders does not exist"),
        "{line}"
    );
    assert!(!committed(lake.path(), "orders"));
}

#[test]
fn unexpected_column_type_leaves_the_previous_version_intact() {
    let db = pg_server().create_db("lake_cli");
    let mut client = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    client
        .batch_execute("CREATE TABLE categories (category_id smallint, category_name varchar(15)); INSERT INTO categories VALUES (1, 'Beverages')")
        .unwrap();
    let lake = tempfile::tempdir().unwrap();
    let ok = bronze(lake.path(), &db.url, "categories");
    assert!(ok.success, "{}", ok.stderr);
    let before = log_entries(lake.path(), "categories");
    assert_eq!(before, ["00000000000000000000.json"]);

    client
        .batch_execute("ALTER TABLE categories ADD COLUMN location point")
        .unwrap();
    let outcome = bronze(lake.path(), &db.url, "categories");
    let line = error_line(&outcome);
    assert!(
        line.contains("public.categories.location has type point, which the lake cannot map"),
        "{line}"
    );
    assert_eq!(
        log_entries(lake.path(), "categories"),
        before,
        "no new version may be committed"
    );
}
