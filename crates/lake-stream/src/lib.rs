//! Streaming: the sales events of the Kafka topic `ventes-temps-reel` into
//! bronze, a dead-letter queue and live gold views, with exactly-once
//! effects (data contract, section 6).
//!
//! Sources feed micro-batches to the [`processor::Processor`] under one
//! loop ([`source::drive`]): a Kafka consumer in a consumer group
//! ([`source::kafka`]), or the built-in producer in process
//! ([`source::embedded`]). Every copy of an event is aggregated
//! by its home partition, the one its `event_id` hashes to: partition `p`
//! reads source partition `p` directly, forwards the messages at home
//! elsewhere to the internal topic `{topic}.by-event-id`
//! ([`route::Forwarder`]), and reads internal partition `p` for the copies
//! other partitions forwarded to it ([`route`]). The processor validates,
//! deduplicates and aggregates, and writes bronze, the DLQ and the live
//! views. Transforms are pure ([`event`], [`state`], [`views`]); sinks are
//! Delta commits carrying the stream's transactions, and [`checkpoint`]
//! holds where each partition resumes.

pub mod checkpoint;
pub mod closed;
pub mod config;
pub mod event;
pub mod processor;
pub mod produce;
pub mod producer;
pub mod route;
pub mod run;
pub mod source;
pub mod state;
pub mod status;
pub mod step;
pub mod stream_status;
pub mod views;
