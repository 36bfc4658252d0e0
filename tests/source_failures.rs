//! A source that fails mid-run commits nothing: the database dropping the
//! connection in the middle of a COPY, or a source table missing, leaves
//! every bronze table of the date as the previous run left it, and
//! silver and gold do not run on a partial copy.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lake_core::run::{Outcome, RunManifest};
use lake_table::{Lake, Layer};
use lake_tests::{connect, run, seeded, snapshot, test_date};

/// Versions of the six bronze tables and of silver and gold's main tables.
fn versions(lake: &Lake) -> Vec<(String, i64)> {
    let mut tables: Vec<(Layer, &str)> = lake_bronze::TABLES
        .iter()
        .map(|t| (Layer::Bronze, *t))
        .collect();
    tables.extend([
        (Layer::Silver, "sales_master"),
        (Layer::Silver, "_rejects/sales_master"),
        (Layer::Gold, "kpi_summary"),
    ]);
    tables
        .into_iter()
        .map(|(layer, table)| {
            (
                format!("{layer}/{table}"),
                snapshot(lake, layer, table).version(),
            )
        })
        .collect()
}

/// The newest run manifest: the failed run's.
fn failed_manifest(lake: &Lake) -> RunManifest {
    let manifest = RunManifest::recent(lake, 1).unwrap().remove(0);
    assert_eq!(manifest.outcome, Outcome::Failed);
    assert!(
        manifest.steps.iter().all(|s| s.writes.is_empty()),
        "a failed source read commits nothing: {:#?}",
        manifest.steps
    );
    manifest
}

#[test]
fn a_connection_killed_mid_copy_commits_nothing() {
    let db = seeded(200);
    let total: i64 = connect(&db)
        .query_one("SELECT count(*) FROM order_details", &[])
        .unwrap()
        .get(0);
    let dir = tempfile::tempdir().unwrap();
    let date = test_date();
    let first = run(dir.path(), Some(db.url.clone()), 1, date).unwrap();
    let before = versions(&first.lake);

    // The server side: as soon as a COPY of order_details has sent some
    // rows, and before it has sent them all, its backend is terminated;
    // every attempt's, so the runner's retries of the lost connection fail
    // the same way.
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let (url, stop) = (db.url.clone(), stop.clone());
        std::thread::spawn(move || -> Vec<i64> {
            let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            let mut kills = Vec::new();
            // A terminated backend stays in pg_stat_progress_copy until it
            // has exited: each is terminated once.
            let mut terminated = std::collections::HashSet::new();
            let deadline = Instant::now() + Duration::from_secs(300);
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                let copying = client
                    .query_opt(
                        "SELECT p.pid, p.tuples_processed FROM pg_stat_progress_copy p \
                         JOIN pg_class c ON c.oid = p.relid \
                         WHERE c.relname = 'order_details' AND p.datname = current_database()",
                        &[],
                    )
                    .unwrap();
                if let Some(row) = copying {
                    let (pid, sent): (i32, i64) = (row.get(0), row.get(1));
                    if sent >= 20_000 && terminated.insert(pid) {
                        let killed: bool = client
                            .query_one("SELECT pg_terminate_backend($1)", &[&pid])
                            .unwrap()
                            .get(0);
                        assert!(killed, "the COPY's backend {pid} could not be terminated");
                        kills.push(sent);
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            kills
        })
    };
    let err = run(dir.path(), Some(db.url.clone()), 1, date)
        .err()
        .expect("a run whose COPY was killed must fail");
    stop.store(true, Ordering::SeqCst);
    let kills = killer.join().unwrap();
    assert!(
        !kills.is_empty(),
        "the COPY of order_details was never seen running"
    );
    assert!(
        kills.iter().all(|sent| *sent < total),
        "every kill landed mid-COPY: rows sent at each {kills:?}, of {total}"
    );
    let message = format!("{err:#}");
    assert!(message.contains("order_details"), "{message}");

    assert_eq!(
        versions(&first.lake),
        before,
        "no table of the date moved: bronze keeps the previous copy, silver and gold did not run"
    );
    let manifest = failed_manifest(&first.lake);
    let copy = manifest.step("bronze/order_details").unwrap();
    assert_eq!(copy.outcome, Outcome::Failed);
    assert_eq!(
        manifest.step(lake_bronze::COMMIT_STEP).unwrap().outcome,
        Outcome::Skipped
    );
}

#[test]
fn a_missing_source_table_replaces_no_bronze_table() {
    let db = seeded(1);
    let dir = tempfile::tempdir().unwrap();
    let date = test_date();
    let first = run(dir.path(), Some(db.url.clone()), 1, date).unwrap();
    let before = versions(&first.lake);

    connect(&db).batch_execute("DROP TABLE employees").unwrap();
    let err = run(dir.path(), Some(db.url.clone()), 1, date)
        .err()
        .expect("a run missing a source table must fail");
    let message = format!("{err:#}");
    assert!(message.contains("employees"), "{message}");
    assert_eq!(
        versions(&first.lake),
        before,
        "the five tables copied are not committed without the sixth"
    );
    // Copies that completed before the failure are not committed either.
    let manifest = failed_manifest(&first.lake);
    let copied: Vec<&str> = lake_bronze::TABLES
        .into_iter()
        .filter(|table| {
            manifest
                .step(&lake_bronze::step_name(table))
                .unwrap()
                .outcome
                == Outcome::Succeeded
        })
        .collect();
    assert!(!copied.is_empty(), "{:#?}", manifest.steps);
}
