//! `cargo xtask lake ls [layer]`: each table's version, then its dates with
//! rows, files and size, as the latest snapshot (or the one at `--as-of`)
//! lists them. A table that cannot be read is listed as broken, naming its
//! unreadable log entry when one is, and the others are listed all the same.

use std::fmt::Write;

use anyhow::Result;
use lake_core::dag::group_digits;
use lake_core::error::one_line;
use lake_table::{At, Lake, Layer, Snapshot, Table, TableRef};

use super::human_bytes;

/// The listing as text, and the tables that could not be read.
pub struct Listing {
    pub text: String,
    /// `layer/table` of each table listed as broken.
    pub broken: Vec<String>,
}

/// Lists the tables of `layers`.
pub fn list(lake: &Lake, layers: &[Layer], at: At) -> Result<Listing> {
    let mut out = String::new();
    let mut broken = Vec::new();
    writeln!(out, "lake {}", lake.url())?;
    for layer in layers {
        writeln!(out, "\n{layer}  ({})", lake.describe(*layer, ""))?;
        for table in lake_table::tables(lake, *layer)? {
            let table_ref = TableRef::new(*layer, &table);
            let snapshot = match snapshot(lake, &table_ref, at) {
                Ok(Some(snapshot)) => snapshot,
                Ok(None) => continue,
                Err(err) => {
                    // Not there yet at that time: listed as such, not broken.
                    if let Some(later) = err.downcast_ref::<lake_table::NotYetCreated>() {
                        writeln!(
                            out,
                            "  {table}  not yet created (first commit {})",
                            later.first_commit.format("%Y-%m-%d %H:%M:%S UTC")
                        )?;
                        continue;
                    }
                    let why = match unreadable_log_entry(lake, &table_ref) {
                        Some(entry) => format!("{entry}: {}", one_line(&err)),
                        None => one_line(&err),
                    };
                    writeln!(out, "  {table}  BROKEN  {why}")?;
                    broken.push(table_ref.to_string());
                    continue;
                }
            };
            let committed = snapshot
                .committed_at()
                .map(|t| format!("  committed {}", t.format("%Y-%m-%d %H:%M:%S UTC")))
                .unwrap_or_default();
            // An older version whose files a vacuum deleted cannot be read.
            let vacuumed = match at {
                At::Latest => None,
                _ => snapshot
                    .vacuumed_file(None)?
                    .map(|file| format!("  UNREADABLE: data file {} deleted by vacuum", file.path)),
            };
            writeln!(
                out,
                "  {table}  v{}{committed}{}",
                snapshot.version(),
                vacuumed.unwrap_or_default()
            )?;
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
    Ok(Listing { text: out, broken })
}

/// The table's snapshot at `at`; `None` when it has no commit (then).
pub(super) fn snapshot(lake: &Lake, table: &TableRef, at: At) -> Result<Option<Snapshot>> {
    let handle = Table::open(lake, table.clone())?;
    match at {
        At::Latest => handle.latest(),
        at => match handle.at(at) {
            Ok(snapshot) => Ok(Some(snapshot)),
            Err(err) if lake_table::is_not_a_table(&err) => Ok(None),
            Err(err) => Err(err),
        },
    }
}

/// The first JSON log entry of `table` (`_delta_log/NNN.json`) that is not
/// one JSON object per line, as `_delta_log/NNN.json line L`: delta-rs'
/// parse errors do not say which file they read.
fn unreadable_log_entry(lake: &Lake, table: &TableRef) -> Option<String> {
    let prefix = format!("{}/_delta_log/", table.name);
    let mut entries: Vec<String> = lake
        .list(table.layer, &prefix)
        .ok()?
        .into_iter()
        .map(|object| object.key)
        .filter(|key| key.ends_with(".json"))
        .collect();
    entries.sort();
    entries.into_iter().find_map(|key| {
        let bytes = lake.get(table.layer, &key).ok()??;
        let name = key
            .strip_prefix(&format!("{}/", table.name))
            .unwrap_or(&key);
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Some(format!("{name} is empty"));
        }
        let bad_line = bytes.split(|b| *b == b'\n').position(|line| {
            !line.iter().all(u8::is_ascii_whitespace)
                && !serde_json::from_slice::<serde_json::Value>(line)
                    .is_ok_and(|value| value.is_object())
        })?;
        Some(format!("{name} line {}", bad_line + 1))
    })
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
        let listing = list(&lake, &[Layer::Silver], At::Latest).unwrap();
        assert!(listing.broken.is_empty());
        let text = listing.text;
        // Two commits (versions 0 and 1): the second replaced the date.
        assert!(text.contains("  orders  v1  committed "), "{text}");
        assert!(
            text.contains("    2026-02-03             3 rows     1 files"),
            "{text}"
        );
        assert!(text.contains("  _rejects/sales_master  v1"), "{text}");
        let first = list(&lake, &[Layer::Silver], At::Version(0)).unwrap().text;
        assert!(first.contains("  orders  v0"), "{first}");
    }
}
