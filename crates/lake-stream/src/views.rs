//! The live views: per-partition aggregates merged into
//! `live_sales_by_country` and `live_sales_by_minute` (data contract,
//! section 6).

use std::collections::BTreeMap;

use polars::prelude::*;

use crate::closed::Windows;
use crate::event::DlqReason;
use crate::state::{MINUTE_MICROS, PartitionState, Sum, Totals};

/// Merged totals of several partitions. Partitions are added in partition
/// order, so the result does not depend on which process owns which.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveTotals {
    pub by_country: BTreeMap<String, MergedTotals>,
    pub by_minute: BTreeMap<(i64, String), MergedTotals>,
    /// Events counted, over the same partitions as the rows: the sum of
    /// `by_country`'s counts (each counted event adds one to one country).
    pub counted: u64,
    /// Messages sent to the DLQ, by reason, over the same partitions.
    pub rejected: BTreeMap<DlqReason, u64>,
}

impl LiveTotals {
    /// Messages processed: counted or sent to the DLQ.
    pub fn events_consumed(&self) -> u64 {
        self.counted + self.rejected.values().sum::<u64>()
    }

    /// The latest event time counted, microseconds; `None` before the first.
    pub fn last_event_time(&self) -> Option<i64> {
        self.by_country.values().map(|t| t.last_event_time).max()
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct MergedTotals {
    pub amount: f64,
    pub count: u64,
    pub last_event_time: i64,
}

fn merge_into<K: Ord + Clone>(
    target: &mut BTreeMap<K, (Sum, u64, i64)>,
    source: &BTreeMap<K, Totals>,
) {
    for (key, totals) in source {
        let entry = target.entry(key.clone()).or_default();
        entry.0.add(totals.amount.value());
        entry.1 += totals.count;
        entry.2 = entry.2.max(totals.last_event_time);
    }
}

fn finish<K: Ord>(merged: BTreeMap<K, (Sum, u64, i64)>) -> BTreeMap<K, MergedTotals> {
    merged
        .into_iter()
        .map(|(key, (amount, count, last))| {
            (
                key,
                MergedTotals {
                    amount: amount.value(),
                    count,
                    last_event_time: last,
                },
            )
        })
        .collect()
}

/// Merges partition states (any order given; merged in partition order).
pub fn merge<'a>(states: impl IntoIterator<Item = &'a PartitionState>) -> LiveTotals {
    merge_with_closed(states.into_iter().map(|state| (state, None)))
}

/// Merges partition states and the windows each has closed on the view's
/// date (any order given; merged in partition order, a partition's closed
/// windows before its open ones: a window is one or the other).
pub fn merge_with_closed<'a>(
    parts: impl IntoIterator<Item = (&'a PartitionState, Option<&'a Windows>)>,
) -> LiveTotals {
    let mut parts: Vec<(&PartitionState, Option<&Windows>)> = parts.into_iter().collect();
    parts.sort_by_key(|(s, _)| s.partition);
    let mut by_country = BTreeMap::new();
    let mut by_minute = BTreeMap::new();
    let mut counted = 0;
    let mut rejected = BTreeMap::new();
    for (state, closed) in parts {
        merge_into(&mut by_country, &state.by_country);
        if let Some(closed) = closed {
            merge_into(&mut by_minute, closed);
        }
        merge_into(&mut by_minute, &state.by_minute);
        counted += state.counted;
        for (reason, n) in &state.rejected {
            *rejected.entry(*reason).or_insert(0) += n;
        }
    }
    LiveTotals {
        by_country: finish(by_country),
        by_minute: finish(by_minute),
        counted,
        rejected,
    }
}

fn datetime_column(name: &str, micros: Vec<i64>) -> PolarsResult<Column> {
    Ok(Series::new(name.into(), micros)
        .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
        .into_column())
}

impl LiveTotals {
    /// `live_sales_by_country`: pays, total_ventes_live, nb_transactions,
    /// last_event_time; one row per standardized country, sorted.
    pub fn by_country_frame(&self) -> PolarsResult<DataFrame> {
        let rows = &self.by_country;
        DataFrame::new(
            rows.len(),
            vec![
                Column::new("pays".into(), rows.keys().cloned().collect::<Vec<_>>()),
                Column::new(
                    "total_ventes_live".into(),
                    rows.values().map(|t| t.amount).collect::<Vec<_>>(),
                ),
                Column::new(
                    "nb_transactions".into(),
                    rows.values().map(|t| t.count as i64).collect::<Vec<_>>(),
                ),
                datetime_column(
                    "last_event_time",
                    rows.values().map(|t| t.last_event_time).collect(),
                )?,
            ],
        )
    }

    /// `live_sales_by_minute`: window_start, window_end, pays, total_ventes,
    /// nb_transactions; one row per 1-minute window and country.
    pub fn by_minute_frame(&self) -> PolarsResult<DataFrame> {
        let rows = &self.by_minute;
        DataFrame::new(
            rows.len(),
            vec![
                datetime_column(
                    "window_start",
                    rows.keys().map(|(start, _)| *start).collect(),
                )?,
                datetime_column(
                    "window_end",
                    rows.keys()
                        .map(|(start, _)| start + MINUTE_MICROS)
                        .collect(),
                )?,
                Column::new(
                    "pays".into(),
                    rows.keys()
                        .map(|(_, pays)| pays.clone())
                        .collect::<Vec<_>>(),
                ),
                Column::new(
                    "total_ventes".into(),
                    rows.values().map(|t| t.amount).collect::<Vec<_>>(),
                ),
                Column::new(
                    "nb_transactions".into(),
                    rows.values().map(|t| t.count as i64).collect::<Vec<_>>(),
                ),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use lake_core::display::render;

    use super::*;
    use crate::state::TimeBounds;

    fn state(partition: i32, events: &[(&str, &str, &str, f64)]) -> PartitionState {
        let mut state = PartitionState::new(partition);
        for (offset, (id, time, pays, montant)) in events.iter().enumerate() {
            let json = format!(
                r#"{{"event_id":"{id}","event_time":"{time}","pays":"{pays}","montant":{montant}}}"#
            );
            state.apply(
                offset as i64,
                Some(json.as_bytes()),
                TimeBounds::lateness(600_000_000),
            );
        }
        state
    }

    fn two_partitions() -> (PartitionState, PartitionState) {
        (
            state(
                0,
                &[
                    ("a", "2026-11-26T10:00:10Z", "France", 10.0),
                    ("b", "2026-11-26T10:01:00Z", "USA", 2.5),
                ],
            ),
            state(
                1,
                &[
                    ("c", "2026-11-26T10:00:50Z", "Royaume-Uni", 4.0),
                    ("d", "2026-11-26T10:00:55Z", "france", 1.25),
                ],
            ),
        )
    }

    #[test]
    fn merged_views() {
        let (p0, p1) = two_partitions();
        let live = merge([&p1, &p0]);
        insta::assert_snapshot!("by_country", render(&live.by_country_frame().unwrap()));
        insta::assert_snapshot!("by_minute", render(&live.by_minute_frame().unwrap()));
        // The merge does not depend on the order states are given in.
        assert_eq!(live, merge([&p0, &p1]));
    }

    #[test]
    fn the_counters_are_those_of_the_rows() {
        let (mut p0, p1) = two_partitions();
        // A duplicate of "a": rejected, not counted.
        p0.apply(
            2,
            Some(
                &br#"{"event_id":"a","event_time":"2026-11-26T10:00:10Z","pays":"France","montant":10.0}"#[..],
            ),
            TimeBounds::lateness(600_000_000),
        );
        let live = merge([&p0, &p1]);
        let rows: u64 = live.by_country.values().map(|t| t.count).sum();
        assert_eq!((live.counted, rows), (4, 4));
        assert_eq!(live.rejected, BTreeMap::from([(DlqReason::Duplicate, 1)]));
        assert_eq!(live.events_consumed(), 5);
        assert_eq!(
            live.last_event_time().map(crate::state::micros_to_rfc3339),
            Some("2026-11-26T10:01:00+00:00".to_string())
        );
        assert_eq!(merge([]).last_event_time(), None);
    }

    #[test]
    fn closed_windows_join_the_open_ones() {
        let (mut p0, p1) = two_partitions();
        // p0 closes its 10:00 window (France 10.0): the merged view is the
        // same, the window coming from the closed ones.
        let before = merge([&p0, &p1]);
        let ten = p0.by_minute.keys().next().unwrap().clone();
        let closed: Windows = p0.by_minute.remove_entry(&ten).into_iter().collect();
        let after = merge_with_closed([(&p0, Some(&closed)), (&p1, None)]);
        assert_eq!(after, before);
        // 10:00 France: 10.0 from p0's closed windows, 1.25 from p1.
        let france = &after.by_minute[&(ten.0, "France".to_string())];
        assert_eq!((france.amount, france.count), (11.25, 2));
        // Without the closed windows the view would miss them.
        assert_ne!(merge([&p0, &p1]), before);
    }

    #[test]
    fn no_events_give_empty_views_with_their_schema() {
        let live = merge([]);
        let frame = live.by_country_frame().unwrap();
        assert_eq!(frame.height(), 0);
        assert_eq!(
            frame.get_column_names(),
            [
                "pays",
                "total_ventes_live",
                "nb_transactions",
                "last_event_time"
            ]
        );
    }
}
