//! The built-in source (no Kafka): the same processor counts exactly what
//! the producer reports, and a rerun has nothing new to count.

use chrono::NaiveDate;
use lake_stream::config::{DLQ_TABLE, EVENTS_TABLE, LIVE_BY_COUNTRY, LIVE_BY_MINUTE, StreamConfig};
use lake_stream::generator::EventMix;
use lake_stream::runner::{EmbeddedOptions, run_embedded};
use lake_table::{Lake, Layer, TableRef};

fn config() -> StreamConfig {
    StreamConfig {
        query: "embedded".into(),
        topic: "ventes-temps-reel".into(),
        source: "embedded://producer/ventes-temps-reel".into(),
        allowed_lateness: std::time::Duration::from_secs(600),
        run_id: "test".into(),
    }
}

#[test]
fn embedded_run_counts_what_the_producer_reports() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    let options = EmbeddedOptions {
        events: 6000,
        partitions: 3,
        seed: 5,
        mix: EventMix {
            malformed: 0.05,
            duplicate: 0.05,
            late: 0.03,
        },
        batch_size: 700,
        date: NaiveDate::from_ymd_opt(2026, 11, 26).unwrap(),
    };
    let (summary, report) = run_embedded(&lake, config(), &options).unwrap();
    assert_eq!(summary.messages, 6000);
    assert_eq!(summary.counted, report.counted);
    let rejected: std::collections::BTreeMap<String, u64> = summary
        .rejected
        .iter()
        .map(|(reason, n)| (reason.as_str().to_string(), *n))
        .collect();
    assert_eq!(rejected, report.dlq);
    for (country, expected) in &report.by_country {
        let live = &summary.live.by_country[country];
        assert_eq!(live.count, expected.count, "{country}");
        assert!(
            (live.amount - expected.total).abs() <= 1e-9 * expected.total,
            "{country}"
        );
    }
    // The same topic again: everything is below the checkpoints.
    let (again, _) = run_embedded(&lake, config(), &options).unwrap();
    assert_eq!((again.messages, again.counted), (0, 0));
    assert_eq!(again.live, summary.live);
}

#[test]
fn every_table_the_stream_writes_keeps_its_log_two_days() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    let options = EmbeddedOptions {
        events: 500,
        partitions: 2,
        seed: 3,
        mix: EventMix {
            malformed: 0.1,
            duplicate: 0.0,
            late: 0.0,
        },
        batch_size: 100,
        date: NaiveDate::from_ymd_opt(2026, 11, 26).unwrap(),
    };
    run_embedded(&lake, config(), &options).unwrap();
    // The live views are replaced every micro-batch: as many versions a
    // day as the appended tables, and the same retention.
    for table in [
        TableRef::new(Layer::Bronze, EVENTS_TABLE),
        TableRef::new(Layer::Bronze, DLQ_TABLE),
        TableRef::new(Layer::Gold, LIVE_BY_COUNTRY),
        TableRef::new(Layer::Gold, LIVE_BY_MINUTE),
    ] {
        let key = format!("{}/_delta_log/{:020}.json", table.name, 0);
        let bytes = lake
            .get(table.layer, &key)
            .unwrap()
            .expect("no first commit");
        let metadata = std::str::from_utf8(&bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find_map(|a| a.get("metaData").cloned())
            .expect("no metadata in the first commit");
        assert_eq!(
            metadata["configuration"]["delta.logRetentionDuration"],
            lake_table::STREAM_LOG_RETENTION,
            "{table}"
        );
    }
}

#[test]
fn a_run_dated_today_has_no_event_from_the_future() {
    use polars::prelude::ChunkAgg;
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    let today = chrono::Utc::now().date_naive();
    let options = EmbeddedOptions {
        events: 2000,
        partitions: 2,
        seed: 9,
        // No late events: those are stamped hours back on purpose.
        mix: EventMix {
            malformed: 0.0,
            duplicate: 0.0,
            late: 0.0,
        },
        batch_size: 500,
        date: today,
    };
    run_embedded(&lake, config(), &options).unwrap();
    let written_by = chrono::Utc::now();
    let events = lake_table::read_date(
        &lake,
        &TableRef::new(Layer::Bronze, "ventes_temps_reel"),
        today,
    )
    .unwrap()
    .expect("events land on the run date");
    let latest = events
        .column("event_time")
        .unwrap()
        .datetime()
        .unwrap()
        .physical()
        .max()
        .unwrap();
    assert!(
        latest <= written_by.timestamp_micros(),
        "an event is stamped after the run: {latest} > {}",
        written_by.timestamp_micros()
    );
    let earliest = events
        .column("event_time")
        .unwrap()
        .datetime()
        .unwrap()
        .physical()
        .min()
        .unwrap();
    let midnight = today
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_micros();
    assert!(
        earliest >= midnight,
        "counted events are stamped on the run date"
    );
}

#[test]
fn an_open_date_is_compacted_while_batches_append_to_it() {
    use lake_table::{Layer, Table, TableRef};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    let date = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
    let options = EmbeddedOptions {
        events: 3000,
        partitions: 1,
        seed: 11,
        mix: EventMix {
            malformed: 0.0,
            duplicate: 0.0,
            late: 0.0,
        },
        // 150 batches of one date: a compaction of the open date after the
        // 100th, while the last 50 keep appending.
        batch_size: 20,
        date,
    };
    let (summary, _) = run_embedded(&lake, config(), &options).unwrap();
    assert_eq!((summary.batches, summary.counted), (150, 3000));
    let table = Table::open(&lake, TableRef::new(Layer::Bronze, "ventes_temps_reel")).unwrap();
    // The compaction runs in the background: wait for its commit.
    let deadline = Instant::now() + Duration::from_secs(60);
    let snapshot = loop {
        let snapshot = table.latest().unwrap().unwrap();
        // 150 batches are versions 0-149; the compaction's is one more.
        if snapshot.version() >= 150 {
            break snapshot;
        }
        assert!(
            Instant::now() < deadline,
            "no compaction after 60 s: version {}",
            snapshot.version()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let history = lake_table::history::history(&table, 200).unwrap();
    let compactions = history
        .iter()
        .filter(|entry| entry.change.as_deref() == Some("compact"))
        .count();
    assert_eq!(compactions, 1, "{history:?}");
    // At least the 100 files of the first 100 batches became one; the
    // batches after the compaction's snapshot kept their own files.
    let files = snapshot.files_of(date).count();
    assert!(files <= 51, "{files} files");
    assert_eq!(snapshot.rows_of(date), Some(3000));
}

#[test]
fn a_run_dated_in_the_future_simulates_that_date() {
    // The built-in producer stamps such a run's events at the start of its
    // day: its clock is that simulated time, so they are not events from
    // the future of the stream it makes.
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    let options = EmbeddedOptions {
        events: 500,
        partitions: 2,
        seed: 13,
        mix: EventMix {
            malformed: 0.0,
            duplicate: 0.0,
            late: 0.0,
        },
        batch_size: 100,
        date: chrono::Utc::now().date_naive() + chrono::Days::new(3),
    };
    let (summary, report) = run_embedded(&lake, config(), &options).unwrap();
    assert_eq!(summary.rejected, std::collections::BTreeMap::new());
    assert_eq!((summary.counted, report.counted), (500, 500));
}
