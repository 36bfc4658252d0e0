//! `lake-stream`: the streaming layer's command line. It lives apart from
//! the `lake-stream` library so that `run --serve` can put the serving
//! layer in the stream's process without the stream depending on it.

use lake_stream_cli::serve;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand};
use lake_core::config::{LakeLocation, init_tracing};
use lake_core::error::exit_code;
use lake_core::run::new_run_id;
use lake_serve::AccessArgs;
use lake_stream::config::{
    DEFAULT_LATENESS, DEFAULT_MAX_CLOCK_SKEW, DurationArg, KafkaArgs, KafkaRunOptions, QueryName,
    StreamConfig, Trigger, parse_duration,
};
use lake_stream::generator::EventMix;
use lake_stream::produce::{ProduceOptions, produce};
use lake_stream::runner::run_kafka;
use lake_stream::stream_run::StreamRun;

/// Sales events of Kafka into the lake: bronze events, a DLQ, live gold views.
#[derive(Parser)]
#[command(name = "lake-stream", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct QueryArgs {
    #[command(flatten)]
    lake: LakeLocation,
    #[command(flatten)]
    query: QueryName,
}

#[derive(Subcommand)]
enum Command {
    /// Consume the topic: validate, deduplicate, aggregate, write, checkpoint.
    Run {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        query: QueryArgs,
        /// available-now, or interval=DURATION (e.g. interval=1s).
        #[arg(long, default_value = "available-now")]
        trigger: Trigger,
        /// Allowed lateness: events older than the latest event time minus this go to the DLQ.
        #[arg(long, default_value_t = DurationArg(DEFAULT_LATENESS))]
        lateness: DurationArg,
        /// Allowed clock skew: events more than this ahead of their
        /// micro-batch's processing time go to the DLQ (future_time).
        #[arg(long, default_value_t = DurationArg(DEFAULT_MAX_CLOCK_SKEW))]
        max_clock_skew: DurationArg,
        /// Most messages in one micro-batch.
        #[arg(long, default_value_t = 50_000)]
        max_batch: usize,
        /// Also serve the API and dashboard on this address (e.g.
        /// 127.0.0.1:8080), with the live views from memory.
        #[arg(long, value_name = "ADDR")]
        serve: Option<String>,
        // The API keys and TLS of --serve, as lake-serve takes them.
        #[command(flatten)]
        access: AccessArgs,
    },
    /// Send generated sales events; prints what a consumer must count (JSON).
    Produce {
        #[command(flatten)]
        kafka: KafkaArgs,
        /// Number of messages.
        #[arg(long)]
        count: Option<u64>,
        /// Send for this long (e.g. 30s).
        #[arg(long, value_parser = parse_duration)]
        duration: Option<Duration>,
        /// Messages per second (default: as fast as possible).
        #[arg(long)]
        rate: Option<f64>,
        /// Share of malformed messages.
        #[arg(long, default_value_t = 0.02)]
        malformed: f64,
        /// Share of duplicates (retries of a recent event).
        #[arg(long, default_value_t = 0.02)]
        duplicates: f64,
        /// Share of late events.
        #[arg(long, default_value_t = 0.01)]
        late: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Send without a key: each resent copy of an event goes to another
        /// partition than its original.
        #[arg(long)]
        unkeyed: bool,
        /// Create the topic with this many partitions if it does not exist.
        #[arg(long, value_name = "PARTITIONS")]
        create: Option<i32>,
    },
    /// Partitions, committed and checkpointed offsets, lag, event-time
    /// watermark, last checkpoint.
    Status {
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        query: QueryArgs,
        /// The allowed lateness the query runs with (run's --lateness): the
        /// watermark is the latest event time counted less this.
        #[arg(long, default_value_t = DurationArg(DEFAULT_LATENESS))]
        lateness: DurationArg,
    },
    /// Delete the stream's checkpoints (every source's, their claims
    /// included) and its tables: start over, with any source.
    Reset {
        #[command(flatten)]
        query: QueryArgs,
        /// Confirm.
        #[arg(long)]
        yes: bool,
    },
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run {
            kafka,
            query,
            trigger,
            lateness,
            max_clock_skew,
            max_batch,
            serve,
            access,
        } => {
            let settings = kafka.required()?;
            let lake = query.lake.open()?;
            let server = match &serve {
                Some(addr) => {
                    let server = serve::start(addr, &lake, &query.query.name, &access)?;
                    eprintln!("serving the API and dashboard at {}/", server.handle.url());
                    Some(server)
                }
                None => None,
            };
            let stop = Arc::new(AtomicBool::new(false));
            signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
            signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
            let config = StreamConfig {
                query: query.query.name.clone(),
                topic: settings.topic.clone(),
                source: settings.source_uri(),
                allowed_lateness: lateness.0,
                run_id: new_run_id(),
            };
            let options = KafkaRunOptions {
                trigger,
                max_batch,
                max_clock_skew: max_clock_skew.0,
                ..KafkaRunOptions::default()
            };
            // The run's manifest, under the run id its commits carry,
            // written however it ends (a process killed writes none).
            let mut record = StreamRun::begin(&config);
            let result = run_kafka(
                &lake,
                &settings,
                config,
                &options,
                stop,
                &mut |report, processor| {
                    record.saw(processor);
                    if let Some(server) = &server {
                        match serve::snapshot(processor) {
                            Ok(snapshot) => server.live.publish(snapshot),
                            Err(err) => tracing::warn!("live views not published: {err:#}"),
                        }
                    }
                    if report.messages > 0 {
                        eprintln!(
                            "batch: {} messages, {} counted, {} to the DLQ",
                            report.messages,
                            report.counted,
                            report.rejected.values().sum::<u64>()
                        );
                    }
                },
            );
            match record.finish(&lake, &result) {
                Ok(_) => {}
                // The run's own failure is what it reports.
                Err(err) if result.is_err() => tracing::warn!("{err:#}"),
                Err(err) => return Err(err),
            }
            let summary = result?;
            println!(
                "{} forwarded, {} batches, {} messages, {} counted, {} to the DLQ, {} replayed copies skipped",
                summary.forwarded,
                summary.batches,
                summary.messages,
                summary.counted,
                summary.rejected.values().sum::<u64>(),
                summary.replayed
            );
        }
        Command::Produce {
            kafka,
            count,
            duration,
            rate,
            malformed,
            duplicates,
            late,
            seed,
            unkeyed,
            create,
        } => {
            let settings = kafka.required()?;
            if let Some(partitions) = create {
                lake_stream::route::ensure_topic(&settings, &settings.topic, partitions)?;
            }
            let options = ProduceOptions {
                count,
                duration,
                rate,
                mix: EventMix {
                    malformed,
                    duplicate: duplicates,
                    late,
                },
                seed,
                unkeyed,
            };
            let report = produce(&settings, &options)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Command::Status {
            kafka,
            query,
            lateness,
        } => {
            let lake = query.lake.open()?;
            let statuses = lake_stream::admin::status(
                &lake,
                &kafka.required()?,
                &query.query.name,
                lateness.0,
            )?;
            print!("{}", lake_stream::admin::render(&statuses));
        }
        Command::Reset { query, yes } => {
            if !yes {
                bail!(
                    "reset deletes the checkpoints of query {} (every source's) and the \
                     stream's tables: add --yes",
                    query.query.name
                );
            }
            let lake = query.lake.open()?;
            let report = lake_stream::admin::reset(&lake, &query.query.name)?;
            println!(
                "deleted {} objects: the checkpoints of {} and the stream's tables",
                report.objects,
                match report.folders.as_slice() {
                    [] => "no source".to_string(),
                    folders => folders.join(", "),
                }
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    init_tracing();
    exit_code("lake-stream: error: ", run(Cli::parse()))
}
