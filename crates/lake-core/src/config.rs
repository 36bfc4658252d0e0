//! Configuration shared by every binary: flags win over environment
//! variables, which win over defaults (clap's `env` support gives exactly
//! that order).

use anyhow::{Result, bail};
use chrono::{NaiveDate, Utc};
use clap::Args;

use crate::pg::PgUrl;
use lake_table::Lake;

/// Where the lake is and which date a run writes.
#[derive(Debug, Clone, Args)]
pub struct LakeArgs {
    /// The lake: a folder path or file:// URL.
    #[arg(
        long = "lake",
        env = "LAKE_URL",
        default_value = "./lake",
        value_name = "URL"
    )]
    pub lake: String,

    /// Run date (YYYY-MM-DD) naming the partitions written; default: today (UTC).
    #[arg(long = "date", env = "LAKE_DATE", value_parser = parse_date, value_name = "YYYY-MM-DD")]
    pub date: Option<NaiveDate>,
}

impl LakeArgs {
    pub fn open(&self) -> Result<Lake> {
        Lake::open(&self.lake)
    }

    /// The run date: the one given, else today in UTC.
    pub fn run_date(&self) -> NaiveDate {
        self.date.unwrap_or_else(|| Utc::now().date_naive())
    }
}

/// Where batch sources come from.
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// PostgreSQL holding the Northwind tables (postgresql://user:password@host:port/db?sslmode=...);
    /// when absent, the built-in Northwind generator is the source.
    #[arg(
        long = "pg",
        env = "LAKE_PG_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub pg: Option<String>,

    /// Scale factor of the built-in generator (1 = the size of the standard dump).
    #[arg(long = "scale", env = "LAKE_SCALE", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub scale: u32,

    /// Seed of the built-in generator.
    #[arg(long = "seed", env = "LAKE_SEED", default_value_t = DEFAULT_GENERATOR_SEED)]
    pub seed: u64,
}

/// Default seed of the built-in generator.
pub const DEFAULT_GENERATOR_SEED: u64 = 20_260_101;

impl SourceArgs {
    /// The PostgreSQL URL, parsed, when one is configured.
    pub fn pg_url(&self) -> Result<Option<PgUrl>> {
        match self.pg.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(raw) => Ok(Some(raw.parse()?)),
        }
    }
}

/// Parses a `YYYY-MM-DD` date.
pub fn parse_date(raw: &str) -> Result<NaiveDate> {
    match NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d") {
        Ok(date) => Ok(date),
        Err(_) => bail!("invalid date {raw:?}: expected YYYY-MM-DD"),
    }
}

/// Logs to stderr at `info` unless `RUST_LOG` says otherwise.
pub fn init_tracing() {
    let filter = tracing_subscriber_filter();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

fn tracing_subscriber_filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_strictly() {
        assert_eq!(
            parse_date("2026-11-26").unwrap(),
            NaiveDate::from_ymd_opt(2026, 11, 26).unwrap()
        );
        assert!(parse_date("26/11/2026").is_err());
        assert!(parse_date("2026-02-30").is_err());
    }
}
