//! The built-in source (no Kafka): the same processor counts exactly what
//! the producer reports, and a rerun has nothing new to count.

use chrono::NaiveDate;
use lake_core::Lake;
use lake_stream::processor::StreamConfig;
use lake_stream::producer::EventMix;
use lake_stream::run::{EmbeddedOptions, run_embedded};

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
