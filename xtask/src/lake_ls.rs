//! `cargo xtask lake ls [layer]`: tables, partitions, rows and sizes of a
//! lake, local or on S3, as its `_SUCCESS` manifests describe them.

use std::fmt::Write;

use anyhow::Result;
use lake_core::dag::group_digits;
use lake_core::partition::{committed_dates, read_manifest, tables};
use lake_core::{Lake, Layer, PartitionRef};

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The listing as text.
pub fn list(lake: &Lake, layers: &[Layer]) -> Result<String> {
    let mut out = String::new();
    writeln!(out, "lake {}", lake.url())?;
    for layer in layers {
        writeln!(out, "\n{layer}  ({})", lake.describe(*layer, ""))?;
        for table in tables(lake, *layer)? {
            let dates = committed_dates(lake, *layer, &table)?;
            if dates.is_empty() {
                continue;
            }
            writeln!(out, "  {table}")?;
            for date in dates {
                let partition = PartitionRef::new(*layer, &table, date);
                if let Some(manifest) = read_manifest(lake, &partition)? {
                    let bytes: u64 = manifest.files.iter().map(|f| f.bytes).sum();
                    writeln!(
                        out,
                        "    {date}  {:>12} rows  {:>3} files  {:>10}  run {}",
                        group_digits(manifest.row_count),
                        manifest.files.len(),
                        human_bytes(bytes),
                        manifest.run_id
                    )?;
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lake_core::PartitionWriter;
    use polars::prelude::*;

    #[test]
    fn lists_tables_partitions_rows_and_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let date = chrono::NaiveDate::from_ymd_opt(2026, 2, 3).unwrap();
        for table in ["orders", "_rejects/sales_master"] {
            let mut writer =
                PartitionWriter::new(&lake, PartitionRef::new(Layer::Silver, table, date), "r1");
            writer
                .write_frame(&mut df!("x" => [1i64, 2, 3]).unwrap())
                .unwrap();
            writer.commit().unwrap();
        }
        let text = list(&lake, &[Layer::Silver]).unwrap();
        assert!(
            text.contains("  orders\n    2026-02-03             3 rows    1 files"),
            "{text}"
        );
        assert!(
            text.contains("  _rejects/sales_master\n    2026-02-03"),
            "{text}"
        );
        assert_eq!(human_bytes(2048), "2.0 KiB");
    }
}
