//! Shared foundations of the lake: configuration, storage, the partition
//! commit protocol, Parquet I/O, PostgreSQL access and type mapping, and the
//! country standardization shared by the batch and streaming paths.
//!
//! Nothing here knows about a particular table: layer crates own their
//! transformations, this crate owns how data is stored and read.

pub mod config;
pub mod country;
pub mod dag;
pub mod display;
pub mod error;
pub mod fault;
pub mod input;
pub mod layer;
pub mod parquet;
pub mod partition;
pub mod pg;
pub mod pg_types;
pub mod run;
pub mod s3;
pub mod schema;
pub mod storage;
pub mod stream_status;

pub use layer::Layer;
pub use partition::{Manifest, PartitionRef, PartitionWriter};
pub use storage::Lake;
