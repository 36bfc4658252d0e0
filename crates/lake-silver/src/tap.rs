//! Handing sales_master's lines on in memory as silver writes them, so that
//! a later step of the same run (gold) does not read back what silver just
//! wrote, and does its work on each slice while silver classifies the next.

use lake_core::run::TableVersion;
use polars::prelude::DataFrame;

/// Receives silver/sales_master's lines while a silver step writes them.
/// Lines it receives count only once [`SalesTap::committed`] says they were
/// committed: a failed attempt never gets that far, and the next attempt
/// starts with [`SalesTap::begin`].
pub trait SalesTap: Send + Sync {
    /// An attempt starts: whatever an earlier attempt handed over is void.
    fn begin(&self);
    /// One slice of the valid lines, with every column of sales_master, as
    /// written (before the storage casts). Slices are disjoint ranges of
    /// order keys, handed over one after another. Whatever goes wrong is
    /// the tap's to handle: silver's work does not depend on it.
    fn slice(&self, sales: &DataFrame);
    /// The slices handed over since [`SalesTap::begin`] are exactly the
    /// `rows` lines of the date and version `written` of sales_master.
    fn committed(&self, written: TableVersion, rows: u64);
}
