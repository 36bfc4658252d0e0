//! The project's reference of its tables, `docs/tables.md`, read from the
//! copy built into the binary: one `### layer/table` section per table,
//! its prose and its `| column | type | meaning |` rows. `lake describe`
//! prints a section; a test checks every section against the lake the
//! pipeline writes, so the file cannot drift from the code.

use anyhow::{Result, anyhow, bail};

/// Where the reference lives in the repository (for messages).
pub const PATH: &str = "docs/tables.md";

/// The reference as built into this binary.
pub const TEXT: &str = include_str!("../../../../docs/tables.md");

/// One table's section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// `layer/table`, as its heading names it.
    pub table: String,
    /// The section's text other than its columns, paragraphs joined by a
    /// blank line.
    pub prose: String,
    pub columns: Vec<Column>,
}

/// One row of a section's column table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// Delta's name of the type: `short`, `long`, `string`, `timestamp`...
    pub delta_type: String,
    /// Empty when the name says it all.
    pub meaning: String,
}

/// Every section of the built-in reference, in its order.
pub fn sections() -> Result<Vec<Section>> {
    parse(TEXT)
}

/// The section of `table` (`layer/table`), if the reference has one.
pub fn section(table: &str) -> Result<Option<Section>> {
    Ok(sections()?.into_iter().find(|s| s.table == table))
}

/// The `### layer/table` sections of `text`; an error names the line of a
/// row that is not three cells, a section without columns or a table
/// described twice, so a slip in the file fails the test, not a reader.
pub fn parse(text: &str) -> Result<Vec<Section>> {
    let mut sections: Vec<Section> = Vec::new();
    let mut current: Option<(Section, Vec<String>)> = None;
    let finish = |sections: &mut Vec<Section>, done: Option<(Section, Vec<String>)>| {
        let Some((mut section, paragraphs)) = done else {
            return Ok(());
        };
        if section.columns.is_empty() {
            bail!("{PATH}: section {} has no column table", section.table);
        }
        if sections.iter().any(|s| s.table == section.table) {
            bail!("{PATH}: {} is described twice", section.table);
        }
        section.prose = paragraphs
            .iter()
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("\n\n");
        sections.push(section);
        Ok(())
    };
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.starts_with('#') {
            finish(&mut sections, current.take())?;
            if let Some(table) = line.strip_prefix("### ") {
                let section = Section {
                    table: table.trim().to_string(),
                    prose: String::new(),
                    columns: Vec::new(),
                };
                current = Some((section, vec![String::new()]));
            }
            continue;
        }
        let Some((section, paragraphs)) = current.as_mut() else {
            continue;
        };
        let trimmed = line.trim();
        if let Some(row) = trimmed.strip_prefix('|') {
            let cells: Vec<&str> = row
                .strip_suffix('|')
                .unwrap_or(row)
                .split('|')
                .map(str::trim)
                .collect();
            let [name, delta_type, meaning] = cells[..] else {
                return Err(anyhow!(
                    "{PATH} line {number}: a row of {} has {} cells, not 3 (column, type, meaning)",
                    section.table,
                    cells.len()
                ));
            };
            // The header and its separator line.
            if name == "column" || name.starts_with("---") {
                continue;
            }
            section.columns.push(Column {
                name: name.trim_matches('`').to_string(),
                delta_type: delta_type.trim_matches('`').to_string(),
                meaning: meaning.to_string(),
            });
        } else if trimmed.is_empty() {
            paragraphs.push(String::new());
        } else if let Some(last) = paragraphs.last_mut() {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(trimmed);
        }
    }
    finish(&mut sections, current.take())?;
    Ok(sections)
}

/// How a table's Delta fields (the partition column aside, described once
/// for every table) differ from its section, one line per difference;
/// empty exactly when both list the same columns with the same types in
/// the same order.
pub fn differences(fields: &[lake_table::DeltaField], section: &Section) -> Vec<String> {
    let logged: Vec<(&str, &str)> = fields
        .iter()
        .filter(|f| f.name != lake_table::PARTITION_COLUMN)
        .map(|f| (f.name.as_str(), f.delta_type.as_str()))
        .collect();
    let described: Vec<(&str, &str)> = section
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.delta_type.as_str()))
        .collect();
    if logged == described {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (name, logged_type) in &logged {
        match described.iter().find(|(n, _)| n == name) {
            None => out.push(format!("{name} ({logged_type}) is not in the reference")),
            Some((_, described_type)) if described_type != logged_type => out.push(format!(
                "{name} is {logged_type} in the log, {described_type} in the reference"
            )),
            Some(_) => {}
        }
    }
    for (name, described_type) in &described {
        if !logged.iter().any(|(n, _)| n == name) {
            out.push(format!(
                "{name} ({described_type}) is in the reference, not in the log"
            ));
        }
    }
    if out.is_empty() {
        let names = |columns: &[(&str, &str)]| {
            columns
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push(format!(
            "the columns' order differs: the log has {}; the reference {}",
            names(&logged),
            names(&described)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_hold_their_prose_and_columns() {
        let text = "# Tables\n\nintro\n\n### gold/t\n\nOne row,\nalways.\n\n\
                    | column | type | meaning |\n|---|---|---|\n| a | long | the a |\n\
                    | b | string | |\n\nAfter.\n\n## next\n\nnot a section\n";
        let sections = parse(text).unwrap();
        assert_eq!(sections.len(), 1);
        assert_eq!(sections[0].table, "gold/t");
        assert_eq!(sections[0].prose, "One row, always.\n\nAfter.");
        assert_eq!(
            sections[0].columns,
            vec![
                Column {
                    name: "a".into(),
                    delta_type: "long".into(),
                    meaning: "the a".into()
                },
                Column {
                    name: "b".into(),
                    delta_type: "string".into(),
                    meaning: String::new()
                },
            ]
        );
    }

    #[test]
    fn slips_in_the_file_are_errors() {
        let bad_row = "### gold/t\n\n| column | type | meaning |\n|---|---|---|\n| a | long |\n";
        let err = parse(bad_row).unwrap_err().to_string();
        assert!(err.contains("line 5") && err.contains("gold/t"), "{err}");
        let twice = "### gold/t\n| a | long | |\n### gold/t\n| a | long | |\n";
        assert!(parse(twice).unwrap_err().to_string().contains("twice"));
        let empty = "### gold/t\n\nno columns\n";
        assert!(parse(empty).unwrap_err().to_string().contains("no column"));
    }

    #[test]
    fn differences_name_each_column_that_differs() {
        let field = |name: &str, delta_type: &str| lake_table::DeltaField {
            name: name.into(),
            delta_type: delta_type.into(),
            nullable: true,
        };
        let section = parse("### gold/t\n| a | long | |\n| b | string | |\n").unwrap();
        let same = [
            field("a", "long"),
            field("b", "string"),
            field("run_date", "date"),
        ];
        assert!(differences(&same, &section[0]).is_empty());
        let other = [field("a", "integer"), field("c", "string")];
        assert_eq!(
            differences(&other, &section[0]),
            vec![
                "a is integer in the log, long in the reference",
                "c (string) is not in the reference",
                "b (string) is in the reference, not in the log",
            ]
        );
        let swapped = [field("b", "string"), field("a", "long")];
        assert!(differences(&swapped, &section[0])[0].contains("order differs"));
    }

    #[test]
    fn the_built_in_reference_parses() {
        let sections = sections().unwrap();
        assert!(
            sections
                .iter()
                .any(|s| s.table == "silver/_rejects/sales_master")
        );
        assert!(sections.iter().all(|s| {
            s.columns
                .iter()
                .all(|c| c.name != lake_table::PARTITION_COLUMN)
        }));
    }
}
