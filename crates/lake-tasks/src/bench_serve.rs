//! `cargo xtask bench serve`: requests/s and latency of the API under a
//! load of 32 connections, while the stream consumes events at a steady
//! rate in the same process as the server (`lake-stream run --serve`), as
//! in production.
//!
//! For each endpoint: an open-loop run at `--rate` requests/s (each
//! connection sends on a fixed schedule, so a slow answer cannot hide the
//! ones behind it) and a closed-loop run that sends as fast as answers come.
//!
//! The server runs as it would exposed: with an API key, which every
//! request sends (so its check is in the figures).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use lake_core::config::{LakeArgs, SourceArgs};
use lake_core::dag::group_digits;
use lake_stream::config::KafkaSettings;
use lake_stream::generator::EventMix;
use lake_stream::produce::{ProduceOptions, produce};

use crate::measure::percentile;
use crate::pipeline::{PipelineOptions, run_pipeline};

#[derive(Args)]
pub struct ServeArgs {
    /// Open connections of the load generator.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Requests/s of the open-loop runs.
    #[arg(long, default_value_t = 5_000.0)]
    rate: f64,
    /// Events/s the stream consumes meanwhile.
    #[arg(long, default_value_t = 5_000.0)]
    events_rate: f64,
    /// Length of each run.
    #[arg(long, default_value = "15s", value_parser = lake_stream::config::parse_duration)]
    duration: Duration,
    /// Use this broker instead of starting tansu.
    #[arg(long, env = "LAKE_BENCH_KAFKA")]
    kafka: Option<String>,
}

/// What one run measured.
struct LoadReport {
    requests: u64,
    errors: u64,
    elapsed: Duration,
    /// Seconds, sorted.
    latencies: Vec<f64>,
}

impl LoadReport {
    fn percentile_ms(&self, p: f64) -> f64 {
        percentile(&self.latencies, p) * 1000.0
    }

    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

/// `connections` clients, each on its own keep-alive connection, sending
/// GET `url` for `duration`: on a schedule of `rate` requests/s in all, or
/// back to back when `rate` is `None`.
async fn load(
    url: &str,
    key: &str,
    connections: usize,
    rate: Option<f64>,
    duration: Duration,
) -> Result<LoadReport> {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + duration;
    let mut tasks = Vec::with_capacity(connections);
    for i in 0..connections {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .context("building an HTTP client")?;
        let url = url.to_string();
        let authorization = format!("Bearer {key}");
        // Connections start spread over one period, not all at once.
        let period = rate.map(|r| Duration::from_secs_f64(connections as f64 / r));
        let offset = period.map_or(Duration::ZERO, |p| p.mul_f64(i as f64 / connections as f64));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut next = tokio::time::Instant::now() + offset;
            while tokio::time::Instant::now() < deadline {
                if let Some(period) = period {
                    tokio::time::sleep_until(next).await;
                    next += period;
                }
                let sent = Instant::now();
                let request = client.get(&url).header("authorization", &authorization);
                let ok = match request.send().await {
                    Ok(response) => {
                        response.status().is_success() && response.bytes().await.is_ok()
                    }
                    Err(_) => false,
                };
                latencies.push(sent.elapsed().as_secs_f64());
                if !ok {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (mut l, e) = task.await.context("a load connection failed")?;
        latencies.append(&mut l);
        errors += e;
    }
    latencies.sort_by(f64::total_cmp);
    Ok(LoadReport {
        requests: latencies.len() as u64,
        errors,
        elapsed: started.elapsed(),
        latencies,
    })
}

/// The value of a metric from `/metrics` (0 when absent).
async fn metric(base: &str, key: &str, name: &str) -> Result<f64> {
    let text = reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .bearer_auth(key)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(text
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0))
}

/// Events the stream had processed, and when (Unix seconds), as of its
/// last saved status.
async fn events_consumed(base: &str, key: &str) -> Result<(f64, f64)> {
    Ok((
        metric(base, key, "lake_stream_events_consumed_total").await?,
        metric(base, key, "lake_stream_status_updated_timestamp_seconds").await?,
    ))
}

pub fn serve(args: ServeArgs) -> Result<()> {
    // Gold from the built-in source, in a lake of the benchmark's own.
    let lake_dir = tempfile::Builder::new()
        .prefix("lake-bench-serve-")
        .tempdir()?;
    let mut options = PipelineOptions::new(
        LakeArgs {
            lake: lake_core::config::LakeLocation {
                url: lake_dir.path().display().to_string(),
            },
            date: None,
        },
        SourceArgs {
            pg: None,
            generator: lake_core::config::GeneratorArgs {
                scale: 1,
                seed: lake_core::config::DEFAULT_GENERATOR_SEED,
            },
        },
    );
    options.run.progress = false;
    run_pipeline(&options)?;

    let brokers = match &args.kafka {
        Some(b) => b.clone(),
        None => lake_testkit::kafka_server().brokers.clone(),
    };
    let topic = lake_testkit::KafkaServer::attach(&brokers).create_topic("bench-serve", 4);
    let port = lake_testkit::free_port();
    let base = format!("http://127.0.0.1:{port}");
    // A key of this run only, to the server through its environment.
    let key = format!("bench-{}", lake_core::run::new_run_id());
    let mut stream = Command::new(crate::bench_stream::lake_stream_binary()?)
        .args([
            "run",
            "--kafka",
            &brokers,
            "--topic",
            &topic,
            "--trigger",
            "interval=1s",
        ])
        .args(["--group", &format!("bench-serve-{}", std::process::id())])
        .arg("--lake")
        .arg(lake_dir.path())
        .args(["--serve", &format!("127.0.0.1:{port}")])
        .env("LAKE_API_KEYS", &key)
        .env_remove("LAKE_API_KEY_FILE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting lake-stream")?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let ready_by = Instant::now() + Duration::from_secs(30);
        while reqwest::get(format!("{base}/health")).await.is_err() {
            if Instant::now() > ready_by {
                bail!("lake-stream --serve did not answer within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Events at a steady rate for every run, on a thread of their own.
        let runs = 4;
        let producing = Arc::new(AtomicBool::new(true));
        let producer = {
            let settings = KafkaSettings {
                brokers: brokers.clone(),
                topic: topic.clone(),
                group: "bench-serve".into(),
                extra: Vec::new(),
                connect_timeout: Duration::from_secs(10),
            };
            let options = ProduceOptions {
                count: None,
                duration: Some(args.duration * (runs + 1) + Duration::from_secs(5)),
                rate: Some(args.events_rate),
                mix: EventMix::default(),
                seed: 5,
                unkeyed: false,
            };
            let producing = producing.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let report = produce(&settings, &options);
                if let Ok(report) = &report {
                    eprintln!(
                        "producer: {} events/s over {:.0} s",
                        group_digits((report.sent as f64 / started.elapsed().as_secs_f64()) as u64),
                        started.elapsed().as_secs_f64()
                    );
                }
                producing.store(false, Ordering::SeqCst);
                report
            })
        };
        // Measure once the stream has saved a status with events in it.
        let consuming_by = Instant::now() + Duration::from_secs(60);
        while events_consumed(&base, &key).await?.0 <= 0.0 {
            if Instant::now() > consuming_by {
                bail!("lake-stream consumed no event within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut rows = Vec::new();
        // The stream's rate while the live endpoint takes its paced load:
        // the target's condition.
        let mut stream_rate = 0.0;
        for path in ["/api/live/sales-by-country", "/api/gold/kpi_summary"] {
            let url = format!("{base}{path}");
            let (consumed_before, at_before) = events_consumed(&base, &key).await?;
            let paced = load(&url, &key, args.connections, Some(args.rate), args.duration).await?;
            if path.starts_with("/api/live") {
                // Between two saved statuses: counts and times of the same
                // batches, so the rate has no batch-granularity error.
                let (consumed_after, at_after) = events_consumed(&base, &key).await?;
                stream_rate = (consumed_after - consumed_before) / (at_after - at_before).max(1e-3);
                eprintln!(
                    "stream during the paced live run: {} events/s, lag at its end {}",
                    group_digits(stream_rate as u64),
                    metric(&base, &key, "lake_stream_lag_messages").await?
                );
            }
            let flat_out = load(&url, &key, args.connections, None, args.duration).await?;
            rows.push((path, paced, flat_out));
        }
        if !producing.load(Ordering::SeqCst) {
            eprintln!("warning: the producer stopped before the measurements ended");
        }
        let _ = producer.join();
        Ok((rows, stream_rate))
    });
    let _ = Command::new("kill")
        .args(["-TERM", &stream.id().to_string()])
        .status();
    let _ = stream.wait();
    let (rows, stream_rate) = result?;

    println!(
        "\nserve benchmark: {} connections, API key on; lake-stream --serve consumed {} events/s during the paced live run",
        args.connections,
        group_digits(stream_rate as u64)
    );
    println!(
        "  {:<30} {:>14} {:>10} {:>10} {:>10} {:>8}",
        "endpoint / load", "requests/s", "p50 ms", "p99 ms", "max ms", "errors"
    );
    let mut live_p99 = f64::NAN;
    let mut live_rate = 0.0;
    for (path, paced, flat_out) in &rows {
        for (label, report) in [
            (format!("at {} req/s", args.rate), paced),
            ("flat out".to_string(), flat_out),
        ] {
            println!(
                "  {:<30} {:>14} {:>10.2} {:>10.2} {:>10.2} {:>8}",
                format!("{path} {label}"),
                group_digits(report.rate() as u64),
                report.percentile_ms(0.5),
                report.percentile_ms(0.99),
                report.latencies.last().copied().unwrap_or(f64::NAN) * 1000.0,
                report.errors
            );
        }
        if *path == "/api/live/sales-by-country" {
            live_p99 = paced.percentile_ms(0.99);
            live_rate = paced.rate();
        }
    }
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!("\ntargets");
    println!(
        "  live p99 < 5 ms at {} req/s:   {live_p99:>6.2} ms at {} req/s   {}",
        args.rate,
        group_digits(live_rate as u64),
        verdict(live_p99 < 5.0 && live_rate >= 0.95 * args.rate)
    );
    println!(
        "  stream at {} events/s:        {} events/s   {}",
        args.events_rate,
        group_digits(stream_rate as u64),
        // The count moves once per 1 s micro-batch: +-1 batch over the run.
        verdict(stream_rate >= 0.9 * args.events_rate)
    );
    Ok(())
}
