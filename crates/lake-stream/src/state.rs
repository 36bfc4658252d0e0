//! The state of one Kafka partition: where it is, which events it has
//! counted, and its aggregates.
//!
//! Every decision depends only on the partition's own messages in offset
//! order (never on micro-batch boundaries, timing or which process owns
//! the partition), so a replay after a crash or a rebalance reaches exactly
//! the same state:
//! - the watermark is the latest event time counted so far in the partition
//!   minus the allowed lateness, updated message by message;
//! - an event older than the watermark is late (checked first, so pruning
//!   old ids never changes an outcome);
//! - an event id already counted is a duplicate. Ids are remembered while
//!   the event they counted is not older than the watermark: a producer
//!   retry resends the same event, with the same event time, so by the time
//!   an id is forgotten its retries are late anyway (the semantics of
//!   Spark's deduplication with a watermark). Producers retry to the same
//!   partition (the message key is the event id), so per-partition
//!   deduplication is exact.

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

/// What happened to one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Counted in the aggregates; `country` is the standardized name.
    Counted { event: SalesEvent, country: String },
    /// Sent to the DLQ.
    Rejected(Rejection),
}

/// State of one partition, checkpointed after every micro-batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PartitionState {
    pub partition: i32,
    /// The next offset to process.
    pub next_offset: i64,
    /// Micro-batches committed so far (numbers the output files).
    pub batches: u64,
    /// Latest event time counted, microseconds.
    pub max_event_time: Option<i64>,
    /// Hash of each counted event id still within the watermark -> event time.
    pub seen: HashMap<u128, i64>,
    pub by_country: BTreeMap<String, Totals>,
    /// (window start in microseconds, country) -> totals.
    pub by_minute: BTreeMap<(i64, String), Totals>,
    pub rejected: BTreeMap<DlqReason, u64>,
    pub counted: u64,
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

    /// Processes the message at `offset` and returns its fate.
    pub fn apply(
        &mut self,
        offset: i64,
        payload: Option<&[u8]>,
        allowed_lateness_micros: i64,
    ) -> Outcome {
        self.next_offset = offset + 1;
        let outcome = self.classify(payload, allowed_lateness_micros);
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
        }
        outcome
    }

    fn classify(&self, payload: Option<&[u8]>, allowed_lateness_micros: i64) -> Outcome {
        let event = match parse_event(payload) {
            Ok(event) => event,
            Err(rejection) => return Outcome::Rejected(rejection),
        };
        let time = event.event_time.timestamp_micros();
        if let Some(watermark) = self.watermark(allowed_lateness_micros)
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

    fn event(id: &str, time: &str, pays: &str, montant: f64) -> Vec<u8> {
        format!(
            r#"{{"event_id":"{id}","event_time":"{time}","pays":"{pays}","montant":{montant}}}"#
        )
        .into_bytes()
    }

    fn reason(outcome: &Outcome) -> Option<DlqReason> {
        match outcome {
            Outcome::Counted { .. } => None,
            Outcome::Rejected(r) => Some(r.reason),
        }
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
            .map(|(i, m)| reason(&state.apply(i as i64, Some(m), LATENESS)))
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
            let a = pruned.apply(offset as i64, Some(message), LATENESS);
            pruned.prune(LATENESS);
            let b = kept.apply(offset as i64, Some(message), LATENESS);
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
            LATENESS,
        );
        state.apply(42, Some(b"{oops"), LATENESS);
        let bytes = postcard::to_allocvec(&state).unwrap();
        let back: PartitionState = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, state);
    }
}
