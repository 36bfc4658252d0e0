//! Streaming: the sales events of the Kafka topic `ventes-temps-reel` into
//! bronze, a dead-letter queue and live gold views, with exactly-once
//! effects (data contract, section 6).
//!
//! Sources (Kafka, or the built-in producer in process) feed
//! [`processor::Processor`]; transforms are pure ([`event`], [`state`],
//! [`views`]); sinks go through lake-core's commit protocol, and
//! [`checkpoint`] holds where each partition resumes.

pub mod checkpoint;
pub mod config;
pub mod event;
pub mod processor;
pub mod produce;
pub mod producer;
pub mod run;
pub mod state;
pub mod status;
pub mod step;
pub mod views;
