//! The state of one partition of the aggregating stage: where it is, which
//! events it has counted, and its aggregates.
//!
//! Every decision depends only on the partition's own messages in offset
//! order (never on micro-batch boundaries, timing or which process owns
//! the partition), so a replay after a crash or a rebalance reaches exactly
//! the same state:
//! - a message of the internal topic whose source offset is at or below
//!   the last one this partition took from the same source partition is a
//!   copy forwarded again after a crash: skipped (see [`crate::route`]);
//! - an event more than the allowed clock skew ahead of its batch's
//!   processing time is from the future ([`TimeBounds`]): never counted,
//!   so it never moves the watermark (one event stamped 2099 would make
//!   every later one late). The processing time is the batch's, recorded
//!   with its commits, so a replay decides as the first attempt did;
//! - the watermark is the latest event time counted so far in the partition
//!   minus the allowed lateness, updated message by message;
//! - an event older than the watermark is late (checked before duplicates,
//!   so pruning old ids never changes an outcome);
//! - an event id already counted is a duplicate. Ids are remembered while
//!   the event they counted is not older than the watermark: a producer
//!   retry resends the same event, with the same event time, so by the time
//!   an id is forgotten its retries are late anyway (the semantics of
//!   Spark's deduplication with a watermark). Every copy of an event id is
//!   aggregated by one partition, its home, whichever source partition it
//!   came from, so per-partition deduplication is global.
//!
//! The memory this takes: one entry per source partition for forwarded
//! copies, and one id per event counted within the allowed lateness of
//! the latest event time (e.g. at 5,000 events/s of event time and 10
//! minutes of lateness, 3M ids over all partitions, 24 bytes each).

use std::collections::{BTreeMap, HashMap};

use lake_core::country::standardize;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_128;

use crate::event::{DlqReason, Rejection, SalesEvent, parse_event};

/// Microseconds in a minute.
pub const MINUTE_MICROS: i64 = 60_000_000;

/// A sum kept with Neumaier's compensation, so long streams of amounts
/// stay accurate; adding in the same order gives the same bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Sum {
    sum: f64,
    compensation: f64,
}

impl Sum {
    pub fn add(&mut self, value: f64) {
        let total = self.sum + value;
        if self.sum.abs() >= value.abs() {
            self.compensation += (self.sum - total) + value;
        } else {
            self.compensation += (value - total) + self.sum;
        }
        self.sum = total;
    }

    pub fn value(&self) -> f64 {
        self.sum + self.compensation
    }
}

/// Sales of one country (or one country in one minute).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub amount: Sum,
    pub count: u64,
    /// Latest event time, microseconds since the epoch.
    pub last_event_time: i64,
}

impl Totals {
    fn add(&mut self, amount: f64, event_time: i64) {
        self.amount.add(amount);
        self.count += 1;
        self.last_event_time = self.last_event_time.max(event_time);
    }
}

/// What the time of an event is checked against in one micro-batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeBounds {
    /// Events older than the partition's latest event time minus this
    /// (microseconds) are late.
    pub lateness_micros: i64,
    /// Events after this instant (microseconds since the epoch) are from
    /// the future: the batch's processing time plus the allowed clock skew.
    /// `None`: no bound (a batch first committed by a lake-stream that had
    /// none, replayed as it was decided).
    pub latest_event_time: Option<i64>,
}

impl TimeBounds {
    /// Lateness only: no bound on the future.
    pub fn lateness(lateness_micros: i64) -> Self {
        TimeBounds {
            lateness_micros,
            latest_event_time: None,
        }
    }

    /// Also refuses events more than `max_clock_skew_micros` ahead of
    /// `processing_time_micros`.
    pub fn not_after(self, processing_time_micros: i64, max_clock_skew_micros: i64) -> Self {
        TimeBounds {
            latest_event_time: Some(processing_time_micros.saturating_add(max_clock_skew_micros)),
            ..self
        }
    }
}

/// What happened to one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Counted in the aggregates; `country` is the standardized name.
    Counted { event: SalesEvent, country: String },
    /// Sent to the DLQ.
    Rejected(Rejection),
    /// A copy of a source message this partition has already taken,
    /// forwarded again after a crash: no effect.
    Replayed,
}

/// State of one partition, checkpointed after every micro-batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PartitionState {
    pub partition: i32,
    /// The next offset to process in the source partition.
    pub next_offset: i64,
    /// The next offset to process in the internal partition (the copies
    /// other partitions forwarded here).
    pub next_internal_offset: i64,
    /// Micro-batches committed so far (numbers the output files).
    pub batches: u64,
    /// Latest event time counted, microseconds.
    pub max_event_time: Option<i64>,
    /// Hash of each counted event id still within the watermark -> event time.
    pub seen: HashMap<u128, i64>,
    pub by_country: BTreeMap<String, Totals>,
    /// (window start in microseconds, country) -> totals, for the windows
    /// still open: a window ends after the watermark. Closed ones leave the
    /// state ([`PartitionState::close_windows`]).
    pub by_minute: BTreeMap<(i64, String), Totals>,
    pub rejected: BTreeMap<DlqReason, u64>,
    pub counted: u64,
    /// Source partition -> the last source offset taken from it (read
    /// directly or forwarded).
    pub routed_through: BTreeMap<i32, i64>,
}

impl PartitionState {
    pub fn new(partition: i32) -> Self {
        PartitionState {
            partition,
            ..Default::default()
        }
    }

    /// The watermark for a lateness of `allowed_lateness_micros`.
    pub fn watermark(&self, allowed_lateness_micros: i64) -> Option<i64> {
        self.max_event_time.map(|max| max - allowed_lateness_micros)
    }

    /// Processes the message at `offset` of the source partition, and
    /// returns its fate.
    pub fn apply(&mut self, offset: i64, payload: Option<&[u8]>, bounds: TimeBounds) -> Outcome {
        self.next_offset = offset + 1;
        self.take((self.partition, offset), payload, bounds)
    }

    /// Passes the message at `offset` of the source partition, forwarded
    /// to its home partition: no effect here.
    pub fn skip_forwarded(&mut self, offset: i64) {
        self.next_offset = offset + 1;
    }

    /// Processes the message at `offset` of the internal partition, which
    /// was forwarded from `origin` (source partition, source offset), and
    /// returns its fate.
    pub fn apply_routed(
        &mut self,
        offset: i64,
        origin: (i32, i64),
        payload: Option<&[u8]>,
        bounds: TimeBounds,
    ) -> Outcome {
        self.next_internal_offset = offset + 1;
        self.take(origin, payload, bounds)
    }

    fn take(&mut self, origin: (i32, i64), payload: Option<&[u8]>, bounds: TimeBounds) -> Outcome {
        let (source_partition, source_offset) = origin;
        match self.routed_through.get(&source_partition) {
            Some(last) if source_offset <= *last => return Outcome::Replayed,
            _ => {
                self.routed_through.insert(source_partition, source_offset);
            }
        }
        let outcome = self.classify(payload, bounds);
        match &outcome {
            Outcome::Counted { event, country } => {
                let time = event.event_time.timestamp_micros();
                self.seen.insert(xxh3_128(event.event_id.as_bytes()), time);
                self.max_event_time = Some(self.max_event_time.map_or(time, |max| max.max(time)));
                self.by_country
                    .entry(country.clone())
                    .or_default()
                    .add(event.montant, time);
                let window = time.div_euclid(MINUTE_MICROS) * MINUTE_MICROS;
                self.by_minute
                    .entry((window, country.clone()))
                    .or_default()
                    .add(event.montant, time);
                self.counted += 1;
            }
            Outcome::Rejected(rejection) => {
                *self.rejected.entry(rejection.reason).or_insert(0) += 1
            }
            Outcome::Replayed => {}
        }
        outcome
    }

    fn classify(&self, payload: Option<&[u8]>, bounds: TimeBounds) -> Outcome {
        let event = match parse_event(payload) {
            Ok(event) => event,
            Err(rejection) => return Outcome::Rejected(rejection),
        };
        let time = event.event_time.timestamp_micros();
        // Before lateness: a future event must not be counted, whatever the
        // watermark.
        if let Some(latest) = bounds.latest_event_time
            && time > latest
        {
            return Outcome::Rejected(Rejection {
                reason: DlqReason::FutureTime,
                detail: format!(
                    "event_time {} is more than the allowed clock skew ahead of the processing \
                     time (latest accepted {})",
                    event.event_time.to_rfc3339(),
                    micros_to_rfc3339(latest)
                ),
            });
        }
        if let Some(watermark) = self.watermark(bounds.lateness_micros)
            && time < watermark
        {
            return Outcome::Rejected(Rejection {
                reason: DlqReason::Late,
                detail: format!(
                    "event_time {} is older than the watermark {}",
                    event.event_time.to_rfc3339(),
                    micros_to_rfc3339(watermark)
                ),
            });
        }
        if self.seen.contains_key(&xxh3_128(event.event_id.as_bytes())) {
            return Outcome::Rejected(Rejection {
                reason: DlqReason::Duplicate,
                detail: format!("event_id {} was already counted", event.event_id),
            });
        }
        let country = standardize(Some(&event.pays)).name;
        Outcome::Counted { event, country }
    }

    /// Removes and returns the windows that ended at or before the
    /// watermark: no event counted from now on can fall in them (it would be
    /// late), so their totals are final.
    pub fn close_windows(
        &mut self,
        allowed_lateness_micros: i64,
    ) -> BTreeMap<(i64, String), Totals> {
        let Some(watermark) = self.watermark(allowed_lateness_micros) else {
            return BTreeMap::new();
        };
        // Keys sort by window start, then country (the empty name first): a
        // window starting after `watermark - 1 minute` ends after the
        // watermark, so it stays open.
        let open = self
            .by_minute
            .split_off(&(watermark - MINUTE_MICROS + 1, String::new()));
        std::mem::replace(&mut self.by_minute, open)
    }

    /// Forgets event ids older than the watermark: a message carrying one
    /// would be late anyway. Keeps checkpoints bounded.
    pub fn prune(&mut self, allowed_lateness_micros: i64) {
        if let Some(watermark) = self.watermark(allowed_lateness_micros) {
            self.seen.retain(|_, time| *time >= watermark);
        }
    }
}

pub fn micros_to_rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|| micros.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LATENESS: i64 = 10 * MINUTE_MICROS;
    /// Lateness only, as the tests of windows and duplicates need.
    const BOUNDS: TimeBounds = TimeBounds {
        lateness_micros: LATENESS,
        latest_event_time: None,
    };

    fn event(id: &str, time: &str, pays: &str, montant: f64) -> Vec<u8> {
        format!(
            r#"{{"event_id":"{id}","event_time":"{time}","pays":"{pays}","montant":{montant}}}"#
        )
        .into_bytes()
    }

    fn reason(outcome: &Outcome) -> Option<DlqReason> {
        match outcome {
            Outcome::Counted { .. } | Outcome::Replayed => None,
            Outcome::Rejected(r) => Some(r.reason),
        }
    }

    #[test]
    fn copies_from_other_partitions_are_duplicates_and_copies_forwarded_again_are_skipped() {
        let mut state = PartitionState::new(2);
        let a = event("a", "2026-11-26T10:00:00Z", "France", 10.0);
        let b = event("b", "2026-11-26T10:00:01Z", "France", 2.0);
        let outcomes = [
            // (internal offset, (source partition, source offset), payload)
            state.apply_routed(0, (0, 5), Some(&a), BOUNDS),
            // The producer's retry of "a", sent to source partition 1.
            state.apply_routed(1, (1, 9), Some(&a), BOUNDS),
            state.apply_routed(2, (0, 6), Some(&b), BOUNDS),
            // The owner of source partition 0 crashed after forwarding 5
            // and 6 and forwards them again: no effect at all.
            state.apply_routed(3, (0, 5), Some(&a), BOUNDS),
            state.apply_routed(4, (0, 6), Some(&b), BOUNDS),
            // Then goes on.
            state.apply_routed(5, (0, 7), Some(b"{oops"), BOUNDS),
        ];
        assert!(matches!(outcomes[0], Outcome::Counted { .. }));
        assert_eq!(reason(&outcomes[1]), Some(DlqReason::Duplicate));
        assert!(matches!(outcomes[2], Outcome::Counted { .. }));
        assert_eq!(outcomes[3], Outcome::Replayed);
        assert_eq!(outcomes[4], Outcome::Replayed);
        assert_eq!(reason(&outcomes[5]), Some(DlqReason::NotJson));
        // 10 + 2 counted once each; one duplicate and one bad message.
        let france = &state.by_country["France"];
        assert_eq!((france.amount.value(), france.count), (12.0, 2));
        assert_eq!(state.counted, 2);
        assert_eq!(state.rejected[&DlqReason::Duplicate], 1);
        assert_eq!(state.rejected[&DlqReason::NotJson], 1);
        assert_eq!((state.next_offset, state.next_internal_offset), (0, 6));
        assert_eq!(state.routed_through, BTreeMap::from([(0, 7), (1, 9)]));
        // A message of its own source partition moves the other offset.
        state.skip_forwarded(41);
        let c = event("c", "2026-11-26T10:00:02Z", "France", 1.0);
        assert!(matches!(
            state.apply(42, Some(&c), BOUNDS),
            Outcome::Counted { .. }
        ));
        assert_eq!((state.next_offset, state.next_internal_offset), (43, 6));
        assert_eq!(state.routed_through[&2], 42);
    }

    #[test]
    fn duplicates_late_events_and_country_aliases() {
        let mut state = PartitionState::new(0);
        let messages = [
            event("a", "2026-11-26T10:00:00Z", "France", 10.0),
            event("b", "2026-11-26T10:00:30Z", "USA ", 5.0),
            event("a", "2026-11-26T10:00:00Z", "France", 10.0),
            event("c", "2026-11-26T10:20:00Z", "Etats-Unis", 2.5),
            // 10:09:59 < 10:20 - 10 min: late.
            event("d", "2026-11-26T10:09:59Z", "France", 1.0),
            // Exactly at the watermark: on time.
            event("e", "2026-11-26T10:10:00Z", "france", 4.0),
        ];
        let reasons: Vec<Option<DlqReason>> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| reason(&state.apply(i as i64, Some(m), BOUNDS)))
            .collect();
        assert_eq!(
            reasons,
            vec![
                None,
                None,
                Some(DlqReason::Duplicate),
                None,
                Some(DlqReason::Late),
                None
            ]
        );
        assert_eq!(state.next_offset, 6);
        assert_eq!(state.counted, 4);
        let france = &state.by_country["France"];
        assert_eq!((france.amount.value(), france.count), (14.0, 2));
        let us = &state.by_country["United States"];
        assert_eq!((us.amount.value(), us.count), (7.5, 2));
        assert_eq!(state.by_minute.len(), 4);
        assert_eq!(state.rejected[&DlqReason::Duplicate], 1);
    }

    #[test]
    fn windows_close_once_the_watermark_passes_their_end() {
        let mut state = PartitionState::new(0);
        let apply = |state: &mut PartitionState, offset: i64, id: &str, time: &str| {
            state.apply(offset, Some(&event(id, time, "France", 1.0)), BOUNDS);
        };
        apply(&mut state, 0, "a", "2026-11-26T10:00:30Z");
        apply(&mut state, 1, "b", "2026-11-26T10:01:10Z");
        // Latest 10:01:10, watermark 09:51:10: nothing closes.
        assert!(state.close_windows(LATENESS).is_empty());
        // Latest 10:11:00, watermark 10:01:00: the 10:00 window (ending
        // 10:01:00, at the watermark) closes; 10:01 stays open.
        apply(&mut state, 2, "c", "2026-11-26T10:11:00Z");
        let closed = state.close_windows(LATENESS);
        let minute = |hh_mm: &str| {
            chrono::DateTime::parse_from_rfc3339(&format!("2026-11-26T{hh_mm}:00Z"))
                .unwrap()
                .timestamp_micros()
        };
        assert_eq!(
            closed.keys().cloned().collect::<Vec<_>>(),
            vec![(minute("10:00"), "France".to_string())]
        );
        assert_eq!(closed.values().next().unwrap().count, 1);
        assert_eq!(
            state.by_minute.keys().map(|k| k.0).collect::<Vec<_>>(),
            vec![minute("10:01"), minute("10:11")]
        );
        // An event in the closed window is late: nothing is added to it.
        apply(&mut state, 3, "d", "2026-11-26T10:00:59Z");
        assert_eq!(state.rejected[&DlqReason::Late], 1);
        // Exactly at the watermark (10:01:00) is on time, in an open window.
        apply(&mut state, 4, "e", "2026-11-26T10:01:00Z");
        assert_eq!(
            state.by_minute[&(minute("10:01"), "France".to_string())].count,
            2
        );
        assert!(state.close_windows(LATENESS).is_empty());
    }

    #[test]
    fn pruning_never_changes_an_outcome() {
        // The same messages with and without pruning after every message;
        // retries (ids 0..50 again) carry their first attempt's event time.
        let messages: Vec<Vec<u8>> = (0..200)
            .map(|i| {
                let n = i % 150;
                let minute = (n * 7) % 60;
                event(
                    &format!("id{n}"),
                    &format!("2026-11-26T10:{minute:02}:00Z"),
                    "Germany",
                    n as f64,
                )
            })
            .collect();
        let mut pruned = PartitionState::new(1);
        let mut kept = PartitionState::new(1);
        for (offset, message) in messages.iter().enumerate() {
            let a = pruned.apply(offset as i64, Some(message), BOUNDS);
            pruned.prune(LATENESS);
            let b = kept.apply(offset as i64, Some(message), BOUNDS);
            assert_eq!(reason(&a), reason(&b), "message {offset}");
        }
        assert_eq!(pruned.by_country, kept.by_country);
        assert!(pruned.seen.len() < kept.seen.len());
    }

    #[test]
    fn compensated_sums_are_exact_where_naive_ones_drift() {
        let mut sum = Sum::default();
        let mut naive = 0.0f64;
        for _ in 0..10 {
            sum.add(0.1);
            naive += 0.1;
        }
        assert_eq!(sum.value(), 1.0);
        assert_ne!(naive, 1.0);
    }

    #[test]
    fn state_survives_a_checkpoint_round_trip() {
        let mut state = PartitionState::new(3);
        state.apply(
            41,
            Some(&event("z", "2026-11-26T10:00:00Z", "Brasil", 3.0)),
            BOUNDS,
        );
        state.apply(42, Some(b"{oops"), BOUNDS);
        state.apply(
            43,
            Some(&event("f", "2099-01-01T00:00:00Z", "Brasil", 3.0)),
            BOUNDS.not_after(micros("2026-11-26T10:00:00Z"), 5 * MINUTE_MICROS),
        );
        assert_eq!(state.rejected[&DlqReason::FutureTime], 1);
        let bytes = postcard::to_allocvec(&state).unwrap();
        let back: PartitionState = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, state);
    }

    fn micros(rfc3339: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_micros()
    }

    /// Processing time 10:00:00, the default skew of 5 minutes.
    fn at_ten() -> TimeBounds {
        BOUNDS.not_after(micros("2026-11-26T10:00:00Z"), 5 * MINUTE_MICROS)
    }

    #[test]
    fn the_future_bound_is_the_processing_time_plus_the_skew() {
        let mut state = PartitionState::new(0);
        let messages = [
            // One second inside the bound, on it, one second past it.
            event("a", "2026-11-26T10:04:59Z", "France", 1.0),
            event("b", "2026-11-26T10:05:00Z", "France", 2.0),
            event("c", "2026-11-26T10:05:01Z", "France", 4.0),
            // A fraction past it.
            event("d", "2026-11-26T10:05:00.000001Z", "France", 8.0),
            // Another offset: the same instant as b.
            event("e", "2026-11-26T12:05:00+02:00", "France", 16.0),
        ];
        let reasons: Vec<Option<DlqReason>> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| reason(&state.apply(i as i64, Some(m), at_ten())))
            .collect();
        assert_eq!(
            reasons,
            vec![
                None,
                None,
                Some(DlqReason::FutureTime),
                Some(DlqReason::FutureTime),
                None
            ]
        );
        assert_eq!(state.by_country["France"].amount.value(), 19.0);
        // Without a bound (a replay of a batch decided before there was
        // one), the same event counts.
        let mut unbounded = PartitionState::new(0);
        assert!(matches!(
            unbounded.apply(0, Some(&messages[2]), BOUNDS),
            Outcome::Counted { .. }
        ));
    }

    #[test]
    fn a_future_event_never_moves_the_watermark_and_later_events_count() {
        let mut state = PartitionState::new(0);
        state.apply(
            0,
            Some(&event("a", "2026-11-26T09:58:00Z", "France", 1.0)),
            at_ten(),
        );
        let before = (state.max_event_time, state.watermark(LATENESS));
        let future = state.apply(
            1,
            Some(&event("far", "2099-01-01T00:00:00Z", "France", 1000.0)),
            at_ten(),
        );
        assert_eq!(reason(&future), Some(DlqReason::FutureTime));
        let leap = state.apply(
            2,
            Some(&event("leap", "2026-11-26T23:59:60Z", "France", 1000.0)),
            at_ten(),
        );
        assert_eq!(reason(&leap), Some(DlqReason::InvalidTime));
        assert_eq!((state.max_event_time, state.watermark(LATENESS)), before);
        // The real events after it are counted, none late.
        for (i, second) in (3..13).zip(0..10) {
            let outcome = state.apply(
                i,
                Some(&event(
                    &format!("ok{i}"),
                    &format!("2026-11-26T09:59:{second:02}Z"),
                    "France",
                    2.5,
                )),
                at_ten(),
            );
            assert!(matches!(outcome, Outcome::Counted { .. }), "{outcome:?}");
        }
        let france = &state.by_country["France"];
        assert_eq!((france.amount.value(), france.count), (26.0, 11));
        assert_eq!(
            state.max_event_time,
            Some(micros("2026-11-26T09:59:09Z")),
            "the latest real event"
        );
        assert_eq!(state.rejected.get(&DlqReason::Late), None);
        // The future event's id was not remembered: a correct copy later
        // (once its time has come) is not a duplicate.
        assert!(!state.seen.contains_key(&xxh3_128(b"far")));
    }

    #[test]
    fn amounts_beyond_one_sale_are_refused_and_totals_stay_finite() {
        let mut state = PartitionState::new(0);
        let raw = |id: &str, montant: &str| {
            format!(
                r#"{{"event_id":"{id}","event_time":"2026-11-26T10:00:00Z","pays":"France","montant":{montant}}}"#
            )
            .into_bytes()
        };
        let messages = [
            raw("a", "1e308"),
            raw("b", "1e308"),
            raw("c", "1e400"),
            raw("d", "1000000001"),
            raw("e", "1e9"),
            raw("f", "1e9"),
            raw("g", "0.5"),
            // The key given twice: neither copy is taken.
            br#"{"event_id":"h","event_time":"2026-11-26T10:00:00Z","pays":"France","montant":1,"montant":1000}"#
                .to_vec(),
        ];
        for (offset, message) in messages.iter().enumerate() {
            state.apply(offset as i64, Some(message), at_ten());
        }
        assert_eq!(state.rejected[&DlqReason::InvalidField], 5);
        let france = &state.by_country["France"];
        assert_eq!((france.amount.value(), france.count), (2e9 + 0.5, 3));
        // The most a partition can sum stays finite: a million sales at
        // the bound, exactly.
        let mut sum = Sum::default();
        for _ in 0..1_000_000 {
            sum.add(crate::event::MAX_AMOUNT);
        }
        assert_eq!(sum.value(), 1e15);
    }

    #[test]
    fn checkpointed_reasons_keep_their_index() {
        // postcard stores a reason by its variant's index: a new reason
        // must not renumber those already in checkpoints.
        let indexes: Vec<Vec<u8>> = [
            DlqReason::NotJson,
            DlqReason::Duplicate,
            DlqReason::FutureTime,
        ]
        .iter()
        .map(|r| postcard::to_allocvec(r).unwrap())
        .collect();
        assert_eq!(indexes, vec![vec![0], vec![6], vec![7]]);
    }
}
