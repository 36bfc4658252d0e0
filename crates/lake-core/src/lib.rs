//! What every layer shares beyond the table format (`lake-table`):
//! configuration, the country standardization of the batch and streaming
//! paths, step inputs and the versions a run reads, the DAG runner, run
//! manifests and error classification. PostgreSQL access is `lake-pg`'s,
//! linked only by the crates that read or load a PostgreSQL database.
//!
//! Nothing here knows about a particular table: layer crates own their
//! transformations.

pub mod config;
pub mod country;
pub mod dag;
pub mod display;
pub mod error;
pub mod input;
pub mod pins;
pub mod run;
