//! `cargo xtask lake history TABLE`: a table's commits, newest first.

use std::fmt::Write;

use anyhow::Result;
use lake_core::dag::group_digits;
use lake_table::{Lake, Table, TableRef};

/// The history as text.
pub fn render(lake: &Lake, table: &TableRef, limit: usize) -> Result<String> {
    let handle = Table::open(lake, table.clone())?;
    let entries = lake_table::history::history(&handle, limit)?;
    if entries.is_empty() && handle.latest()?.is_none() {
        anyhow::bail!(
            "{table} is not a table of the lake {}; its tables: {}",
            lake.url(),
            super::table_names(lake)?
        );
    }
    let mut out = String::new();
    writeln!(out, "{table}")?;
    writeln!(
        out,
        "  {:>7}  {:<20}  {:<18}  {:<14}  {:>12}  {:>12}  {:<26}",
        "version", "time (UTC)", "operation", "change", "rows added", "rows removed", "run id"
    )?;
    for entry in &entries {
        writeln!(
            out,
            "  {:>7}  {:<20}  {:<18}  {:<14}  {:>12}  {:>12}  {:<26}",
            entry.version,
            entry
                .timestamp
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default(),
            entry.operation,
            entry.change.as_deref().unwrap_or("-"),
            group_digits(entry.rows_added),
            entry
                .rows_removed
                .map(group_digits)
                .unwrap_or_else(|| "-".into()),
            entry.run_id.as_deref().unwrap_or("-"),
        )?;
    }
    if entries.is_empty() {
        writeln!(out, "  no commit")?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lake_table::{DateWriter, Layer};
    use polars::prelude::*;

    #[test]
    fn commits_are_listed_newest_first_with_their_rows() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let table = TableRef::new(Layer::Gold, "t");
        let date = chrono::NaiveDate::from_ymd_opt(2026, 2, 3).unwrap();
        for (run, rows) in [("run-a", 3i64), ("run-b", 2)] {
            let mut writer = DateWriter::new(&lake, table.clone(), date, run).unwrap();
            let values: Vec<i64> = (0..rows).collect();
            writer
                .write_frame(&mut df!("x" => values).unwrap())
                .unwrap();
            writer.replace().unwrap();
        }
        let text = render(&lake, &table, 10).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        // Version 1 replaced the 3 rows of version 0 with 2.
        assert!(lines[2].trim_start().starts_with("1  "), "{text}");
        assert!(
            lines[2].contains("WRITE") && lines[2].contains("replace"),
            "{text}"
        );
        assert!(
            lines[2].contains("           2             3  run-b"),
            "{text}"
        );
        assert!(
            lines[3].contains("           3             0  run-a"),
            "{text}"
        );
    }
}
