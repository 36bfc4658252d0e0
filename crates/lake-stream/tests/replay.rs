//! A batch that took messages of both lanes of a partition (its source
//! partition and the copies other partitions forwarded to it), committed
//! to the outputs and killed before its checkpoint, is replayed on the
//! same messages: the same outcomes, its outputs not written twice, and
//! what came after it held for the next batch.
//!
//! Its own test binary: fault injection is process-wide.

use chrono::{DateTime, NaiveDate};
use lake_stream::processor::{Processor, Resume, SourceMessage, StreamConfig};
use lake_stream::route::Envelope;
use lake_table::{Lake, Layer, Table, TableRef};

fn config(run_id: &str) -> StreamConfig {
    StreamConfig {
        query: "replay".into(),
        topic: "ventes-temps-reel".into(),
        source: "kafka://test/ventes-temps-reel".into(),
        allowed_lateness: std::time::Duration::from_secs(600),
        run_id: run_id.into(),
    }
}

fn event(id: &str, second: u32, montant: f64) -> Vec<u8> {
    format!(
        r#"{{"event_id":"{id}","event_time":"2026-11-26T10:00:{second:02}Z","pays":"France","montant":{montant}}}"#
    )
    .into_bytes()
}

fn at() -> Option<i64> {
    DateTime::parse_from_rfc3339("2026-11-26T10:01:00Z")
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Partition 0's messages: source offsets 0-3, internal offsets 0-2 (copies
/// forwarded from source partition 1).
fn messages() -> Vec<SourceMessage> {
    let source = |offset, payload: Vec<u8>| SourceMessage::direct(0, offset, at(), Some(payload));
    let internal = |offset, origin: i64, payload: Vec<u8>| {
        SourceMessage::routed(
            0,
            offset,
            at(),
            Some(&Envelope::encode(1, origin, Some(&payload))),
        )
    };
    vec![
        source(0, event("a", 1, 10.0)),
        source(1, event("b", 2, 2.5)),
        source(2, event("a", 1, 10.0)),
        internal(0, 7, event("c", 3, 4.0)),
        internal(1, 8, event("b", 2, 2.5)),
        // After the first batch.
        source(3, event("d", 4, 1.0)),
        internal(2, 9, event("e", 5, 0.5)),
    ]
}

/// Both lanes from offset 0: no checkpoint yet.
const FROM_THE_START: Resume = Resume {
    source: 0,
    internal: 0,
};

fn rows(lake: &Lake, table: &str) -> usize {
    Table::open(lake, TableRef::new(Layer::Bronze, table))
        .unwrap()
        .latest()
        .unwrap()
        .map_or(0, |s| s.scan_all().unwrap().collect().unwrap().height())
}

#[test]
fn a_replay_takes_the_recorded_messages_of_both_lanes() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    let all = messages();

    // The first attempt: source 0-2 and internal 0-1, committed to both
    // outputs, then the process dies before its checkpoint.
    let mut first = Processor::new(&lake, config("first"));
    assert_eq!(first.assign(0).unwrap(), FROM_THE_START);
    lake_table::fault::inject(Some("before_checkpoint@replay"));
    let crashed = first.process(all[..5].to_vec());
    lake_table::fault::inject(None);
    assert!(
        crashed.is_err(),
        "the injected fault did not stop the batch"
    );
    // a, b and c counted; the second a (source) and the copy of b
    // forwarded from partition 1 (internal) are duplicates.
    assert_eq!(rows(&lake, "ventes_temps_reel"), 3);
    assert_eq!(rows(&lake, "_dlq/ventes_temps_reel"), 2);

    // The next owner resumes from the last checkpoint (none) and is given
    // more than the first attempt had: it replays exactly source 0-2 and
    // internal 0-1, then takes the rest in the next batch.
    let mut second = Processor::new(&lake, config("second"));
    assert_eq!(second.assign(0).unwrap(), FROM_THE_START);
    let replayed = second.process(all.clone()).unwrap();
    assert_eq!(
        (replayed.messages, replayed.counted, replayed.carried),
        (5, 3, 2),
        "{replayed:?}"
    );
    assert_eq!(rows(&lake, "ventes_temps_reel"), 3, "written twice");
    assert_eq!(rows(&lake, "_dlq/ventes_temps_reel"), 2, "written twice");
    let state = second.owned().next().unwrap();
    assert_eq!(
        (state.batches, state.next_offset, state.next_internal_offset),
        (1, 3, 2)
    );

    let next = second.process(Vec::new()).unwrap();
    assert_eq!((next.messages, next.counted), (2, 2));
    assert_eq!(rows(&lake, "ventes_temps_reel"), 5);
    let state = second.owned().next().unwrap();
    assert_eq!(
        (state.batches, state.next_offset, state.next_internal_offset),
        (2, 4, 3)
    );
    // 10 + 2.5 + 4 + 1 + 0.5, each event once.
    let live = second
        .refresh_live_totals_for(NaiveDate::from_ymd_opt(2026, 11, 26).unwrap())
        .unwrap();
    let france = &live.by_country["France"];
    assert_eq!((france.count, france.amount), (5, 18.0));
}
