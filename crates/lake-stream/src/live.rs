//! The live views over every partition of the query: this process's
//! partitions from memory, the others' from their latest checkpoints, and
//! the windows each partition closed on the view's date ([`crate::closed`]).

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow};
use chrono::NaiveDate;
use lake_table::Lake;

use crate::checkpoint::CheckpointStore;
use crate::closed::{ClosedWindowStore, Windows};
use crate::state::PartitionState;
use crate::views::{LiveTotals, merge_with_closed};

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
