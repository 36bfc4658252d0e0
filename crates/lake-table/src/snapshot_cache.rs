//! The latest state of the tables a long-running writer commits to, kept
//! between its commits: the next commit brings it up to date with the
//! versions written since (often none) instead of replaying the log from
//! its last checkpoint, which grows by a version per commit up to the next
//! checkpoint (delta-rs writes one every 100 versions).
//!
//! A cache belongs to one [`Lake`] handle ([`Lake::with_snapshot_cache`]):
//! a writer whose tables are not deleted or recreated while it runs (the
//! stream's outputs: `lake-stream reset` deletes them only once every run
//! of the query is stopped, as its instructions say; a running stream
//! holds its partitions' state in memory just the same). The cache is the
//! table layer's: the storage layer carries it on the handle without
//! knowing what it is.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use deltalake_core::table::state::DeltaTableState;

use crate::storage::Lake;
use crate::table::TableRef;

impl Lake {
    /// The same lake, through a handle that keeps the latest state of each
    /// table it loads or commits to, and brings it up to date on the next
    /// load (see [`crate::snapshot_cache`]). For a writer whose tables are
    /// not deleted or recreated while it runs.
    pub fn with_snapshot_cache(&self) -> Lake {
        self.with_attached(Arc::new(SnapshotCache::default()))
    }

    /// The handle's cache, when it was made by [`Lake::with_snapshot_cache`].
    pub(crate) fn snapshot_cache(&self) -> Option<&SnapshotCache> {
        self.attached::<SnapshotCache>()
    }
}

#[derive(Default)]
pub(crate) struct SnapshotCache {
    states: Mutex<HashMap<TableRef, DeltaTableState>>,
}

impl SnapshotCache {
    /// The state last seen of `table`, if any (cheap: its file list is
    /// shared, not copied).
    pub(crate) fn get(&self, table: &TableRef) -> Option<DeltaTableState> {
        self.states
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(table)
            .cloned()
    }

    /// Keeps `state` for `table` unless a newer one is kept already (two
    /// threads may load the same table).
    pub(crate) fn put(&self, table: &TableRef, state: DeltaTableState) {
        let mut states = self
            .states
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match states.get(table) {
            Some(kept) if kept.version() >= state.version() => {}
            _ => {
                states.insert(table.clone(), state);
            }
        }
    }
}
