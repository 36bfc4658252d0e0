//! The aggregating stage's checkpoints stay bounded as the stream goes on:
//! after 1M and after 5M events at one event rate, with windows moving on,
//! the checkpoint bytes stay within 2x of each other.

use lake_stream::checkpoint::CheckpointStore;
use lake_stream::route::partition_of_event;
use lake_stream::state::{MINUTE_MICROS, PartitionState, TimeBounds};
use lake_table::{Lake, Layer};

const PARTITIONS: i32 = 4;
/// Events per second of event time.
const RATE: i64 = 2_000;
const LATENESS: i64 = 10 * MINUTE_MICROS;
/// Events between two checkpoints (a micro-batch).
const BATCH: u64 = 250_000;
const COUNTRIES: [&str; 8] = [
    "France", "Germany", "USA", "Brazil", "UK", "Spain", "Italy", "Mexico",
];

/// Runs `events` events through the partition states, a checkpoint after
/// every batch, and returns the checkpoints' total bytes.
fn checkpoint_bytes_after(events: u64) -> (u64, Vec<PartitionState>) {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    let store: CheckpointStore = CheckpointStore::new(&lake, "q");
    let mut states: Vec<PartitionState> = (0..PARTITIONS).map(PartitionState::new).collect();
    let mut offsets = [0i64; PARTITIONS as usize];
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-26T00:00:00Z")
        .unwrap()
        .timestamp_micros();
    for i in 0..events {
        let id = format!("evt-{i:010}");
        let time = chrono::DateTime::from_timestamp_micros(start + i as i64 * 1_000_000 / RATE)
            .unwrap()
            .to_rfc3339();
        let pays = COUNTRIES[(i % COUNTRIES.len() as u64) as usize];
        let payload = format!(
            r#"{{"event_id":"{id}","event_time":"{time}","pays":"{pays}","montant":{}.5}}"#,
            i % 100
        );
        let p = partition_of_event(&id, PARTITIONS) as usize;
        states[p].apply(
            offsets[p],
            Some(payload.as_bytes()),
            TimeBounds::lateness(LATENESS),
        );
        offsets[p] += 1;
        if (i + 1) % BATCH == 0 || i + 1 == events {
            for state in &mut states {
                state.prune(LATENESS);
                state.close_windows(LATENESS);
                store.save(state).unwrap();
            }
        }
    }
    let bytes = lake
        .list(Layer::Checkpoints, "q")
        .unwrap()
        .iter()
        .map(|o| o.size)
        .sum();
    (bytes, states)
}

#[test]
fn checkpoints_after_1m_and_5m_events_stay_within_2x() {
    let (after_1m, states_1m) = checkpoint_bytes_after(1_000_000);
    let (after_5m, states_5m) = checkpoint_bytes_after(5_000_000);
    // Every event was counted: the states did the work.
    assert_eq!(states_1m.iter().map(|s| s.counted).sum::<u64>(), 1_000_000);
    assert_eq!(states_5m.iter().map(|s| s.counted).sum::<u64>(), 5_000_000);
    // The ids within the lateness are all there is to remember: 10 minutes
    // at 2,000 events/s is 1.2M ids over the partitions (1M events span
    // only 500 s: all of theirs).
    let seen_5m: usize = states_5m.iter().map(|s| s.seen.len()).sum();
    assert!(
        (1_199_000..=1_201_000).contains(&seen_5m),
        "{seen_5m} ids remembered"
    );
    // Open windows: at most the 11 minutes the watermark spans, per country.
    for state in &states_5m {
        assert!(
            state.by_minute.len() <= 11 * COUNTRIES.len(),
            "{}",
            state.by_minute.len()
        );
    }
    eprintln!("checkpoint bytes: {after_1m} after 1M events, {after_5m} after 5M");
    assert!(after_1m > 1_000_000, "{after_1m} bytes after 1M events");
    assert!(
        after_5m <= 2 * after_1m,
        "checkpoints: {after_1m} bytes after 1M events, {after_5m} after 5M"
    );
}
