//! `cargo xtask lake ...`: inspect and maintain the lake's tables, local or
//! on S3: `ls`, `history`, `show`, `describe`, `restore`, `optimize`,
//! `vacuum`.

pub mod describe;
pub mod history;
pub mod ls;
pub mod maintenance;
pub mod reference;
pub mod restore;
pub mod show;

/// `1536` -> `1.5 KiB`.
pub fn human_bytes(bytes: u64) -> String {
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

/// The tables named on a command line (`layer/table`), or every table of
/// bronze, silver and gold.
pub fn tables_or_all(
    lake: &lake_table::Lake,
    named: Option<&str>,
) -> anyhow::Result<Vec<lake_table::TableRef>> {
    use lake_table::{Layer, TableRef};
    if let Some(name) = named {
        return Ok(vec![TableRef::parse(name)?]);
    }
    let mut out = Vec::new();
    for layer in [Layer::Bronze, Layer::Silver, Layer::Gold] {
        for table in lake_table::tables(lake, layer)? {
            out.push(TableRef::new(layer, table));
        }
    }
    Ok(out)
}

/// The tables of the lake as a list for a message: `a, b` or `none`.
pub fn table_names(lake: &lake_table::Lake) -> anyhow::Result<String> {
    let names: Vec<String> = tables_or_all(lake, None)?
        .iter()
        .map(ToString::to_string)
        .collect();
    Ok(if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_as_people_do() {
        assert_eq!(human_bytes(2048), "2.0 KiB");
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
