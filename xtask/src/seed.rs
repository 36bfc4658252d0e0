//! `cargo xtask seed`: loads the generated Northwind into PostgreSQL.

use anyhow::{Context, Result};
use lake_core::pg::PgUrl;

/// Generates Northwind at `scale` and loads it into the database at `url`
/// (dropping the six tables first). Returns rows per table.
pub fn seed(url: &PgUrl, scale: u32, seed: u64) -> Result<Vec<(&'static str, u64)>> {
    let nw = lake_northwind::generate(scale, seed).context("generating Northwind")?;
    let mut client = url.connect()?;
    let report = lake_northwind::seed_postgres(&mut client, &nw)
        .with_context(|| format!("seeding {}", url.location()))?;
    Ok(report.rows)
}
