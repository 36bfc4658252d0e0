//! Plain-text rendering of frames: every row and column, one line per row,
//! for snapshots and terminals (Polars' own display elides columns).

use polars::prelude::*;

/// `col_a | col_b` header, then one `value | value` line per row; nulls
/// shown as `null`, strings quoted so spaces stay visible, floats in full.
pub fn render(df: &DataFrame) -> String {
    let mut out = String::new();
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    out.push_str(&names.join(" | "));
    out.push('\n');
    for row in 0..df.height() {
        let cells: Vec<String> = df
            .columns()
            .iter()
            .map(|column| match column.get(row) {
                Ok(AnyValue::Null) => "null".to_string(),
                Ok(AnyValue::String(s)) => format!("{s:?}"),
                Ok(AnyValue::StringOwned(s)) => format!("{:?}", s.as_str()),
                // Shortest round-trip form: snapshots show every bit that matters.
                Ok(AnyValue::Float64(v)) => format!("{v:?}"),
                Ok(AnyValue::Float32(v)) => format!("{v:?}f32"),
                Ok(value) => value.to_string(),
                Err(err) => format!("<{err}>"),
            })
            .collect();
        out.push_str(&cells.join(" | "));
        out.push('\n');
    }
    out
}
