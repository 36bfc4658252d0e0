//! The decoder of `COPY ... TO STDOUT (FORMAT binary)` streams into Polars
//! frames, each column built with the lake type the catalog gave it
//! ([`PgColumn`]).
//!
//! Bronze streams big tables through [`CopyDecoder`] in bounded batches: the
//! rows never exist as Rust structs, only as column builders.

use std::io::Read;

use anyhow::{Context, Result, anyhow, bail};
use polars::prelude::*;

use crate::catalog::PgColumn;

/// Days from 1970-01-01 (Polars) to 2000-01-01 (PostgreSQL).
const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

enum Builder {
    Bool(BooleanChunkedBuilder),
    Int16(PrimitiveChunkedBuilder<Int16Type>),
    Int32(PrimitiveChunkedBuilder<Int32Type>),
    Int64(PrimitiveChunkedBuilder<Int64Type>),
    Float32(PrimitiveChunkedBuilder<Float32Type>),
    Float64(PrimitiveChunkedBuilder<Float64Type>),
    Decimal(PrimitiveChunkedBuilder<Int128Type>, usize, usize),
    Text(StringChunkedBuilder),
    Bytes(BinaryChunkedBuilder),
    Date(PrimitiveChunkedBuilder<Int32Type>),
    Datetime(PrimitiveChunkedBuilder<Int64Type>, Option<TimeZone>),
}

impl Builder {
    fn new(column: &PgColumn, capacity: usize) -> Result<Builder> {
        let name = PlSmallStr::from(column.name.as_str());
        Ok(match &column.dtype {
            DataType::Boolean => Builder::Bool(BooleanChunkedBuilder::new(name, capacity)),
            DataType::Int16 => Builder::Int16(PrimitiveChunkedBuilder::new(name, capacity)),
            DataType::Int32 => Builder::Int32(PrimitiveChunkedBuilder::new(name, capacity)),
            DataType::Int64 => Builder::Int64(PrimitiveChunkedBuilder::new(name, capacity)),
            DataType::Float32 => Builder::Float32(PrimitiveChunkedBuilder::new(name, capacity)),
            DataType::Float64 => Builder::Float64(PrimitiveChunkedBuilder::new(name, capacity)),
            DataType::Decimal(p, s) => {
                Builder::Decimal(PrimitiveChunkedBuilder::new(name, capacity), *p, *s)
            }
            DataType::String => Builder::Text(StringChunkedBuilder::new(name, capacity)),
            DataType::Binary => Builder::Bytes(BinaryChunkedBuilder::new(name, capacity)),
            DataType::Date => Builder::Date(PrimitiveChunkedBuilder::new(name, capacity)),
            DataType::Datetime(_, tz) => {
                Builder::Datetime(PrimitiveChunkedBuilder::new(name, capacity), tz.clone())
            }
            other => bail!("column {}: no decoder for {other:?}", column.name),
        })
    }

    fn append_null(&mut self) {
        match self {
            Builder::Bool(b) => b.append_null(),
            Builder::Int16(b) => b.append_null(),
            Builder::Int32(b) | Builder::Date(b) => b.append_null(),
            Builder::Int64(b) | Builder::Datetime(b, _) => b.append_null(),
            Builder::Float32(b) => b.append_null(),
            Builder::Float64(b) => b.append_null(),
            Builder::Decimal(b, _, _) => b.append_null(),
            Builder::Text(b) => b.append_null(),
            Builder::Bytes(b) => b.append_null(),
        }
    }

    fn append(&mut self, value: &[u8]) -> Result<()> {
        match self {
            Builder::Bool(b) => b.append_value(fixed::<1>(value)?[0] != 0),
            Builder::Int16(b) => b.append_value(i16::from_be_bytes(fixed(value)?)),
            Builder::Int32(b) => b.append_value(i32::from_be_bytes(fixed(value)?)),
            Builder::Int64(b) => b.append_value(i64::from_be_bytes(fixed(value)?)),
            Builder::Float32(b) => b.append_value(f32::from_be_bytes(fixed(value)?)),
            Builder::Float64(b) => b.append_value(f64::from_be_bytes(fixed(value)?)),
            Builder::Decimal(b, _, scale) => b.append_value(decode_numeric(value, *scale)?),
            Builder::Text(b) => b.append_value(
                std::str::from_utf8(value).map_err(|err| anyhow!("invalid UTF-8 text: {err}"))?,
            ),
            Builder::Bytes(b) => b.append_value(value),
            Builder::Date(b) => {
                let days = i32::from_be_bytes(fixed(value)?);
                if days == i32::MAX || days == i32::MIN {
                    bail!("infinite date has no Polars equivalent");
                }
                b.append_value(days + PG_EPOCH_DAYS)
            }
            Builder::Datetime(b, _) => {
                let micros = i64::from_be_bytes(fixed(value)?);
                if micros == i64::MAX || micros == i64::MIN {
                    bail!("infinite timestamp has no Polars equivalent");
                }
                b.append_value(micros + PG_EPOCH_MICROS)
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<Column> {
        let series = match self {
            Builder::Bool(b) => b.finish().into_series(),
            Builder::Int16(b) => b.finish().into_series(),
            Builder::Int32(b) => b.finish().into_series(),
            Builder::Int64(b) => b.finish().into_series(),
            Builder::Float32(b) => b.finish().into_series(),
            Builder::Float64(b) => b.finish().into_series(),
            Builder::Decimal(b, precision, scale) => {
                b.finish().into_series().into_decimal(precision, scale)?
            }
            Builder::Text(b) => b.finish().into_series(),
            Builder::Bytes(b) => b.finish().into_series(),
            Builder::Date(b) => b.finish().into_series().into_date(),
            Builder::Datetime(b, tz) => b
                .finish()
                .into_series()
                .into_datetime(TimeUnit::Microseconds, tz),
        };
        Ok(series.into_column())
    }
}

fn fixed<const N: usize>(value: &[u8]) -> Result<[u8; N]> {
    value
        .try_into()
        .map_err(|_| anyhow!("expected {N} bytes, got {}", value.len()))
}

/// Decodes PostgreSQL's binary `numeric` into an integer scaled by
/// 10^`scale`, refusing to drop non-zero digits.
fn decode_numeric(value: &[u8], scale: usize) -> Result<i128> {
    if value.len() < 8 {
        bail!("numeric value too short ({} bytes)", value.len());
    }
    let ndigits = u16::from_be_bytes([value[0], value[1]]) as usize;
    let weight = i16::from_be_bytes([value[2], value[3]]) as i64;
    let sign = u16::from_be_bytes([value[4], value[5]]);
    if value.len() != 8 + 2 * ndigits {
        bail!(
            "numeric value has {} bytes for {ndigits} digits",
            value.len()
        );
    }
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => bail!("numeric NaN has no Decimal equivalent"),
        _ => bail!("numeric infinity has no Decimal equivalent"),
    }
    let mut total: i128 = 0;
    for i in 0..ndigits {
        let digit = u16::from_be_bytes([value[8 + 2 * i], value[9 + 2 * i]]) as i128;
        // This base-10000 digit is worth digit * 10^(4 * (weight - i)).
        let exponent = 4 * (weight - i as i64) + scale as i64;
        let contribution = if exponent >= 0 {
            10i128
                .checked_pow(exponent as u32)
                .and_then(|p| p.checked_mul(digit))
                .ok_or_else(|| anyhow!("numeric value overflows Decimal(38, {scale})"))?
        } else {
            let divisor = 10i128.pow((-exponent).min(4) as u32);
            if exponent <= -4 && digit != 0 || digit % divisor != 0 {
                bail!("numeric value has more than {scale} decimal places; it would be rounded");
            }
            if exponent <= -4 { 0 } else { digit / divisor }
        };
        total = total
            .checked_add(contribution)
            .ok_or_else(|| anyhow!("numeric value overflows Decimal(38, {scale})"))?;
    }
    Ok(if sign == 0x4000 { -total } else { total })
}

/// Streaming decoder of one table's binary COPY output.
pub struct CopyDecoder<R: Read> {
    reader: R,
    columns: Vec<PgColumn>,
    /// `schema.table`, for error messages.
    table: String,
    rows_read: u64,
    finished: bool,
    field: Vec<u8>,
}

impl<R: Read> CopyDecoder<R> {
    /// Reads and checks the COPY header.
    pub fn new(mut reader: R, table: &str, columns: Vec<PgColumn>) -> Result<Self> {
        let mut header = [0u8; 19];
        reader
            .read_exact(&mut header)
            .with_context(|| format!("{table}: reading the COPY header"))?;
        if &header[..11] != SIGNATURE {
            bail!("{table}: the COPY stream is not in PostgreSQL binary format");
        }
        let extension = u32::from_be_bytes([header[15], header[16], header[17], header[18]]);
        std::io::copy(
            &mut (&mut reader).take(extension as u64),
            &mut std::io::sink(),
        )
        .with_context(|| format!("{table}: reading the COPY header extension"))?;
        Ok(CopyDecoder {
            reader,
            columns,
            table: table.to_string(),
            rows_read: 0,
            finished: false,
            field: Vec::with_capacity(256),
        })
    }

    /// Rows decoded so far.
    pub fn rows_read(&self) -> u64 {
        self.rows_read
    }

    /// Reads the stream to its end once the last batch was given: the
    /// server's completion of the COPY (or its failure, a connection lost
    /// after the trailer) is seen only there. Bytes after the trailer are
    /// an error.
    pub fn finish(&mut self) -> Result<()> {
        if !self.finished {
            bail!(
                "{}: the copy stopped after {} rows, before its end",
                self.table,
                self.rows_read
            );
        }
        let mut rest = [0u8; 1];
        match self.reader.read(&mut rest) {
            Ok(0) => Ok(()),
            Ok(_) => bail!("{}: data after the end of the COPY", self.table),
            Err(err) => Err(err)
                .with_context(|| format!("{}: completing the COPY after its last row", self.table)),
        }
    }

    /// The next batch of at most `max_rows` rows; `None` after the last.
    pub fn next_batch(&mut self, max_rows: usize) -> Result<Option<DataFrame>> {
        if self.finished {
            return Ok(None);
        }
        let mut builders = self
            .columns
            .iter()
            .map(|c| Builder::new(c, max_rows))
            .collect::<Result<Vec<_>>>()?;
        let mut rows = 0usize;
        while rows < max_rows {
            let mut count = [0u8; 2];
            self.reader
                .read_exact(&mut count)
                .with_context(|| format!("{}: reading row {}", self.table, self.rows_read + 1))?;
            let count = i16::from_be_bytes(count);
            if count == -1 {
                self.finished = true;
                break;
            }
            if count as usize != self.columns.len() {
                bail!(
                    "{}: row {} has {count} fields, expected {}",
                    self.table,
                    self.rows_read + 1,
                    self.columns.len()
                );
            }
            for (builder, column) in builders.iter_mut().zip(&self.columns) {
                let (table, row) = (&self.table, self.rows_read + 1);
                let reading = || format!("{table}.{}: reading row {row}", column.name);
                let mut len = [0u8; 4];
                self.reader.read_exact(&mut len).with_context(reading)?;
                let len = i32::from_be_bytes(len);
                if len < 0 {
                    builder.append_null();
                    continue;
                }
                self.field.resize(len as usize, 0);
                self.reader
                    .read_exact(&mut self.field)
                    .with_context(reading)?;
                builder.append(&self.field).with_context(|| {
                    format!(
                        "{}.{} ({}), row {}",
                        self.table,
                        column.name,
                        column.pg_type,
                        self.rows_read + 1
                    )
                })?;
            }
            rows += 1;
            self.rows_read += 1;
        }
        if rows == 0 && self.finished && self.rows_read > 0 {
            return Ok(None);
        }
        let columns = builders
            .into_iter()
            .map(Builder::finish)
            .collect::<Result<Vec<_>>>()?;
        let df = DataFrame::new(rows, columns)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{}: assembling a batch", self.table))?;
        Ok(Some(df))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::polars_type;

    fn numeric(weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend((digits.len() as u16).to_be_bytes());
        out.extend(weight.to_be_bytes());
        out.extend(sign.to_be_bytes());
        out.extend(dscale.to_be_bytes());
        for d in digits {
            out.extend(d.to_be_bytes());
        }
        out
    }

    #[test]
    fn numeric_decoding() {
        // 12345.67 = digits [1, 2345, 6700], weight 1
        assert_eq!(
            decode_numeric(&numeric(1, 0, 2, &[1, 2345, 6700]), 2).unwrap(),
            1_234_567
        );
        assert_eq!(
            decode_numeric(&numeric(1, 0x4000, 2, &[1, 2345, 6700]), 4).unwrap(),
            -123_456_700
        );
        // 0.05 = digits [500], weight -1
        assert_eq!(decode_numeric(&numeric(-1, 0, 2, &[500]), 2).unwrap(), 5);
        assert!(decode_numeric(&numeric(-1, 0, 3, &[501]), 2).is_err());
        assert!(decode_numeric(&numeric(0, 0xC000, 0, &[]), 2).is_err());
        assert_eq!(decode_numeric(&numeric(0, 0, 0, &[]), 2).unwrap(), 0);
    }

    fn column(name: &str, pg_type: &str) -> PgColumn {
        PgColumn {
            name: name.into(),
            pg_type: pg_type.into(),
            typmod: -1,
            dtype: polars_type(pg_type, -1).unwrap(),
        }
    }

    fn copy_stream(rows: &[Vec<Option<Vec<u8>>>]) -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        out.extend(0u32.to_be_bytes());
        out.extend(0u32.to_be_bytes());
        for row in rows {
            out.extend((row.len() as i16).to_be_bytes());
            for field in row {
                match field {
                    None => out.extend((-1i32).to_be_bytes()),
                    Some(bytes) => {
                        out.extend((bytes.len() as i32).to_be_bytes());
                        out.extend(bytes);
                    }
                }
            }
        }
        out.extend((-1i16).to_be_bytes());
        out
    }

    #[test]
    fn decodes_batches_with_nulls() {
        let rows: Vec<Vec<Option<Vec<u8>>>> = (0..5i16)
            .map(|i| {
                vec![
                    Some(i.to_be_bytes().to_vec()),
                    if i % 2 == 0 {
                        None
                    } else {
                        Some(format!("r{i}").into_bytes())
                    },
                    Some(((i as i32) - PG_EPOCH_DAYS).to_be_bytes().to_vec()),
                    Some((0.5f32 * i as f32).to_be_bytes().to_vec()),
                ]
            })
            .collect();
        let bytes = copy_stream(&rows);
        let columns = vec![
            column("id", "int2"),
            column("label", "text"),
            column("day", "date"),
            column("price", "float4"),
        ];
        let mut decoder = CopyDecoder::new(bytes.as_slice(), "public.t", columns).unwrap();
        let first = decoder.next_batch(3).unwrap().unwrap();
        let second = decoder.next_batch(3).unwrap().unwrap();
        assert!(decoder.next_batch(3).unwrap().is_none());
        assert_eq!((first.height(), second.height()), (3, 2));
        let all = first.vstack(&second).unwrap();
        insta::assert_snapshot!(all.to_string());
    }

    #[test]
    fn corrupt_stream_names_table_column_and_row() {
        let rows = vec![vec![Some(vec![0u8, 1]), Some(b"\xff\xfe".to_vec())]];
        let bytes = copy_stream(&rows);
        let mut decoder = CopyDecoder::new(
            bytes.as_slice(),
            "public.t",
            vec![column("id", "int2"), column("label", "text")],
        )
        .unwrap();
        let err = format!("{:#}", decoder.next_batch(10).unwrap_err());
        assert!(
            err.starts_with("public.t.label (text), row 1: invalid UTF-8"),
            "{err}"
        );
    }

    #[test]
    fn empty_table_gives_one_empty_batch_with_schema() {
        let bytes = copy_stream(&[]);
        let mut decoder =
            CopyDecoder::new(bytes.as_slice(), "public.t", vec![column("id", "int8")]).unwrap();
        let batch = decoder.next_batch(10).unwrap().unwrap();
        assert_eq!(batch.height(), 0);
        assert_eq!(batch.schema().get("id"), Some(&DataType::Int64));
        assert!(decoder.next_batch(10).unwrap().is_none());
    }
}
