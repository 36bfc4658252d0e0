//! Streaming: the sales events of the Kafka topic `ventes-temps-reel` into
//! bronze, a dead-letter queue and live gold views, with exactly-once
//! effects (data contract, section 6).
//!
//! Sources feed micro-batches to the [`processor::Processor`] under one
//! loop ([`drive`]): a Kafka consumer in a consumer group
//! ([`source::kafka`]), or the built-in producer in process
//! ([`source::embedded`]). Every copy of an event is aggregated
//! by its home partition, the one its `event_id` hashes to: partition `p`
//! reads source partition `p` directly, forwards the messages at home
//! elsewhere to the internal topic `{topic}.by-event-id`
//! ([`route::Forwarder`]), and reads internal partition `p` for the copies
//! other partitions forwarded to it ([`route`]). The processor validates,
//! deduplicates and aggregates, and writes bronze, the DLQ and the live
//! views. Transforms are pure ([`event`], [`state`], [`views`]); sinks are
//! Delta commits carrying the stream's transactions ([`sink`]), which
//! record what a crash must replay ([`replay`]), and [`checkpoint`] holds
//! where each partition resumes. A source sees the processor only through
//! [`source::context`].
//!
//! The run settings are in [`config`], the input's messages in
//! [`message`], the loops that run a query in [`runner`];
//! [`claim`] keeps a lake to one stream source; [`stream_run`] is a
//! `lake-stream run`'s run manifest; [`stream_status`] is the status a
//! query writes for serving and monitoring, [`live`] the live views and
//! counters a query resumes with, [`admin`] the operator's `status` and
//! `reset`;
//! [`generator`] makes sales events and [`produce`] sends them to Kafka.

pub mod admin;
pub mod checkpoint;
pub mod claim;
pub mod closed;
pub mod config;
pub mod drive;
pub mod event;
pub mod generator;
pub mod live;
pub mod message;
pub mod processor;
pub mod produce;
pub mod replay;
pub mod route;
pub mod runner;
pub mod sink;
pub mod source;
pub mod state;
pub mod step;
pub mod stream_run;
pub mod stream_status;
mod timer;
pub mod views;
