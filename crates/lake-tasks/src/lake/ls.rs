//! `cargo xtask lake ls [layer]`: each table's version, then its dates with
//! rows, files and size, as the latest snapshot (or the one at `--as-of`)
//! lists them.

use std::fmt::Write;

use anyhow::Result;
use lake_core::dag::group_digits;
use lake_table::{At, Lake, Layer, Table, TableRef};

use super::human_bytes;

/// The listing as text.
pub fn list(lake: &Lake, layers: &[Layer], at: At) -> Result<String> {
    let mut out = String::new();
    writeln!(out, "lake {}", lake.url())?;
    for layer in layers {
        writeln!(out, "\n{layer}  ({})", lake.describe(*layer, ""))?;
        for table in lake_table::tables(lake, *layer)? {
            let handle = Table::open(lake, TableRef::new(*layer, &table))?;
            let snapshot = match at {
                At::Latest => handle.latest()?,
                at => match handle.at(at) {
                    Ok(snapshot) => Some(snapshot),
                    Err(err) if lake_table::is_not_a_table(&err) => None,
                    Err(err) => return Err(err),
                },
            };
            let Some(snapshot) = snapshot else {
                continue;
            };
            let committed = snapshot
                .committed_at()
                .map(|t| format!("  committed {}", t.format("%Y-%m-%d %H:%M:%S UTC")))
                .unwrap_or_default();
            writeln!(out, "  {table}  v{}{committed}", snapshot.version())?;
            for (date, summary) in snapshot.date_summaries() {
                writeln!(
                    out,
                    "    {date}  {:>12} rows  {:>4} files  {:>10}",
                    group_digits(summary.rows),
                    summary.files,
                    human_bytes(summary.bytes),
                )?;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lake_table::DateWriter;
    use polars::prelude::*;

    #[test]
    fn lists_versions_dates_rows_and_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let date = chrono::NaiveDate::from_ymd_opt(2026, 2, 3).unwrap();
        for table in ["orders", "_rejects/sales_master"] {
            for run in ["r1", "r2"] {
                let mut writer =
                    DateWriter::new(&lake, TableRef::new(Layer::Silver, table), date, run).unwrap();
                writer
                    .write_frame(&mut df!("x" => [1i64, 2, 3]).unwrap())
                    .unwrap();
                writer.replace().unwrap();
            }
        }
        let text = list(&lake, &[Layer::Silver], At::Latest).unwrap();
        // Two commits (versions 0 and 1): the second replaced the date.
        assert!(text.contains("  orders  v1  committed "), "{text}");
        assert!(
            text.contains("    2026-02-03             3 rows     1 files"),
            "{text}"
        );
        assert!(text.contains("  _rejects/sales_master  v1"), "{text}");
        let first = list(&lake, &[Layer::Silver], At::Version(0)).unwrap();
        assert!(first.contains("  orders  v0"), "{first}");
    }
}
