//! Streaming: the sales events of the Kafka topic `ventes-temps-reel` into
//! bronze, a dead-letter queue and live gold views, with exactly-once
//! effects (data contract, section 6).
//!
//! Two stages, each fed by a consumer loop ([`consume`]):
//! - [`route::Router`] republishes every message of the source topic to
//!   the internal topic `{topic}.by-event-id`, to the partition of its
//!   `event_id`, so that all copies of an event meet in one partition;
//! - [`processor::Processor`] validates, deduplicates and aggregates each
//!   internal partition and writes bronze, the DLQ and the live views.
//!
//! The built-in producer in process feeds the processor directly (it sends
//! every copy to the partition of its id). Transforms are pure ([`event`],
//! [`state`], [`views`]); sinks are Delta commits carrying the stream's
//! transactions, and [`checkpoint`] holds where each partition of each
//! stage resumes.

pub mod checkpoint;
pub mod closed;
pub mod config;
pub mod consume;
pub mod event;
pub mod processor;
pub mod produce;
pub mod producer;
pub mod route;
pub mod run;
pub mod state;
pub mod status;
pub mod step;
pub mod stream_status;
pub mod views;
