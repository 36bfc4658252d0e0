//! Counters of the SQL queries, for `/metrics`: running, stopped (by
//! reason) and refused for want of a slot.

use std::sync::atomic::{AtomicU64, Ordering};

use super::exec::StopReason;

/// Counters of the SQL queries, for `/metrics`.
#[derive(Debug, Default)]
pub struct SqlStats {
    running: AtomicU64,
    stopped: [AtomicU64; 3],
    refused_busy: AtomicU64,
}

/// What [`SqlStats`] counted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SqlCounts {
    /// Queries whose work has not ended (asked to stop or not).
    pub running: u64,
    /// Queries asked to stop, by reason.
    pub stopped: Vec<(&'static str, u64)>,
    /// Queries refused because every slot was taken.
    pub refused_busy: u64,
}

impl SqlStats {
    pub fn counts(&self) -> SqlCounts {
        SqlCounts {
            running: self.running.load(Ordering::Acquire),
            stopped: [
                StopReason::TimeLimit,
                StopReason::MemoryLimit,
                StopReason::ClientGone,
            ]
            .into_iter()
            .map(|reason| {
                (
                    reason.label(),
                    self.stopped_counter(reason).load(Ordering::Relaxed),
                )
            })
            .collect(),
            refused_busy: self.refused_busy.load(Ordering::Relaxed),
        }
    }

    /// Counts a query asked to stop for `reason`.
    pub(crate) fn count_stopped(&self, reason: StopReason) {
        self.stopped_counter(reason).fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a query refused because every slot was taken.
    pub(crate) fn count_refused_busy(&self) {
        self.refused_busy.fetch_add(1, Ordering::Relaxed);
    }

    fn stopped_counter(&self, reason: StopReason) -> &AtomicU64 {
        &self.stopped[match reason {
            StopReason::TimeLimit => 0,
            StopReason::MemoryLimit => 1,
            StopReason::ClientGone => 2,
        }]
    }
}

/// Counts a query as running while it lives: made on the blocking thread
/// before the work, dropped when it ends, panic or not.
pub(crate) struct Running<'a>(&'a SqlStats);

impl<'a> Running<'a> {
    pub(crate) fn enter(stats: &'a SqlStats) -> Self {
        stats.running.fetch_add(1, Ordering::AcqRel);
        Running(stats)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}
