//! Parquet encoding of Polars frames: Snappy, as the contract asks.

use std::io::{Cursor, Write};

use anyhow::{Context, Result};
use bytes::Bytes;
use polars::prelude::*;

/// Rows per row group: large enough for good compression, small enough that
/// a reader projecting a few columns does not pull much more than it needs.
pub const ROW_GROUP_ROWS: usize = 256 * 1024;

/// A Parquet writer with the lake's settings.
pub fn parquet_writer<W: Write>(writer: W) -> ParquetWriter<W> {
    ParquetWriter::new(writer)
        .with_compression(ParquetCompression::Snappy)
        .with_row_group_size(Some(ROW_GROUP_ROWS))
}

/// Encodes a whole frame as one Parquet file in memory.
pub fn encode(df: &mut DataFrame) -> Result<Vec<u8>> {
    let mut buffer = Vec::new();
    parquet_writer(&mut buffer)
        .finish(df)
        .map_err(anyhow::Error::from)
        .context("encoding a frame as Parquet")?;
    Ok(buffer)
}

/// Decodes a Parquet file held in memory, reading only `columns` when given.
pub fn decode(bytes: Bytes, columns: Option<&[String]>) -> Result<DataFrame> {
    let reader =
        ParquetReader::new(Cursor::new(bytes)).with_columns(columns.map(<[String]>::to_vec));
    reader
        .finish()
        .map_err(anyhow::Error::from)
        .context("decoding Parquet")
}
