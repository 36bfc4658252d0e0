//! The log the binaries write with the default filter (`init_tracing`'s
//! subscriber, here into a buffer): conditions the lake handles, logged at
//! ERROR by delta-rs (a table with no log yet, a commit conflict resolved by
//! retrying), do not show; errors of other targets still do; no colour
//! codes when the writer is not a terminal.

use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use lake_table::{DateWriter, Lake, Layer, TableRef};
use polars::prelude::*;

/// Appends what the subscriber writes to a shared buffer.
struct Appender(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Appender {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn handled_delta_conditions_are_not_logged_as_errors() {
    // The default filter is what is tested: RUST_LOG would replace it.
    // SAFETY: set before any other thread of this test process runs (the
    // file holds this one test).
    unsafe { std::env::remove_var("RUST_LOG") };
    let buffer = Arc::new(Mutex::new(Vec::<u8>::new()));
    let shared = buffer.clone();
    tracing::subscriber::set_global_default(lake_core::config::log_subscriber(
        move || Appender(shared.clone()),
        false,
    ))
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    let date = NaiveDate::from_ymd_opt(2026, 3, 4).unwrap();
    let table = TableRef::new(Layer::Silver, "orders");
    let replace = |x: i64| {
        let mut writer = DateWriter::new(&lake, table.clone(), date, "run").unwrap();
        writer.write_frame(&mut df!("x" => [x]).unwrap()).unwrap();
        writer.replace().unwrap().version
    };
    // A new table whose log folder exists (as an S3 prefix always may):
    // delta-rs' kernel finds no log in it ("No files in log segment")
    // before the first commit creates one.
    std::fs::create_dir_all(dir.path().join("silver/orders/_delta_log")).unwrap();
    assert_eq!(replace(0), 0);
    // Writers replacing the same date at once: those that lose a race meet
    // a conflict, which the commit resolves by rebuilding on the winner.
    std::thread::scope(|scope| {
        for thread in 0..4 {
            let replace = &replace;
            scope.spawn(move || {
                for i in 0..8 {
                    replace(thread * 100 + i);
                }
            });
        }
    });
    let snapshot = lake_table::Table::open(&lake, table.clone())
        .unwrap()
        .latest()
        .unwrap()
        .unwrap();
    assert_eq!(snapshot.version(), 32);

    // The filter itself: the two targets are silenced, errors elsewhere in
    // delta-rs (one it does not return, say) and the lake's own still show.
    tracing::error!(
        target: "deltalake_core::kernel::transaction",
        "conflict detected, aborting transaction"
    );
    tracing::error!(
        target: "buoyant_kernel::log_segment::protocol_metadata_replay",
        "error=Json error: Truncated record whilst reading string"
    );
    tracing::error!(
        target: "deltalake_core::protocol::checkpoints",
        "Error received while cleaning up expired logs"
    );
    tracing::warn!(target: "lake_table::commit", "a warning of the lake");

    let log = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert!(!log.contains('\u{1b}'), "colour codes: {log:?}");
    assert!(!log.contains("No files in log segment"), "{log}");
    assert!(!log.contains("conflict detected"), "{log}");
    let errors: Vec<&&str> = lines.iter().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(
        errors.len(),
        1,
        "only the unreturned delta-rs error is logged as one: {log}"
    );
    assert!(errors[0].contains("Error received while cleaning up expired logs"));
    assert!(log.contains("a warning of the lake"), "{log}");
}
