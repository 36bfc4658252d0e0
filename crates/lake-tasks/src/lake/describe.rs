//! `cargo xtask lake describe TABLE`: a table as its log holds it (version,
//! schema with Delta's types, partitioning, properties, protocol) at its
//! latest version or another one, then its section of the project's
//! reference (`docs/tables.md`).

use std::fmt::Write;

use anyhow::{Result, bail};
use lake_table::{At, Lake, TableRef};

use super::reference::{self, Section};

/// Prose is wrapped at this width.
const WIDTH: usize = 76;

/// The description as text. A table the reference describes but the lake
/// does not hold (yet, or at that time) is still described, from the
/// reference, saying so; a table neither knows is an error listing both's.
pub fn describe(lake: &Lake, table: &TableRef, at: At) -> Result<String> {
    let name = table.to_string();
    let section = reference::section(&name)?;
    let snapshot = super::ls::snapshot(lake, table, at)?;
    let mut out = String::new();
    match (&snapshot, &section) {
        (None, None) => {
            let held: Vec<String> = super::tables_or_all(lake, None)?
                .iter()
                .map(ToString::to_string)
                .collect();
            let only_described: Vec<String> = reference::sections()?
                .into_iter()
                .map(|s| s.table)
                .filter(|t| !held.contains(t))
                .collect();
            let also = if only_described.is_empty() {
                String::new()
            } else {
                format!(
                    "; {} also describes: {}",
                    reference::PATH,
                    only_described.join(", ")
                )
            };
            bail!(
                "{table} is not a table of the lake {} nor of {}; its tables: {}{also}",
                lake.url(),
                reference::PATH,
                super::table_names(lake)?,
            );
        }
        (None, Some(_)) => {
            let when = match at {
                At::Latest => String::new(),
                At::Version(version) => format!(" at version {version}"),
                At::Timestamp(time) => format!(" at {}", time.format("%Y-%m-%d %H:%M:%S UTC")),
            };
            writeln!(
                out,
                "{table}: the lake {} has no such table yet{when} (no commit in {})",
                lake.url(),
                lake.describe(table.layer, &format!("{}/_delta_log", table.name))
            )?;
        }
        (Some(snapshot), _) => {
            let description = snapshot.description()?;
            let committed = snapshot
                .committed_at()
                .map(|t| format!("  committed {}", t.format("%Y-%m-%d %H:%M:%S UTC")))
                .unwrap_or_default();
            writeln!(out, "{table}@v{}{committed}", snapshot.version())?;
            writeln!(out, "  at {}", lake.describe(table.layer, &table.name))?;
            writeln!(out, "\nschema (as the log holds it)")?;
            let width = description
                .fields
                .iter()
                .map(|f| f.name.len())
                .max()
                .unwrap_or(0)
                .max("column".len());
            writeln!(out, "  {:<width$}  {:<13}  nullable", "column", "type")?;
            for field in &description.fields {
                writeln!(
                    out,
                    "  {:<width$}  {:<13}  {}",
                    field.name,
                    field.delta_type,
                    if field.nullable { "yes" } else { "no" }
                )?;
            }
            writeln!(
                out,
                "\npartitioned by: {}",
                if description.partition_columns.is_empty() {
                    "nothing".to_string()
                } else {
                    description.partition_columns.join(", ")
                }
            )?;
            writeln!(out, "\nproperties")?;
            for (key, value) in &description.properties {
                writeln!(out, "  {key} = {value}")?;
            }
            // A retention the table does not set is Delta's default: shown,
            // since the log's cleanup and vacuum go by it all the same.
            for (key, retention) in [
                ("delta.logRetentionDuration", description.log_retention),
                (
                    "delta.deletedFileRetentionDuration",
                    description.deleted_file_retention,
                ),
            ] {
                if !description.properties.contains_key(key) {
                    writeln!(
                        out,
                        "  {key} not set: {} (Delta's default)",
                        lake_table::maintenance::describe_duration(retention)
                    )?;
                }
            }
            let features = |label: &str, names: &[String]| {
                if names.is_empty() {
                    String::new()
                } else {
                    format!(", {label} features {}", names.join(", "))
                }
            };
            writeln!(
                out,
                "\nprotocol: reader version {}, writer version {}{}{}",
                description.min_reader_version,
                description.min_writer_version,
                features("reader", &description.reader_features),
                features("writer", &description.writer_features)
            )?;
            match &section {
                Some(section) => {
                    // A scaled copy may hold wider ids than the reference's
                    // (see its bronze intro): said, not an error.
                    let differences = reference::differences(&description.fields, section);
                    if !differences.is_empty() {
                        writeln!(out, "\nthe log differs from {}:", reference::PATH)?;
                        for difference in differences {
                            writeln!(out, "  {difference}")?;
                        }
                    }
                }
                None => writeln!(out, "\n{table} is not in {}", reference::PATH)?,
            }
        }
    }
    if let Some(section) = &section {
        write_section(&mut out, section)?;
    }
    Ok(out)
}

/// The reference's section: its prose, then each column's type and meaning.
fn write_section(out: &mut String, section: &Section) -> Result<()> {
    writeln!(out, "\nreference ({})", reference::PATH)?;
    for paragraph in section.prose.split("\n\n").filter(|p| !p.is_empty()) {
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            if !line.is_empty() && line.len() + 1 + word.len() > WIDTH {
                writeln!(out, "  {line}")?;
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        writeln!(out, "  {line}\n")?;
    }
    let width = section
        .columns
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0);
    for column in &section.columns {
        let line = format!(
            "  {:<width$}  {:<9}  {}",
            column.name, column.delta_type, column.meaning
        );
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lake_table::{DateWriter, Layer};
    use polars::prelude::*;

    #[test]
    fn a_table_is_described_from_its_log_and_the_reference() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let table = TableRef::new(Layer::Gold, "rfm_segments");
        let date = chrono::NaiveDate::from_ymd_opt(2026, 2, 3).unwrap();
        let mut writer = DateWriter::new(&lake, table.clone(), date, "r1").unwrap();
        writer
            .write_frame(&mut df!("segment" => ["Loyal"], "customer_count" => [3i64]).unwrap())
            .unwrap();
        writer.replace().unwrap();

        let text = describe(&lake, &table, At::Latest).unwrap();
        assert!(
            text.starts_with("gold/rfm_segments@v0  committed "),
            "{text}"
        );
        assert!(
            text.contains("  segment         string         yes\n"),
            "{text}"
        );
        assert!(text.contains("partitioned by: run_date"), "{text}");
        assert!(
            text.contains("delta.logRetentionDuration not set: 30d (Delta's default)")
                && text.contains("delta.deletedFileRetentionDuration not set: 7d"),
            "{text}"
        );
        assert!(text.contains("protocol: reader version "), "{text}");
        // Four columns of the reference are not in this table.
        assert!(
            text.contains("  revenue (double) is in the reference, not in the log"),
            "{text}"
        );
        assert!(
            text.contains("One row per segment that has customers"),
            "{text}"
        );

        // In the reference, not in the lake: described all the same.
        let text = describe(&lake, &TableRef::new(Layer::Gold, "rfm"), At::Latest).unwrap();
        assert!(text.contains("has no such table yet"), "{text}");
        assert!(text.contains("  rfm_score"), "{text}");

        // In neither: an error listing both's tables.
        let err = describe(&lake, &TableRef::new(Layer::Gold, "nope"), At::Latest)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("its tables: gold/rfm_segments;")
                && err.contains("also describes: bronze/categories")
                && !err.contains("also describes: gold/rfm_segments"),
            "{err}"
        );
    }
}
