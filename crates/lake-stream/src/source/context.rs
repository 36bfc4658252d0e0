//! The boundary between a source and the processor it feeds, both ways:
//! [`Source`], what the loop ([`crate::drive::drive`]) sees of a source,
//! and [`SourceContext`], what a source sees of the processor: the
//! partitions it takes over and gives up, and where each one's lanes are.
//! A Kafka consumer's rebalance callback reaches the processor through
//! this alone; the processor implements it
//! ([`crate::processor::Processor`]).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};

use crate::message::{Lane, SourceMessage};

/// Messages behind the source's ends, when it knows them.
pub type Lag = Option<i64>;

/// Where micro-batches' messages come from.
pub trait Source {
    /// Names the source in logs and errors.
    fn name(&self) -> &str;

    /// The next message, or `None` when none came within `wait`.
    fn poll(&mut self, wait: Duration) -> Result<Option<SourceMessage>>;

    /// Every owned partition's messages up to the source's end (as far as
    /// it knows it now) are processed or in `buffer`.
    fn at_end(&mut self, buffer: &[SourceMessage]) -> bool;

    /// For available-now, between batches: the run is complete. May move
    /// the end on (a source whose processing produces more input). `carried`:
    /// the messages the processor holds back for a later batch; when it
    /// holds none and `buffer` is empty, every message forwarded is
    /// acknowledged.
    fn finished(&mut self, buffer: &[SourceMessage], carried: usize) -> Result<bool>;

    /// After each micro-batch (offsets reported to the source); the lag
    /// when the source has a new reading of it.
    fn after_batch(&mut self) -> Result<Option<Lag>> {
        Ok(None)
    }

    /// The processing time of the micro-batch about to run, taken once per
    /// batch: events more than the allowed clock skew ahead of it are from
    /// the future. The wall clock, unless the source simulates time.
    fn processing_time(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Where an owned partition resumes in each lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    pub source: i64,
    pub internal: i64,
}

/// The processor as a source sees it.
pub trait SourceContext: Send {
    /// Takes ownership of a partition; returns the offsets to read from.
    fn assign(&mut self, partition: i32) -> Result<Resume>;

    /// Gives a partition up (its unprocessed messages are dropped: the
    /// next owner reads them again).
    fn revoke(&mut self, partition: i32);

    /// The next offset to process in each lane of each owned partition.
    fn positions(&self) -> Vec<(Lane, i32, i64)>;
}

/// A source's handle on the processor it feeds, shared with the loop that
/// runs the micro-batches ([`crate::drive::drive`]) and, for Kafka, with
/// the consumer's rebalance callback.
pub type SharedContext = Arc<Mutex<dyn SourceContext>>;

/// Locks `mutex`, poisoned or not.
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
