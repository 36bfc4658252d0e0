//! A batch that took messages of both lanes of a partition (its source
//! partition and the copies other partitions forwarded to it), committed
//! to the outputs and killed before its checkpoint, is replayed on the
//! same messages: the same outcomes, its outputs not written twice, and
//! what came after it held for the next batch.
//!
//! A replayed batch also judges events from the future by the processing
//! time its first attempt recorded, not by the replay's own.
//!
//! Its own test binary: fault injection is process-wide (the tests take
//! turns).

use std::sync::Mutex;

use chrono::{DateTime, NaiveDate, Utc};
use lake_stream::config::StreamConfig;
use lake_stream::event::DlqReason;
use lake_stream::message::SourceMessage;
use lake_stream::processor::Processor;
use lake_stream::route::Envelope;
use lake_stream::source::context::{Resume, SourceContext};
use lake_table::{Lake, Layer, Table, TableRef};

/// Held by each test while it injects a fault.
static FAULTS: Mutex<()> = Mutex::new(());

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
    let _turn = FAULTS.lock().unwrap_or_else(|p| p.into_inner());
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

fn time(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .with_timezone(&Utc)
}

/// An event of 2026-11-26 at `hh_mm_ss`, read at source offset `offset`.
fn at_offset(offset: i64, id: &str, hh_mm_ss: &str, montant: f64) -> SourceMessage {
    let payload = format!(
        r#"{{"event_id":"{id}","event_time":"2026-11-26T{hh_mm_ss}Z","pays":"France","montant":{montant}}}"#
    );
    SourceMessage::direct(0, offset, at(), Some(payload.into_bytes()))
}

#[test]
fn a_replay_judges_future_events_by_the_clock_its_batch_recorded() {
    let _turn = FAULTS.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    // The default skew, 5 minutes: at 10:01:00, b (4:59 ahead) is on
    // time and c (5:30 ahead) from the future; at 10:20, both would be.
    let batch = vec![
        at_offset(0, "a", "10:00:01", 1.0),
        at_offset(1, "b", "10:05:59", 2.0),
        at_offset(2, "c", "10:06:30", 4.0),
    ];
    let mut first = Processor::new(&lake, config("first"));
    first.assign(0).unwrap();
    lake_table::fault::inject(Some("before_checkpoint@replay"));
    let crashed = first.process_at(batch.clone(), time("2026-11-26T10:01:00Z"));
    lake_table::fault::inject(None);
    assert!(
        crashed.is_err(),
        "the injected fault did not stop the batch"
    );
    assert_eq!(rows(&lake, "ventes_temps_reel"), 2);
    assert_eq!(rows(&lake, "_dlq/ventes_temps_reel"), 1);

    // The replay runs 19 minutes later: it decides as the batch did.
    let mut second = Processor::new(&lake, config("second"));
    second.assign(0).unwrap();
    let replayed = second
        .process_at(batch, time("2026-11-26T10:20:00Z"))
        .unwrap();
    assert_eq!(replayed.counted, 2, "{replayed:?}");
    assert_eq!(
        replayed.rejected.into_iter().collect::<Vec<_>>(),
        vec![(DlqReason::FutureTime, 1)]
    );
    assert_eq!(rows(&lake, "ventes_temps_reel"), 2, "written twice");
    assert_eq!(rows(&lake, "_dlq/ventes_temps_reel"), 1, "written twice");
    let state = second.owned().next().unwrap();
    assert_eq!(state.batches, 1);
    assert_eq!(
        state.max_event_time,
        Some(time("2026-11-26T10:05:59Z").timestamp_micros()),
        "the event from the future moved the watermark"
    );

    // A new batch goes by its own clock: c sent again now counts.
    let next = second
        .process_at(
            vec![at_offset(3, "c", "10:06:30", 4.0)],
            time("2026-11-26T10:20:00Z"),
        )
        .unwrap();
    assert_eq!((next.counted, next.rejected.len()), (1, 0), "{next:?}");
    let live = second
        .refresh_live_totals_for(NaiveDate::from_ymd_opt(2026, 11, 26).unwrap())
        .unwrap();
    let france = &live.by_country["France"];
    assert_eq!((france.count, france.amount), (3, 7.0));
}
