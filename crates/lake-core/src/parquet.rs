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

/// A reader that knows only an object's length and its footer: enough for
/// Parquet's metadata parser, which reads from the end.
struct FooterOnly {
    len: u64,
    footer: Bytes,
    position: u64,
}

impl std::io::Read for FooterOnly {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let footer_start = self.len - self.footer.len() as u64;
        if self.position >= self.len {
            return Ok(0);
        }
        let n = buf.len().min((self.len - self.position) as usize);
        for (i, byte) in buf[..n].iter_mut().enumerate() {
            let at = self.position + i as u64;
            *byte = if at >= footer_start {
                self.footer[(at - footer_start) as usize]
            } else {
                0
            };
        }
        self.position += n as u64;
        Ok(n)
    }
}

impl std::io::Seek for FooterOnly {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            std::io::SeekFrom::Start(n) => n as i128,
            std::io::SeekFrom::End(n) => self.len as i128 + n as i128,
            std::io::SeekFrom::Current(n) => self.position as i128 + n as i128,
        };
        if target < 0 {
            return Err(std::io::Error::other("seek before the start"));
        }
        self.position = target as u64;
        Ok(self.position)
    }
}

impl polars::io::mmap::MmapBytesReader for FooterOnly {}

/// Fetches byte ranges of one object.
pub type RangeFetch<'a> = &'a dyn Fn(&[std::ops::Range<u64>]) -> Result<Vec<Bytes>>;

/// Where to find a Parquet file.
pub enum ParquetSource<'a> {
    /// A file on the local disk: memory-mapped, so the pages of columns
    /// not read are never loaded.
    Local(&'a std::path::Path),
    /// An object fetched by ranges: `fetch(ranges)` returns their bytes.
    Ranged { len: u64, fetch: RangeFetch<'a> },
}

/// Reads `columns` of a Parquet file without fetching the others: the
/// footer first, then only the byte ranges of those columns' chunks, placed
/// in a zero-filled buffer of the file's size (untouched zero pages cost no
/// memory).
pub fn read_columns(source: ParquetSource<'_>, columns: &[String]) -> Result<DataFrame> {
    let (len, fetch) = match source {
        ParquetSource::Local(path) => {
            let file =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            return ParquetReader::new(file)
                .with_columns(Some(columns.to_vec()))
                .finish()
                .map_err(anyhow::Error::from)
                .with_context(|| format!("decoding {}", path.display()));
        }
        ParquetSource::Ranged { len, fetch } => (len, fetch),
    };
    if len < 12 {
        anyhow::bail!("not a Parquet file ({len} bytes)");
    }
    let tail = fetch(std::slice::from_ref(&(len - 8..len)))?.remove(0);
    if &tail[4..] != b"PAR1" {
        anyhow::bail!("not a Parquet file (no PAR1 at the end)");
    }
    let footer_len = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as u64 + 8;
    if footer_len > len {
        anyhow::bail!("corrupt Parquet footer");
    }
    let footer = fetch(std::slice::from_ref(&(len - footer_len..len)))?.remove(0);
    let mut probe = ParquetReader::new(FooterOnly {
        len,
        footer: footer.clone(),
        position: 0,
    });
    let metadata = probe
        .get_metadata()
        .map_err(anyhow::Error::from)
        .context("reading the Parquet footer")?
        .clone();
    let mut ranges: Vec<std::ops::Range<u64>> = Vec::new();
    for row_group in &metadata.row_groups {
        for column in columns {
            if let Some(chunks) = row_group.columns_under_root_iter(column) {
                ranges.extend(chunks.map(|chunk| chunk.byte_range()));
            }
        }
    }
    let parts = fetch(&ranges)?;
    let mut buffer = vec![0u8; len as usize];
    for (range, bytes) in ranges.iter().zip(&parts) {
        buffer[range.start as usize..range.start as usize + bytes.len()].copy_from_slice(bytes);
    }
    buffer[(len - footer_len) as usize..].copy_from_slice(&footer);
    let mut reader = ParquetReader::new(Cursor::new(buffer)).with_columns(Some(columns.to_vec()));
    reader.set_metadata(metadata);
    reader
        .finish()
        .map_err(anyhow::Error::from)
        .context("decoding Parquet")
}
