//! Parquet settings of the lake's data files: Snappy, as the contract asks.

use std::io::Write;

use polars::prelude::*;

/// Rows per row group: large enough for good compression, small enough that
/// a reader projecting a few columns does not pull much more than it needs.
pub const ROW_GROUP_ROWS: usize = 256 * 1024;

/// A Parquet writer with the lake's settings (Polars keeps min, max and
/// null counts per row group by default, so readers can skip row groups).
pub fn parquet_writer<W: Write>(writer: W) -> ParquetWriter<W> {
    ParquetWriter::new(writer)
        .with_compression(ParquetCompression::Snappy)
        .with_row_group_size(Some(ROW_GROUP_ROWS))
}
