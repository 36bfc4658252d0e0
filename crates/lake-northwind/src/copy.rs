//! PostgreSQL `COPY … FROM STDIN` text-format encoding of a frame.

use std::io::Write;

use anyhow::{Context, Result, bail};
use polars::prelude::*;

use crate::calendar::civil_from_days;

/// Rows are flushed to the writer whenever the buffer reaches this size.
const CHUNK_BYTES: usize = 1 << 20;

/// Typed view of one column.
enum Cells<'a> {
    Bool(&'a BooleanChunked),
    I16(&'a Int16Chunked),
    I32(&'a Int32Chunked),
    I64(&'a Int64Chunked),
    F32(&'a Float32Chunked),
    F64(&'a Float64Chunked),
    Str(&'a StringChunked),
    Bin(&'a BinaryChunked),
    /// Days since 1970-01-01.
    Date(&'a Int32Chunked),
}

impl<'a> Cells<'a> {
    fn new(column: &'a Column) -> Result<Self> {
        let s = column.as_materialized_series();
        Ok(match s.dtype() {
            DataType::Boolean => Cells::Bool(s.bool()?),
            DataType::Int16 => Cells::I16(s.i16()?),
            DataType::Int32 => Cells::I32(s.i32()?),
            DataType::Int64 => Cells::I64(s.i64()?),
            DataType::Float32 => Cells::F32(s.f32()?),
            DataType::Float64 => Cells::F64(s.f64()?),
            DataType::String => Cells::Str(s.str()?),
            DataType::Binary => Cells::Bin(s.binary()?),
            DataType::Date => Cells::Date(s.date()?.physical()),
            other => bail!(
                "column {}: type {other} is not supported by the COPY encoder",
                column.name()
            ),
        })
    }

    /// Appends the COPY text of row `i` (`\N` for null).
    fn write(&self, i: usize, buf: &mut Vec<u8>) -> Result<()> {
        macro_rules! or_null {
            ($opt:expr, $v:ident => $body:expr) => {
                match $opt {
                    None => buf.extend_from_slice(b"\\N"),
                    Some($v) => $body,
                }
            };
        }
        match self {
            Cells::Bool(ca) => {
                or_null!(ca.get(i), v => buf.extend_from_slice(if v { b"t" } else { b"f" }))
            }
            Cells::I16(ca) => or_null!(ca.get(i), v => write!(buf, "{v}")?),
            Cells::I32(ca) => or_null!(ca.get(i), v => write!(buf, "{v}")?),
            Cells::I64(ca) => or_null!(ca.get(i), v => write!(buf, "{v}")?),
            Cells::F32(ca) => {
                or_null!(ca.get(i), v => write_float(buf, f64::from(v), || format!("{v}")))
            }
            Cells::F64(ca) => or_null!(ca.get(i), v => write_float(buf, v, || format!("{v}"))),
            Cells::Str(ca) => or_null!(ca.get(i), v => escape_text(buf, v)),
            Cells::Bin(ca) => or_null!(ca.get(i), v => write_bytea(buf, v)),
            Cells::Date(ca) => or_null!(ca.get(i), v => write_date(buf, v)?),
        }
        Ok(())
    }
}

/// Finite floats in Rust's shortest round-trip form (which PostgreSQL parses back to the
/// same value), the others as PostgreSQL spells them.
fn write_float(buf: &mut Vec<u8>, v: f64, shortest: impl FnOnce() -> String) {
    if v.is_nan() {
        buf.extend_from_slice(b"NaN");
    } else if v == f64::INFINITY {
        buf.extend_from_slice(b"Infinity");
    } else if v == f64::NEG_INFINITY {
        buf.extend_from_slice(b"-Infinity");
    } else {
        buf.extend_from_slice(shortest().as_bytes());
    }
}

/// Text with COPY's escapes for backslash, tab, newline and carriage return.
fn escape_text(buf: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        match b {
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            _ => buf.push(b),
        }
    }
}

/// `bytea` in hex format, its backslash escaped for COPY: `\\x0a1b…`.
fn write_bytea(buf: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    buf.extend_from_slice(b"\\\\x");
    for &b in bytes {
        buf.push(HEX[usize::from(b >> 4)]);
        buf.push(HEX[usize::from(b & 0x0f)]);
    }
}

/// `YYYY-MM-DD` (years 1 to 9999 only).
fn write_date(buf: &mut Vec<u8>, days: i32) -> Result<()> {
    let (y, m, d) = civil_from_days(days);
    if !(1..=9999).contains(&y) {
        bail!("date {y:04}-{m:02}-{d:02} is outside the years 1 to 9999");
    }
    write!(buf, "{y:04}-{m:02}-{d:02}")?;
    Ok(())
}

/// Writes `df` to `out` in PostgreSQL's `COPY … FROM STDIN` text format (tab-separated,
/// `\N` for null, backslash/tab/newline/CR escaped, `bytea` as `\\x` hex, dates as
/// `YYYY-MM-DD`), in chunks of about 1 MiB. Columns are written in frame order. Returns the
/// number of rows written.
pub fn write_copy_text<W: Write>(df: &DataFrame, out: &mut W) -> Result<u64> {
    let mut df = df.clone();
    df.rechunk_mut();
    let cells = df
        .columns()
        .iter()
        .map(Cells::new)
        .collect::<Result<Vec<_>>>()?;
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK_BYTES + 4096);
    for i in 0..df.height() {
        for (j, c) in cells.iter().enumerate() {
            if j > 0 {
                buf.push(b'\t');
            }
            c.write(i, &mut buf)
                .with_context(|| format!("row {i}, column {}", df.columns()[j].name()))?;
        }
        buf.push(b'\n');
        if buf.len() >= CHUNK_BYTES {
            out.write_all(&buf).context("writing COPY data")?;
            buf.clear();
        }
    }
    if !buf.is_empty() {
        out.write_all(&buf).context("writing COPY data")?;
    }
    Ok(df.height() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_every_type_and_escape() -> Result<()> {
        let df = DataFrame::new_infer_height(vec![
            Series::new("i".into(), [Some(-3i16), None]).into_column(),
            Series::new("f".into(), [Some(18.4f32), Some(f32::NEG_INFINITY)]).into_column(),
            Series::new("s".into(), [Some("a\\b\tc\nd\re"), None]).into_column(),
            Series::new("b".into(), [Some(&[0x00u8, 0xAB, 0x5C][..]), None]).into_column(),
            Int32Chunked::new(
                "d".into(),
                [Some(crate::calendar::days_from_civil(1996, 7, 4)), None],
            )
            .into_date()
            .into_series()
            .into_column(),
        ])?;
        let mut out = Vec::new();
        assert_eq!(write_copy_text(&df, &mut out)?, 2);
        assert_eq!(
            String::from_utf8(out)?,
            "-3\t18.4\ta\\\\b\\tc\\nd\\re\t\\\\x00ab5c\t1996-07-04\n\
             \\N\t-Infinity\t\\N\t\\N\t\\N\n"
        );
        Ok(())
    }

    #[test]
    fn rejects_unsupported_types() {
        let df = DataFrame::new_infer_height(vec![Series::new("u".into(), [1u32]).into_column()]);
        let err = df
            .map_err(anyhow::Error::from)
            .and_then(|df| write_copy_text(&df, &mut Vec::new()));
        assert!(err.is_err());
    }
}
