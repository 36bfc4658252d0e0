//! What every layer shares beyond the table format (`lake-table`):
//! configuration, PostgreSQL access and type mapping, the country
//! standardization of the batch and streaming paths, step inputs, the DAG
//! runner and run manifests.
//!
//! Nothing here knows about a particular table: layer crates own their
//! transformations.

pub mod config;
pub mod country;
pub mod dag;
pub mod display;
pub mod error;
pub mod input;
pub mod pg;
pub mod pg_copy;
pub mod pg_types;
pub mod pins;
pub mod run;
