//! `lake-tasks`: pipeline, seed, and the other chores of the lake, run by
//! `cargo xtask` (which handles `test` itself).

use std::process::ExitCode;

use anyhow::Result;
use chrono::NaiveDate;
use clap::{Parser, Subcommand};
use lake_core::config::{
    GeneratorArgs, LakeArgs, LakeLocation, SourceArgs, init_tracing, parse_date,
};
use lake_core::dag::RunOptions;
use lake_core::error::{exit_code, print_out};
use lake_tasks::backfill;
use lake_tasks::pipeline::{PipelineOptions, Stage, run_pipeline};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    version,
    about = "Chores of the medallion lake",
    after_help = "cargo xtask test [-- ARGS]: set up the tools the tests need, then run every test of the workspace."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run bronze -> silver -> gold and print a summary (or, with --from and
    /// --to, one run per date of a range: a backfill).
    Pipeline {
        #[command(flatten)]
        lake: LakeArgs,
        /// Backfill: the first date of a range run one date after another,
        /// oldest first (with --to; not with --date).
        #[arg(long, value_parser = parse_date, value_name = "YYYY-MM-DD", requires = "to")]
        from: Option<NaiveDate>,
        /// Backfill: the last date of the range (with --from).
        #[arg(long, value_parser = parse_date, value_name = "YYYY-MM-DD", requires = "from")]
        to: Option<NaiveDate>,
        #[command(flatten)]
        source: SourceArgs,
        /// Reference date of RFM recency (default: the day after the latest order).
        #[arg(long, env = "LAKE_RFM_AS_OF", value_parser = parse_date, value_name = "YYYY-MM-DD")]
        as_of: Option<NaiveDate>,
        /// Steps run in parallel.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        #[command(flatten)]
        kafka: lake_stream::config::KafkaArgs,
        /// Events the built-in producer makes when no Kafka is configured
        /// (0: no stream stage, the batch layers only).
        #[arg(long, env = "LAKE_STREAM_EVENTS", default_value_t = 5_000)]
        events: u64,
    },
    /// Create the six Northwind tables in PostgreSQL and load generated data
    /// (or write them as a SQL script with --sql-out).
    Seed {
        /// Target database (postgresql://...).
        #[arg(
            long,
            env = "LAKE_PG_URL",
            hide_env_values = true,
            required_unless_present = "sql_out"
        )]
        pg: Option<String>,
        /// Write a SQL script (DDL + COPY) instead of loading a database.
        #[arg(long)]
        sql_out: Option<std::path::PathBuf>,
        #[command(flatten)]
        generator: GeneratorArgs,
        /// Drop and recreate the six tables when the database already holds
        /// any of them (refused otherwise).
        #[arg(long)]
        replace: bool,
    },
    /// Run one layer of the pipeline (used by the benchmarks).
    #[command(hide = true)]
    Stage {
        #[arg(value_enum)]
        stage: Stage,
        #[command(flatten)]
        lake: LakeArgs,
        #[command(flatten)]
        source: SourceArgs,
        /// Bronze tables to copy (default: all six).
        #[arg(long, value_delimiter = ',')]
        tables: Vec<String>,
    },
    /// Start PostgreSQL (with Northwind), Kafka and S3: docker compose when a
    /// Docker engine answers, native processes otherwise; prints the
    /// variables to export.
    Up,
    /// Stop what `up` started.
    Down,
    /// Serve the API and dashboard over the lake (after `pipeline`).
    Serve(lake_serve::ServeArgs),
    /// Inspect and maintain the lake's tables: `lake ls | history | show | describe | restore | optimize | vacuum`.
    #[command(subcommand)]
    Lake(LakeCommand),
    /// Benchmarks with their targets: `bench batch --scale N`.
    #[command(subcommand)]
    Bench(lake_tasks::bench::Bench),
}

/// Which version of a table to read.
#[derive(clap::Args)]
struct VersionArgs {
    /// Read this version (time travel).
    #[arg(long, conflicts_with = "as_of")]
    version: Option<i64>,
    /// Read the latest version committed at or before this time (RFC 3339,
    /// e.g. 2026-12-01T10:00:00Z).
    #[arg(long, value_parser = parse_time)]
    as_of: Option<chrono::DateTime<chrono::Utc>>,
}

impl VersionArgs {
    fn at(&self) -> lake_table::At {
        match (self.version, self.as_of) {
            (Some(version), _) => lake_table::At::Version(version),
            (None, Some(time)) => lake_table::At::Timestamp(time),
            (None, None) => lake_table::At::Latest,
        }
    }
}

fn parse_time(raw: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| {
            anyhow::anyhow!("invalid time {raw:?}: expected RFC 3339, e.g. 2026-12-01T10:00:00Z")
        })
}

#[derive(Subcommand)]
enum LakeCommand {
    /// Tables with their version, dates, row counts and sizes (local or S3).
    Ls {
        #[command(flatten)]
        lake: LakeLocation,
        /// bronze, silver or gold (default: the three).
        layer: Option<String>,
        #[command(flatten)]
        version: VersionArgs,
    },
    /// A table's commits: version, time, operation, run id, rows added/removed.
    History {
        #[command(flatten)]
        lake: LakeLocation,
        /// The table, e.g. gold/kpi_summary or silver/_rejects/sales_master.
        table: String,
        /// Commits shown, newest first.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Rows of one date of a table, at its latest version or another one.
    Show {
        #[command(flatten)]
        lake: LakeLocation,
        /// The table, e.g. gold/kpi_summary.
        table: String,
        /// The date (default: the latest the version holds).
        #[arg(long, value_parser = parse_date, value_name = "YYYY-MM-DD")]
        date: Option<NaiveDate>,
        #[command(flatten)]
        version: VersionArgs,
        /// Rows shown.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// A table's schema (Delta types), partitioning, properties and
    /// protocol, then its section of the project's reference (docs/tables.md).
    Describe {
        #[command(flatten)]
        lake: LakeLocation,
        /// The table, e.g. bronze/ventes_temps_reel.
        table: String,
        #[command(flatten)]
        version: VersionArgs,
    },
    /// Bring a table back to an earlier version: one RESTORE commit that
    /// adds that version's files back and removes the others (every date).
    Restore {
        #[command(flatten)]
        lake: LakeLocation,
        /// The table, e.g. gold/rfm.
        table: String,
        /// The version to bring back (`lake history` lists them).
        #[arg(long)]
        version: i64,
    },
    /// Rewrite a date's small files into larger ones (dataChange=false).
    Optimize {
        #[command(flatten)]
        lake: LakeLocation,
        /// The table (default: every table).
        table: Option<String>,
        /// The date (default: every date).
        #[arg(long, value_parser = parse_date, value_name = "YYYY-MM-DD")]
        date: Option<NaiveDate>,
        /// Size of the files written, in MiB.
        #[arg(long, default_value_t = 128)]
        target_mb: u64,
    },
    /// Delete files that no version within the retention period needs.
    Vacuum {
        #[command(flatten)]
        lake: LakeLocation,
        /// The table (default: every table).
        table: Option<String>,
        /// Keep files removed less than this long ago (e.g. 7d, 12h, 0s).
        #[arg(long, default_value = "7d", value_parser = lake_table::maintenance::parse_duration)]
        retain: std::time::Duration,
        /// List what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Allow a retention shorter than the table's
        /// (delta.deletedFileRetentionDuration, 7 days by default): readers
        /// of the versions of that time lose their files.
        #[arg(long)]
        allow_short_retention: bool,
    },
}

/// The workspace root (this crate lives two levels below it).
fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| ".".into())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Pipeline {
            lake,
            from,
            to,
            source,
            as_of,
            workers,
            kafka,
            events,
        } => {
            let stream = match kafka.settings()? {
                Some(settings) => Some(lake_stream::step::StreamSource::Kafka(settings)),
                // No Kafka and no built-in events: the batch layers only.
                None if events == 0 => None,
                None => Some(lake_stream::step::StreamSource::Embedded {
                    events,
                    seed: source.generator.seed,
                }),
            };
            let mut options = PipelineOptions::new(lake, source);
            options.stream = stream;
            options.rfm_as_of = as_of;
            options.run = RunOptions {
                workers,
                ..RunOptions::default()
            };
            if let (Some(from), Some(to)) = (from, to) {
                if let Some(date) = options.lake.date {
                    anyhow::bail!(
                        "--from/--to run a range of dates and --date (or LAKE_DATE) one date, \
                         here {date}: give one or the other"
                    );
                }
                let range = backfill::DateRange::new(from, to)?;
                let done = backfill::backfill(&mut options, range);
                print_out(&done.render())?;
                done.into_result()?;
                return Ok(());
            }
            let run = run_pipeline(&options)?;
            print_out(&lake_tasks::summary::render(&run)?)?;
        }
        Command::Stage {
            stage,
            lake,
            source,
            tables,
        } => {
            let mut options = PipelineOptions::new(lake, source);
            options.stages = vec![stage];
            options.tables = tables;
            options.run.progress = false;
            run_pipeline(&options)?;
        }
        Command::Bench(bench) => lake_tasks::bench::run(bench)?,
        Command::Serve(args) => lake_tasks::serve::serve(&args)?,
        Command::Up => lake_tasks::services::up(&repo_root())?,
        Command::Down => lake_tasks::services::down(&repo_root())?,
        Command::Lake(command) => print_out(&lake_command(command)?)?,
        Command::Seed {
            sql_out: Some(path),
            generator,
            ..
        } => {
            lake_tasks::seed::write_sql(&path, generator.scale, generator.seed)?;
            println!("wrote {}", path.display());
        }
        Command::Seed {
            pg,
            generator: GeneratorArgs { scale, seed },
            replace,
            ..
        } => {
            let pg = pg.ok_or_else(|| anyhow::anyhow!("--pg is required"))?;
            let url: lake_pg::url::PgUrl = pg.parse()?;
            for (table, rows) in lake_tasks::seed::seed(&url, scale, seed, replace)? {
                println!("{table:<15} {rows:>10} rows");
            }
            println!("seeded {} at scale {scale}", url.location());
        }
    }
    Ok(())
}

fn lake_command(command: LakeCommand) -> Result<String> {
    use lake_table::{Lake, Layer, TableRef};
    use lake_tasks::lake;
    match command {
        LakeCommand::Ls {
            lake: url,
            layer,
            version,
        } => {
            let layers = match layer {
                Some(layer) => vec![layer.parse()?],
                None => vec![Layer::Bronze, Layer::Silver, Layer::Gold],
            };
            let listing = lake::ls::list(&Lake::open_existing(&url.url)?, &layers, version.at())?;
            if listing.broken.is_empty() {
                return Ok(listing.text);
            }
            // Every table that can be read is listed; then a failure, so
            // scripts notice the broken ones.
            print_out(&listing.text)?;
            anyhow::bail!(
                "{} table(s) could not be read: {}",
                listing.broken.len(),
                listing.broken.join(", ")
            )
        }
        LakeCommand::History {
            lake: url,
            table,
            limit,
        } => lake::history::render(
            &Lake::open_existing(&url.url)?,
            &TableRef::parse(&table)?,
            limit,
        ),
        LakeCommand::Show {
            lake: url,
            table,
            date,
            version,
            limit,
        } => lake::show::show(
            &Lake::open_existing(&url.url)?,
            &TableRef::parse(&table)?,
            version.at(),
            date,
            limit,
        ),
        LakeCommand::Describe {
            lake: url,
            table,
            version,
        } => lake::describe::describe(
            &Lake::open_existing(&url.url)?,
            &TableRef::parse(&table)?,
            version.at(),
        ),
        LakeCommand::Restore {
            lake: url,
            table,
            version,
        } => lake::restore::restore(
            &Lake::open_existing(&url.url)?,
            &TableRef::parse(&table)?,
            version,
        ),
        LakeCommand::Optimize {
            lake: url,
            table,
            date,
            target_mb,
        } => {
            let lake = Lake::open(&url.url)?;
            let tables = lake::tables_or_all(&lake, table.as_deref())?;
            lake::maintenance::optimize(&lake, &tables, date, target_mb.max(1) << 20)
        }
        LakeCommand::Vacuum {
            lake: url,
            table,
            retain,
            dry_run,
            allow_short_retention,
        } => {
            let lake = Lake::open(&url.url)?;
            let tables = lake::tables_or_all(&lake, table.as_deref())?;
            lake::maintenance::vacuum_tables(&lake, &tables, retain, dry_run, allow_short_retention)
        }
    }
}

fn main() -> ExitCode {
    init_tracing();
    exit_code("error: ", run(Cli::parse()))
}
