//! Sources: each hands over messages one poll at a time to the loop that
//! runs micro-batches ([`crate::drive`]), and sees the processor it feeds
//! only through [`SourceContext`] (a Kafka consumer's rebalance callback
//! takes over and gives up partitions through it). Both sides of that
//! boundary, [`Source`] and [`SourceContext`], are in [`context`], below
//! the sources, the loop and the processor.
//!
//! [`Source`]: context::Source
//! [`SourceContext`]: context::SourceContext
//!
//! - [`kafka::KafkaSource`]: a consumer in a consumer group reading both
//!   lanes of each owned partition.
//! - [`embedded::EmbeddedSource`]: the built-in producer in process, for
//!   a lake with no Kafka.

pub mod context;
pub mod embedded;
pub mod kafka;
