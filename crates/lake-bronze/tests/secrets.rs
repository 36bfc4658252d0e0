//! A PostgreSQL credential, in whatever part of the URL it is given
//! (user info, `?password=`, `sslpassword`, `passfile`, `sslkey`, a
//! percent-encoded name, `options`, libpq's key=value form), reaches none
//! of `lake-bronze`'s outputs: its stderr, the run manifest under `_runs/`
//! (what `GET /api/runs` serves, see `tests/secrets.rs` of the workspace)
//! and the `_source` column of bronze.

use std::path::Path;
use std::process::Command;

use lake_table::{Lake, Layer, TableRef};
use lake_testkit::{free_port, pg_server};

const DATE: &str = "2026-11-26";

struct Run {
    success: bool,
    stderr: String,
    /// Every run manifest the lake holds, as written.
    manifests: String,
}

fn bronze(lake: &Path, pg: &str, tables: &str) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_lake-bronze"))
        .args(["--lake", lake.to_str().unwrap(), "--date", DATE])
        .args(["--tables", tables])
        .env("LAKE_PG_URL", pg)
        .env_remove("LAKE_FAULT")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let mut manifests = String::new();
    if let Ok(entries) = std::fs::read_dir(lake.join("_runs")) {
        for entry in entries {
            manifests.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
        }
    }
    Run {
        success: output.status.success(),
        stderr: String::from_utf8_lossy(&output.stderr).to_string(),
        manifests,
    }
}

/// Nothing the run wrote holds `secret`.
fn assert_hidden(run: &Run, secret: &str, url: &str) {
    assert!(
        !run.stderr.contains(secret),
        "{url}: stderr shows {secret}:\n{}",
        run.stderr
    );
    assert!(
        !run.manifests.contains(secret),
        "{url}: the run manifest shows {secret}:\n{}",
        run.manifests
    );
}

#[test]
fn no_credential_in_a_url_reaches_stderr_or_the_run_manifest() {
    let port = free_port();
    let base = format!("postgresql://lake:pw-userinfo@127.0.0.1:{port}/northwind");
    // Accepted forms: the run fails connecting (nothing listens), and its
    // manifest records the step's error with the URL masked.
    for (url, secret) in [
        (
            format!(
                "postgresql://lake@127.0.0.1:{port}/northwind?password=pw-query&sslmode=disable"
            ),
            "pw-query",
        ),
        (
            format!("{base}?sslmode=disable&application_name=bronze-test"),
            "pw-userinfo",
        ),
        (
            format!(
                "postgresql://lake@127.0.0.1:{port}/northwind?pass%77ord=pw-encoded&sslmode=disable"
            ),
            "pw-encoded",
        ),
        (
            format!("{base}?options=-c%20x%3Dpw-options&sslmode=disable"),
            "pw-options",
        ),
    ] {
        let lake = tempfile::tempdir().unwrap();
        let run = bronze(lake.path(), &url, "orders");
        assert!(!run.success, "{url}: {}", run.stderr);
        assert_hidden(&run, secret, &url);
        let last = run.stderr.lines().last().unwrap_or_default();
        assert!(
            last.contains("cannot connect to PostgreSQL at postgresql://lake")
                && last.contains("sslmode=disable"),
            "{url}: {last}"
        );
        assert!(
            run.manifests
                .contains("cannot connect to PostgreSQL at postgresql://lake"),
            "{url}: {}",
            run.manifests
        );
        assert!(run.manifests.contains("***"), "{url}: {}", run.manifests);
    }
    // Forms the client refuses (options it does not know, libpq's
    // key=value string) fail before any run, naming them masked.
    for (url, secret) in [
        (
            format!("{base}?sslpassword=pw-sslpassword"),
            "pw-sslpassword",
        ),
        (format!("{base}?passfile=/home/pw-passfile"), "pw-passfile"),
        (format!("{base}?sslkey=/keys/pw-sslkey.pem"), "pw-sslkey"),
        (
            format!("host=127.0.0.1 port={port} user=lake password=pw-keyvalue"),
            "pw-keyvalue",
        ),
    ] {
        let lake = tempfile::tempdir().unwrap();
        let run = bronze(lake.path(), &url, "orders");
        assert!(!run.success, "{url}: {}", run.stderr);
        assert_hidden(&run, secret, &url);
        let last = run.stderr.lines().last().unwrap_or_default();
        assert!(last.contains("invalid PostgreSQL URL"), "{url}: {last}");
    }
}

/// `postgresql://user:password@host:port/db` split into the URL without
/// the password and the password.
fn without_password(url: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (userinfo, location) = rest.split_once('@').unwrap();
    let (user, password) = userinfo.split_once(':').unwrap();
    (
        format!("{scheme}://{user}@{location}"),
        password.to_string(),
    )
}

#[test]
fn a_password_given_as_a_parameter_stays_out_of_source_and_the_manifest() {
    let db = pg_server().create_db("lake_secrets");
    let mut client = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    client
        .batch_execute(
            "CREATE TABLE categories (category_id smallint, category_name varchar(15)); \
             INSERT INTO categories VALUES (1, 'Beverages'), (2, 'Condiments')",
        )
        .unwrap();
    let (bare, password) = without_password(&db.url);

    // A password the server refuses: the error is the server's, masked.
    let lake = tempfile::tempdir().unwrap();
    let wrong = format!("{bare}?password=pw-refused&application_name=lake-secrets");
    let run = bronze(lake.path(), &wrong, "categories");
    assert!(!run.success, "{}", run.stderr);
    assert_hidden(&run, "pw-refused", &wrong);
    assert!(
        run.stderr.contains("password authentication failed"),
        "{}",
        run.stderr
    );

    // The right one: the copy succeeds and no output holds it.
    let lake = tempfile::tempdir().unwrap();
    let url = format!("{bare}?password={password}&application_name=lake-secrets");
    let run = bronze(lake.path(), &url, "categories");
    assert!(run.success, "{}", run.stderr);
    assert_hidden(&run, &password, &url);
    let opened = Lake::open(lake.path().to_str().unwrap()).unwrap();
    let date = chrono::NaiveDate::parse_from_str(DATE, "%Y-%m-%d").unwrap();
    let frame = lake_table::read_date(&opened, &TableRef::new(Layer::Bronze, "categories"), date)
        .unwrap()
        .expect("bronze/categories holds the date");
    let column = frame.column("_source").unwrap().str().unwrap();
    let sources: Vec<String> = (0..column.len())
        .map(|row| column.get(row).unwrap_or_default().to_string())
        .collect();
    assert_eq!(sources.len(), 2);
    for source in &sources {
        assert!(source.starts_with("postgresql://"), "{source}");
        assert!(
            !source.contains(&password) && !source.contains('?') && !source.contains('@'),
            "{source}"
        );
    }
}
