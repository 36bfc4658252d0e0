//! What a source sees of the processor it feeds: the partitions it takes
//! over and gives up, and where each one's lanes are. A Kafka consumer's
//! rebalance callback reaches the processor through this alone; the
//! processor implements it ([`crate::processor::Processor`]).

use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Result;

use crate::message::Lane;

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
/// runs the micro-batches ([`crate::source::drive`]) and, for Kafka, with
/// the consumer's rebalance callback.
pub type SharedContext = Arc<Mutex<dyn SourceContext>>;

/// Locks `mutex`, poisoned or not.
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
