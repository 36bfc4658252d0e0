//! What `lake-bronze` says when something is off: a date not written
//! `YYYY-MM-DD`, a run manifest that cannot be saved beside a failed step,
//! S3 without credentials, and the log of a first run (tables created,
//! nothing wrong: no ERROR, no colour codes when stderr is not a terminal).

use std::path::Path;
use std::process::{Command, Output};

use lake_testkit::free_port;

fn bronze(lake: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lake-bronze"));
    command
        .args(["--lake", lake])
        .args(args)
        .env_remove("LAKE_PG_URL")
        .env_remove("LAKE_DATE")
        .env_remove("LAKE_FAULT")
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

fn last_line(output: &Output) -> String {
    stderr(output)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_date_not_written_yyyy_mm_dd_is_refused() {
    let lake = tempfile::tempdir().unwrap();
    let path = lake.path().to_str().unwrap();
    for date in [
        "26-1-1",
        "0000-01-01",
        "2026-1-1",
        "0999-12-31",
        "+2026-01-01",
    ] {
        let output = bronze(path, &["--date", date, "--tables", "categories"], &[]);
        // clap's usage error: the value and what is expected.
        assert_eq!(output.status.code(), Some(2), "{date}: {}", stderr(&output));
        let text = stderr(&output);
        assert!(
            text.contains(&format!("invalid date {date:?}: expected YYYY-MM-DD")),
            "{date}: {text}"
        );
        // The same through the environment.
        let output = bronze(path, &["--tables", "categories"], &[("LAKE_DATE", date)]);
        assert_eq!(output.status.code(), Some(2), "{date}: {}", stderr(&output));
    }
    // Nothing was written, no partition such as 0026-01-01 in particular.
    assert!(!lake.path().join("bronze").exists());
    assert!(!lake.path().join("_runs").exists());
}

#[test]
fn the_failed_step_is_the_error_when_the_manifest_cannot_be_saved_either() {
    let lake = tempfile::tempdir().unwrap();
    // `_runs` is a file: the run manifest cannot be written under it.
    std::fs::write(lake.path().join("_runs"), b"not a folder").unwrap();
    let url = format!(
        "postgresql://lake@127.0.0.1:{}/northwind?sslmode=disable",
        free_port()
    );
    let output = bronze(
        lake.path().to_str().unwrap(),
        &["--date", "2026-11-26", "--tables", "orders"],
        &[("LAKE_PG_URL", &url)],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let last = last_line(&output);
    assert!(
        last.starts_with("lake-bronze: error: step bronze/orders failed: ")
            && last.contains("cannot connect to PostgreSQL"),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains("warning: the run manifest _runs/"),
        "{}",
        stderr(&output)
    );
}

/// `lake-bronze` on an S3 lake with no credentials in the environment.
fn bronze_without_credentials(extra: &[(&str, &str)]) -> Output {
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let mut command = Command::new(env!("CARGO_BIN_EXE_lake-bronze"));
    command
        .args(["--lake", "s3://lake-no-credentials", "--date", "2026-11-26"])
        .args(["--tables", "categories"])
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("LAKE_S3_MAX_RETRIES", "1")
        .env("LAKE_S3_RETRY_TIMEOUT", "5");
    for name in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_EC2_METADATA_DISABLED",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        "LAKE_PG_URL",
        "LAKE_FAULT",
        "RUST_LOG",
    ] {
        command.env_remove(name);
    }
    for (name, value) in extra {
        command.env(name, value);
    }
    command.output().unwrap()
}

fn assert_says_no_credentials(output: &Output, looked_at: &str) {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let last = last_line(output);
    assert!(
        last.contains("no S3 credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
            && last.contains(looked_at)
            && last.contains("AWS profiles and ~/.aws/credentials are not read"),
        "{text}"
    );
    assert!(!text.contains("169.254"), "{text}");
    // Missing credentials do not come back on a retry.
    assert!(!text.contains("retry bronze/categories"), "{text}");
}

#[test]
fn s3_without_credentials_says_where_they_are_looked_for() {
    // The instance metadata service not to be asked.
    let output = bronze_without_credentials(&[("AWS_EC2_METADATA_DISABLED", "true")]);
    assert_says_no_credentials(
        &output,
        "not looked for since AWS_EC2_METADATA_DISABLED is set",
    );
    // Asked, and no service answers (a port where nothing listens stands
    // for the machine that is not an EC2 instance).
    let metadata = format!("http://127.0.0.1:{}", free_port());
    let output =
        bronze_without_credentials(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT", metadata.as_str())]);
    assert_says_no_credentials(&output, "the instance metadata service gave none");
}

#[test]
fn creating_tables_logs_no_error_and_no_colour_when_stderr_is_not_a_terminal() {
    let lake = tempfile::tempdir().unwrap();
    // A first run creates each table. Their log folders exist, empty (as
    // on S3, where a prefix is never missing): delta-rs is asked for
    // their log and finds none ("No files in log segment").
    for table in ["categories", "products"] {
        std::fs::create_dir_all(lake.path().join("bronze").join(table).join("_delta_log")).unwrap();
    }
    let output = bronze(
        lake.path().to_str().unwrap(),
        &["--date", "2026-11-26", "--tables", "categories,products"],
        &[],
    );
    let text = stderr(&output);
    assert!(output.status.success(), "{text}");
    assert!(!text.contains('\u{1b}'), "colour codes on a pipe: {text:?}");
    assert!(!text.contains("ERROR"), "{text}");
    assert!(!text.contains("No files in log segment"), "{text}");
    assert!(Path::new(&lake.path().join("bronze/products/_delta_log")).exists());
}
