//! The live views over every partition of the query: this process's
//! partitions from memory, the others' from their latest checkpoints, and
//! the windows each partition closed on the view's date ([`crate::closed`]).
//! The query's counters in its status are those of the same partitions
//! ([`set_counters`]), so they always add up to the views' rows; a process
//! that starts has the checkpointed views and counters before its first
//! batch ([`checkpointed`]).

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow};
use chrono::{DateTime, NaiveDate, Utc};
use lake_table::Lake;

use crate::checkpoint::CheckpointStore;
use crate::closed::{ClosedWindowStore, Windows};
use crate::state::PartitionState;
use crate::stream_status::StreamStatus;
use crate::views::{LiveTotals, merge_with_closed};

/// The live views and the status of `query` as its checkpoints hold them,
/// before any new event: what a process starting on the query serves
/// first (`lake-stream run --serve`), the same the processor starts from
/// ([`crate::processor::Processor::resume`]). The status is `None` when
/// the query never saved one and counted nothing (it never ran).
pub fn checkpointed(lake: &Lake, query: &str) -> Result<(LiveTotals, Option<StreamStatus>)> {
    let mut views = LiveViews::new(lake, query);
    let totals = views
        .refresh(&BTreeMap::new(), Utc::now().date_naive())
        .with_context(|| format!("reading the checkpointed live views of query {query}"))?
        .clone();
    let status = match StreamStatus::load(lake, query)? {
        None if totals.events_consumed() == 0 => None,
        saved => Some(with_counters(saved, query, &totals)),
    };
    Ok((totals, status))
}

/// The status `query` last saved (its times and lag), else a new one, with
/// the counters of `totals`.
pub(crate) fn resumed_status(
    lake: &Lake,
    query: &str,
    totals: &LiveTotals,
) -> Result<StreamStatus> {
    Ok(with_counters(
        StreamStatus::load(lake, query)?,
        query,
        totals,
    ))
}

/// `saved`, else a new status of `query`, with the counters of `totals`.
fn with_counters(saved: Option<StreamStatus>, query: &str, totals: &LiveTotals) -> StreamStatus {
    let mut status = saved.unwrap_or_else(|| StreamStatus {
        query: query.to_string(),
        ..StreamStatus::default()
    });
    set_counters(&mut status, totals);
    status
}

/// Sets the status's counters to those of `totals`: the query's, over the
/// partitions the live views' rows come from, so `counted` is the sum of
/// the rows' transactions whichever process ran which batch.
pub(crate) fn set_counters(status: &mut StreamStatus, totals: &LiveTotals) {
    status.counted = totals.counted;
    status.events_consumed = totals.events_consumed();
    status.dlq = totals
        .rejected
        .iter()
        .map(|(reason, n)| (reason.as_str().to_string(), *n))
        .collect();
    if let Some(micros) = totals.last_event_time() {
        status.last_event_time = DateTime::from_timestamp_micros(micros).or(status.last_event_time);
    }
}

/// The live totals over every partition, and what they are merged from.
pub(crate) struct LiveViews {
    checkpoints: CheckpointStore,
    /// The partitions other processes own, as their last checkpoints said
    /// (read again only when a checkpoint changes).
    others: BTreeMap<i32, (String, PartitionState)>,
    closed_store: ClosedWindowStore,
    /// Each owned partition's closed windows of the latest view's date.
    closed: BTreeMap<i32, (NaiveDate, Windows)>,
    /// The other partitions' closed windows of the view's date, with their
    /// version tags (the date first).
    others_closed: BTreeMap<i32, (String, Windows)>,
    /// The live totals over every partition after the latest batch.
    live: LiveTotals,
}

impl LiveViews {
    pub(crate) fn new(lake: &Lake, query: &str) -> Self {
        LiveViews {
            checkpoints: CheckpointStore::new(lake, query),
            others: BTreeMap::new(),
            closed_store: ClosedWindowStore::new(lake, query),
            closed: BTreeMap::new(),
            others_closed: BTreeMap::new(),
            live: LiveTotals::default(),
        }
    }

    /// The live totals over every partition after the latest batch.
    pub(crate) fn totals(&self) -> &LiveTotals {
        &self.live
    }

    /// A partition given up: its closed windows are the next owner's.
    pub(crate) fn revoke(&mut self, partition: i32) {
        self.closed.remove(&partition);
    }

    /// Adds the windows each partition closed to its closed windows of
    /// `date` (the date whose live view the batch publishes), before the
    /// checkpoint: a replay closes the same windows with the same totals,
    /// written again as they are.
    pub(crate) fn save_closed_windows<'a>(
        &mut self,
        closed: impl Iterator<Item = (i32, &'a Windows)>,
        date: NaiveDate,
    ) -> Result<()> {
        for (partition, part_closed) in closed.filter(|(_, w)| !w.is_empty()) {
            let windows = closed_windows_of(&mut self.closed, &self.closed_store, partition, date)?;
            for (key, totals) in part_closed {
                windows.insert(key.clone(), totals.clone());
            }
            self.closed_store
                .save(partition, date, windows)
                .with_context(|| {
                    format!("saving the closed windows of partition {partition} for {date}")
                })?;
        }
        Ok(())
    }

    /// Merges the live totals again: this process's `states` from memory,
    /// the partitions other processes own from their latest checkpoints
    /// (a checkpoint is read again only when it was written since); the
    /// windows by minute are those still open and those closed on `date`.
    pub(crate) fn refresh(
        &mut self,
        states: &BTreeMap<i32, PartitionState>,
        date: NaiveDate,
    ) -> Result<&LiveTotals> {
        let mut others = BTreeMap::new();
        let mut others_closed = BTreeMap::new();
        for partition in states.keys().copied() {
            closed_windows_of(&mut self.closed, &self.closed_store, partition, date)?;
        }
        for partition in self.checkpoints.partitions()? {
            if states.contains_key(&partition) {
                continue;
            }
            let checkpoints = &self.checkpoints;
            let cached = self.others.remove(&partition);
            if let Some(entry) = reuse_or_load(cached, checkpoints.version_tag(partition)?, || {
                Ok(checkpoints.load(partition)?.map(|c| c.state))
            })? {
                others.insert(partition, entry);
            }
            let store = &self.closed_store;
            let tag = store
                .version_tag(partition, date)?
                .map(|tag| format!("{date}/{tag}"));
            let cached = self.others_closed.remove(&partition);
            if let Some(entry) =
                reuse_or_load(cached, tag, || store.load(partition, date).map(Some))?
            {
                others_closed.insert(partition, entry);
            }
        }
        self.others = others;
        self.others_closed = others_closed;
        let own = states
            .values()
            .map(|state| (state, self.closed.get(&state.partition).map(|(_, w)| w)));
        let others = self.others.iter().map(|(partition, (_, state))| {
            (state, self.others_closed.get(partition).map(|(_, w)| w))
        });
        self.live = merge_with_closed(own.chain(others));
        Ok(&self.live)
    }
}

/// An owned partition's closed windows of `date` in `closed`, loaded from
/// `store` when the date is not the one in memory.
fn closed_windows_of<'a>(
    closed: &'a mut BTreeMap<i32, (NaiveDate, Windows)>,
    store: &ClosedWindowStore,
    partition: i32,
    date: NaiveDate,
) -> Result<&'a mut Windows> {
    let stale = closed.get(&partition).is_none_or(|(d, _)| *d != date);
    if stale {
        closed.insert(partition, (date, store.load(partition, date)?));
    }
    closed
        .get_mut(&partition)
        .map(|(_, windows)| windows)
        .ok_or_else(|| anyhow!("partition {partition} has no closed windows in memory"))
}

/// The cached value when its version tag is still `tag`, else `load()`'s,
/// tagged; `None` when the object is gone (no tag) or loads as nothing.
/// Reading after taking the tag: a write in between is read now and read
/// again next time (the tag will not match).
fn reuse_or_load<V>(
    cached: Option<(String, V)>,
    tag: Option<String>,
    load: impl FnOnce() -> Result<Option<V>>,
) -> Result<Option<(String, V)>> {
    let Some(tag) = tag else {
        return Ok(None);
    };
    match cached {
        Some((cached_tag, value)) if cached_tag == tag => Ok(Some((tag, value))),
        _ => Ok(load()?.map(|value| (tag, value))),
    }
}
