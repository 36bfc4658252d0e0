//! The lake's table format: storage (`object_store` behind [`Lake`]), and
//! every table a Delta Lake table (data contract, section 2) written with
//! Polars and committed with delta-rs.
//!
//! - [`DateWriter`] writes one date of a table as Parquet files, then one
//!   commit replaces the date (`replaceWhere`) or appends to it (with the
//!   stream's transaction, skipped when already applied).
//! - [`Table`] opens a table's log; a [`Snapshot`] is one version of it
//!   (latest, by number or by time), scanned lazily with Polars.
//! - [`replace_all`] replaces a date in several tables: every commit
//!   lands, or those made are undone.
//! - [`restore::restore_version`] brings a table back to an earlier
//!   version in one commit (Delta's `RESTORE`).
//! - [`maintenance`] compacts small files and vacuums removed ones;
//!   [`history`] lists commits.

pub mod all_or_none;
mod commit;
mod delta_types;
pub mod error;
pub mod fault;
pub mod history;
pub mod layer;
pub mod maintenance;
pub mod parquet;
pub mod read;
pub mod restore;
pub mod s3;
pub mod schema;
pub mod snapshot;
pub mod snapshot_cache;
mod stats;
pub mod storage;
pub mod table;
mod view_dictionary;
pub mod writer;

pub use all_or_none::replace_all;
pub use commit::{Commit, STREAM_LOG_RETENTION, Txn};
pub use layer::Layer;
pub use read::{read_date, read_latest_date, tables};
pub use snapshot::{
    At, DateAsked, DateSummary, DeltaField, FileEntry, NotYetCreated, Snapshot, TableDescription,
    is_not_a_table,
};
pub use storage::Lake;
pub use table::{PARTITION_COLUMN, Table, TableRef, valid_table_name};
pub use writer::{AppendOutcome, DateWriter, ParquetFileWriter};
