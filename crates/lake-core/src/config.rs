//! Configuration shared by every binary: flags win over environment
//! variables, which win over defaults (clap's `env` support gives exactly
//! that order).

use std::io::IsTerminal;

use anyhow::{Result, bail};
use chrono::{NaiveDate, Utc};
use clap::Args;
use tracing_subscriber::fmt::MakeWriter;

use lake_table::Lake;

/// The lake every command works on: the one `--lake` of every binary.
#[derive(Debug, Clone, Args)]
pub struct LakeLocation {
    /// The lake: a folder path, or a file:// or s3:// URL (s3://BUCKET/PREFIX
    /// for one bucket, s3:// alone for a bucket per layer).
    #[arg(
        long = "lake",
        env = "LAKE_URL",
        default_value = DEFAULT_LAKE,
        value_name = "URL"
    )]
    pub url: String,
}

/// The lake when none is given: a folder beside the working directory.
pub const DEFAULT_LAKE: &str = "./lake";

impl LakeLocation {
    /// Opens the lake, creating nothing until something is written.
    pub fn open(&self) -> Result<Lake> {
        Lake::open(&self.url)
    }
}

/// Where the lake is and which date a run writes.
#[derive(Debug, Clone, Args)]
pub struct LakeArgs {
    #[command(flatten)]
    pub lake: LakeLocation,

    /// Run date naming the partitions written, exactly YYYY-MM-DD (a year
    /// from 1000 to 9999); default: today (UTC).
    #[arg(long = "date", env = "LAKE_DATE", value_parser = parse_date, value_name = "YYYY-MM-DD")]
    pub date: Option<NaiveDate>,
}

impl LakeArgs {
    pub fn open(&self) -> Result<Lake> {
        self.lake.open()
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

    #[command(flatten)]
    pub generator: GeneratorArgs,
}

/// The built-in Northwind generator's settings, wherever it runs (bronze's
/// source, `cargo xtask seed`).
#[derive(Debug, Clone, Copy, Args)]
pub struct GeneratorArgs {
    /// Scale factor of the built-in generator (1 = the size of the standard dump).
    #[arg(long = "scale", env = "LAKE_SCALE", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub scale: u32,

    /// Seed of the built-in generator.
    #[arg(long = "seed", env = "LAKE_SEED", default_value_t = DEFAULT_GENERATOR_SEED)]
    pub seed: u64,
}

/// Default seed of the built-in generator.
pub const DEFAULT_GENERATOR_SEED: u64 = 20_260_101;

/// Parses a date written exactly `YYYY-MM-DD`, year 1000 to 9999: chrono's
/// `%Y` alone takes `26-1-1` (the year 26, written as partition
/// `0026-01-01`) and the year 0.
pub fn parse_date(raw: &str) -> Result<NaiveDate> {
    let text = raw.trim();
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        })
        && bytes[0] != b'0';
    match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        Ok(date) if shaped => Ok(date),
        _ => bail!("invalid date {raw:?}: expected YYYY-MM-DD, a year from 1000 to 9999"),
    }
}

/// Logs to stderr at `warn` unless `RUST_LOG` says otherwise, in colour
/// only when stderr is a terminal.
pub fn init_tracing() {
    let ansi = std::io::stderr().is_terminal();
    let _ = log_builder(std::io::stderr, ansi).try_init();
}

/// The subscriber [`init_tracing`] installs, writing to `writer` (tests
/// read what the default filter lets through).
pub fn log_subscriber<W>(writer: W, ansi: bool) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    log_builder(writer, ansi).finish()
}

fn log_builder<W>(
    writer: W,
    ansi: bool,
) -> tracing_subscriber::fmt::SubscriberBuilder<
    tracing_subscriber::fmt::format::DefaultFields,
    tracing_subscriber::fmt::format::Format,
    tracing_subscriber::EnvFilter,
    W,
>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(log_filter())
        .with_writer(writer)
        .with_ansi(ansi)
        .with_target(false)
        // A failed write to stderr (closed, broken pipe) is dropped: the
        // subscriber would otherwise report it with `eprintln!`, which
        // panics on that same stderr.
        .log_internal_errors(false)
}

/// `RUST_LOG` when set (it replaces the default entirely), else
/// [`DEFAULT_LOG_FILTER`].
fn log_filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER))
}

/// Warnings and errors, except from two targets of delta-rs whose events
/// repeat what it returns to the lake, at ERROR, for conditions the lake
/// handles (or reports itself, with its context):
/// - its kernel (`buoyant_kernel`, delta-rs' fork of delta-kernel-rs)
///   reports failures by returning them; its ERROR events are
///   `#[instrument(err)]` copies of those errors: "No files in log segment"
///   for a table without a log yet (which the lake reads as no table), the
///   parse error of a corrupt log entry (which the lake reports naming the
///   table), each with the backtrace the error carries when `RUST_BACKTRACE`
///   is set. Its warnings are about what it tolerates by itself.
/// - its commit loop (`deltalake_core::kernel::transaction`) logs "conflict
///   detected" before returning the conflict that `lake_table::commit`
///   resolves by rebuilding on the new version, and the races it retries.
///
/// No failure is hidden: each is an error the lake handles or reports.
/// Other delta-rs targets still log (its log cleanup's listing error, which
/// it does not return). `RUST_LOG` replaces this default entirely (e.g.
/// `RUST_LOG=warn` shows them all).
pub const DEFAULT_LOG_FILTER: &str =
    "warn,buoyant_kernel=off,deltalake_core::kernel::transaction=off";

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
        assert_eq!(
            parse_date(" 9999-12-31\n").unwrap(),
            NaiveDate::from_ymd_opt(9999, 12, 31).unwrap()
        );
        assert_eq!(
            parse_date("1000-01-01").unwrap(),
            NaiveDate::from_ymd_opt(1000, 1, 1).unwrap()
        );
        // Short fields, the year 0 and years outside 1000..=9999 are refused.
        for raw in [
            "26-1-1",
            "2026-1-01",
            "2026-01-1",
            "0000-01-01",
            "0999-12-31",
            "+2026-01-01",
            "12026-01-01",
            "2026-01-01T00:00",
            "２０２６-01-01",
        ] {
            let err = parse_date(raw).expect_err(raw).to_string();
            assert!(err.contains("expected YYYY-MM-DD"), "{raw}: {err}");
        }
    }
}
