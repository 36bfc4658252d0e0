//! The load generator: realistic sales events (countries, products and
//! customers of the Northwind generator), with chosen shares of malformed,
//! duplicate and late messages, and a report of what a correct consumer
//! must count, so tests can check it exactly.

use std::collections::{BTreeMap, VecDeque};

use anyhow::{Context, Result, anyhow};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use lake_core::country::standardize;
use lake_northwind::SplitMix64;
use polars::prelude::*;
use serde::Serialize;
use xxhash_rust::xxh3::xxh3_64;

use crate::event::DlqReason;

/// Shares of each kind of bad message, each in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventMix {
    pub malformed: f64,
    pub duplicate: f64,
    pub late: f64,
}

impl Default for EventMix {
    fn default() -> Self {
        EventMix {
            malformed: 0.02,
            duplicate: 0.02,
            late: 0.01,
        }
    }
}

/// One message to send.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedMessage {
    /// The partition of the key's hash; for a copy of an event when copies
    /// are spread, another one.
    pub partition: i32,
    /// The message key: the event id.
    pub key: String,
    pub payload: Vec<u8>,
}

/// Per standardized country, what a correct consumer counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CountryExpectation {
    pub total: f64,
    pub count: u64,
}

/// What was sent, and what a correct consumer makes of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProducerReport {
    pub sent: u64,
    pub counted: u64,
    pub by_country: BTreeMap<String, CountryExpectation>,
    /// Messages a consumer sends to the DLQ, by reason.
    pub dlq: BTreeMap<String, u64>,
}

/// Allowed lateness the generator's late events are far beyond.
const LATE_BY: ChronoDuration = ChronoDuration::hours(2);
/// Valid events kept for duplicates: retries resend a recent one.
const RECENT: usize = 1000;
/// How old a retried event may be (the consumer's lateness is 10 minutes).
const RETRY_WINDOW: ChronoDuration = ChronoDuration::minutes(2);

/// Deterministic (for a seed) generator of sales event messages.
pub struct EventGenerator {
    rng: SplitMix64,
    partitions: i32,
    mix: EventMix,
    customers: Vec<(String, String)>,
    products: Vec<(String, f64)>,
    /// Partitions that already have a counted event (a late event needs one).
    started: Vec<bool>,
    /// Recent counted events with their event time, for duplicates.
    recent: VecDeque<(DateTime<Utc>, GeneratedMessage)>,
    sequence: u64,
    seed: u64,
    /// Copies of an event go to another partition than the original (a
    /// producer that sends without a key).
    spread_copies: bool,
    report: ProducerReport,
}

fn strings(df: &DataFrame, column: &str) -> Result<Vec<Option<String>>> {
    Ok(df
        .column(column)?
        .str()?
        .iter()
        .map(|s| s.map(str::to_string))
        .collect())
}

impl EventGenerator {
    pub fn new(seed: u64, partitions: i32, mix: EventMix) -> Result<Self> {
        if partitions < 1 {
            return Err(anyhow!("a topic needs at least one partition"));
        }
        let nw =
            lake_northwind::generate(1, seed).context("generating Northwind for the events")?;
        let customers_df = nw
            .table("customers")
            .ok_or_else(|| anyhow!("no customers"))?;
        let customers: Vec<(String, String)> = strings(customers_df, "customer_id")?
            .into_iter()
            .zip(strings(customers_df, "country")?)
            .filter_map(|(id, country)| match (id, country) {
                (Some(id), Some(country)) if !country.trim().is_empty() => Some((id, country)),
                _ => None,
            })
            .collect();
        let products_df = nw.table("products").ok_or_else(|| anyhow!("no products"))?;
        let prices = products_df.column("unit_price")?.cast(&DataType::Float64)?;
        let products: Vec<(String, f64)> = strings(products_df, "product_name")?
            .into_iter()
            .zip(prices.f64()?.iter())
            .filter_map(|(name, price)| Some((name?, price?)))
            .collect();
        Ok(EventGenerator {
            rng: SplitMix64::stream(seed, 0x5A1E5),
            partitions,
            mix,
            customers,
            products,
            started: vec![false; partitions as usize],
            recent: VecDeque::with_capacity(RECENT),
            sequence: 0,
            seed,
            spread_copies: false,
            report: ProducerReport::default(),
        })
    }

    /// Sends each copy of an event to another partition than its original
    /// (when the topic has more than one).
    pub fn spreading_copies(mut self) -> Self {
        self.spread_copies = true;
        self
    }

    pub fn report(&self) -> &ProducerReport {
        &self.report
    }

    fn new_id(&mut self) -> String {
        self.sequence += 1;
        format!("evt-{:x}-{:08}", self.seed & 0xffff, self.sequence)
    }

    fn partition_of(&self, key: &str) -> i32 {
        (xxh3_64(key.as_bytes()) % self.partitions as u64) as i32
    }

    fn dlq(&mut self, reason: DlqReason) {
        *self
            .report
            .dlq
            .entry(reason.as_str().to_string())
            .or_insert(0) += 1;
    }

    /// The next message, with event time `now` (late ones are older).
    pub fn next_message(&mut self, now: DateTime<Utc>) -> GeneratedMessage {
        self.report.sent += 1;
        let roll = self.rng.unit();
        let mix = self.mix;
        if roll < mix.malformed {
            return self.malformed(now);
        }
        if roll < mix.malformed + mix.duplicate {
            // A retry comes soon after the original: well within the allowed
            // lateness, so the consumer sees a duplicate, not a late event.
            while self
                .recent
                .front()
                .is_some_and(|(time, _)| now - *time > RETRY_WINDOW)
            {
                self.recent.pop_front();
            }
            if !self.recent.is_empty() {
                let index = self.rng.index(self.recent.len());
                let mut message = self.recent[index].1.clone();
                if self.spread_copies && self.partitions > 1 {
                    let shift = 1 + self.rng.below(self.partitions as u64 - 1) as i32;
                    message.partition = (message.partition + shift) % self.partitions;
                }
                self.dlq(DlqReason::Duplicate);
                return message;
            }
        }
        if roll < mix.malformed + mix.duplicate + mix.late {
            let started: Vec<i32> = (0..self.partitions)
                .filter(|p| self.started[*p as usize])
                .collect();
            if !started.is_empty() {
                // An id of a partition that has counted an event, so that
                // the event is late there (the consumer's watermarks are per
                // partition of the id's hash).
                let mut id = self.new_id();
                while !self.started[self.partition_of(&id) as usize] {
                    id = self.new_id();
                }
                let partition = self.partition_of(&id);
                let (payload, _, _) = self.event_payload(&id, now - LATE_BY);
                self.dlq(DlqReason::Late);
                return GeneratedMessage {
                    partition,
                    key: id,
                    payload,
                };
            }
        }
        let id = self.new_id();
        let (payload, country, amount) = self.event_payload(&id, now);
        let partition = self.partition_of(&id);
        self.started[partition as usize] = true;
        let expected = self.report.by_country.entry(country).or_default();
        expected.total += amount;
        expected.count += 1;
        self.report.counted += 1;
        let message = GeneratedMessage {
            partition,
            key: id,
            payload,
        };
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((now, message.clone()));
        message
    }

    /// A well-formed event; returns the payload, standardized country, amount.
    fn event_payload(&mut self, id: &str, time: DateTime<Utc>) -> (Vec<u8>, String, f64) {
        let (client, pays) = self.customers[self.rng.index(self.customers.len())].clone();
        let (produit, price) = self.products[self.rng.index(self.products.len())].clone();
        let quantite = 1 + self.rng.below(20) as i64;
        let amount = ((price * quantite as f64) * 100.0).round() / 100.0;
        let payload = serde_json::json!({
            "event_id": id,
            "event_time": time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "pays": pays,
            "montant": amount,
            "quantite": quantite,
            "produit": produit,
            "client": client,
        });
        let country = standardize(Some(&pays)).name;
        (payload.to_string().into_bytes(), country, amount)
    }

    fn malformed(&mut self, now: DateTime<Utc>) -> GeneratedMessage {
        let id = self.new_id();
        let time = now.to_rfc3339();
        let kinds = [
            DlqReason::NotJson,
            DlqReason::MissingField,
            DlqReason::InvalidField,
            DlqReason::NegativeAmount,
            DlqReason::InvalidTime,
        ];
        let kind = kinds[self.rng.index(kinds.len())];
        let payload = match kind {
            DlqReason::NotJson => format!("{{\"event_id\": \"{id}\", \"pays\": "),
            DlqReason::MissingField => {
                format!(r#"{{"event_id":"{id}","event_time":"{time}","pays":"France"}}"#)
            }
            DlqReason::InvalidField => {
                format!(
                    r#"{{"event_id":"{id}","event_time":"{time}","pays":"France","montant":"douze"}}"#
                )
            }
            DlqReason::NegativeAmount => {
                format!(
                    r#"{{"event_id":"{id}","event_time":"{time}","pays":"France","montant":-12.5}}"#
                )
            }
            _ => format!(
                r#"{{"event_id":"{id}","event_time":"hier soir","pays":"France","montant":3}}"#
            ),
        };
        self.dlq(kind);
        let partition = self.partition_of(&id);
        GeneratedMessage {
            partition,
            key: id,
            payload: payload.into_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{PartitionState, TimeBounds};

    #[test]
    fn the_report_matches_what_the_consumer_logic_makes_of_the_messages() {
        let mix = EventMix {
            malformed: 0.1,
            duplicate: 0.1,
            late: 0.05,
        };
        let mut generator = EventGenerator::new(7, 3, mix).unwrap();
        let start = DateTime::parse_from_rfc3339("2026-11-26T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut states: Vec<PartitionState> = (0..3).map(PartitionState::new).collect();
        let mut offsets = [0i64; 3];
        for i in 0..3000 {
            let message = generator.next_message(start + ChronoDuration::milliseconds(i * 50));
            let p = message.partition as usize;
            states[p].apply(
                offsets[p],
                Some(&message.payload),
                TimeBounds::lateness(600_000_000),
            );
            offsets[p] += 1;
        }
        let report = generator.report();
        assert_eq!(report.sent, 3000);
        let live = crate::views::merge(states.iter());
        assert_eq!(live.by_country.len(), report.by_country.len());
        for (country, expected) in &report.by_country {
            let got = &live.by_country[country];
            assert_eq!(got.count, expected.count, "{country}");
            assert!(
                (got.amount - expected.total).abs() <= 1e-9 * expected.total,
                "{country}"
            );
        }
        let mut rejected: BTreeMap<String, u64> = BTreeMap::new();
        for state in &states {
            for (reason, count) in &state.rejected {
                *rejected.entry(reason.as_str().to_string()).or_insert(0) += count;
            }
        }
        assert_eq!(rejected, report.dlq);
        for reason in [
            "not_json",
            "missing_field",
            "invalid_field",
            "negative_amount",
            "invalid_time",
            "late",
            "duplicate",
        ] {
            assert!(
                report.dlq.get(reason).copied().unwrap_or(0) > 0,
                "no {reason}"
            );
        }
    }

    #[test]
    fn copies_spread_over_partitions_count_once_when_routed_by_event_id() {
        let mix = EventMix {
            malformed: 0.05,
            duplicate: 0.2,
            late: 0.05,
        };
        let mut generator = EventGenerator::new(9, 3, mix).unwrap().spreading_copies();
        let start = DateTime::parse_from_rfc3339("2026-11-26T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        // Routed: every message aggregated by the partition of its event id,
        // forwarded there when sent elsewhere. Unrouted: counted where it
        // was sent.
        let mut routed: Vec<PartitionState> = (0..3).map(PartitionState::new).collect();
        let mut unrouted: Vec<PartitionState> = (0..3).map(PartitionState::new).collect();
        let (mut source_offsets, mut internal_offsets) = ([0i64; 3], [0i64; 3]);
        let mut moved_copies = 0;
        for i in 0..3000 {
            let message = generator.next_message(start + ChronoDuration::milliseconds(i * 50));
            let p = message.partition as usize;
            let q = crate::route::route(Some(&message.payload), message.partition, 3).partition
                as usize;
            if p == q {
                routed[q].apply(
                    source_offsets[p],
                    Some(&message.payload),
                    TimeBounds::lateness(600_000_000),
                );
            } else {
                moved_copies += 1;
                routed[p].skip_forwarded(source_offsets[p]);
                routed[q].apply_routed(
                    internal_offsets[q],
                    (message.partition, source_offsets[p]),
                    Some(&message.payload),
                    TimeBounds::lateness(600_000_000),
                );
                internal_offsets[q] += 1;
            }
            unrouted[p].apply(
                source_offsets[p],
                Some(&message.payload),
                TimeBounds::lateness(600_000_000),
            );
            source_offsets[p] += 1;
        }
        let report = generator.report();
        let duplicates = report.dlq["duplicate"];
        // Every copy went to another partition than its original (malformed
        // messages without an id stay where they are, both agree there).
        assert_eq!(moved_copies, duplicates, "copies forwarded");
        let counted: u64 = routed.iter().map(|s| s.counted).sum();
        assert_eq!(counted, report.counted);
        let live = crate::views::merge(routed.iter());
        for (country, expected) in &report.by_country {
            assert_eq!(live.by_country[country].count, expected.count, "{country}");
        }
        // Without forwarding, copies on another partition count again.
        let unrouted_counted: u64 = unrouted.iter().map(|s| s.counted).sum();
        assert!(
            unrouted_counted > report.counted,
            "{unrouted_counted} counted per source partition, {} sent",
            report.counted
        );
    }

    #[test]
    fn same_seed_same_messages() {
        let now = Utc::now();
        let mut a = EventGenerator::new(1, 4, EventMix::default()).unwrap();
        let mut b = EventGenerator::new(1, 4, EventMix::default()).unwrap();
        for _ in 0..100 {
            assert_eq!(a.next_message(now), b.next_message(now));
        }
    }
}
