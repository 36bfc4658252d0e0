//! `cargo xtask bench stream --events N`: the stream's throughput next to a
//! raw consumer that reads the same topic and does nothing (the floor set
//! by the broker), and the latency from an event's production to its
//! presence in the live view at a steady rate with a 1 s trigger.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use lake_core::dag::group_digits;
use lake_stream::produce::{ProduceOptions, produce, produce_with};
use lake_stream::producer::EventMix;
use lake_stream::run::KafkaSettings;
use lake_table::{Lake, Layer, TableRef};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

#[derive(Args)]
pub struct StreamArgs {
    /// Events pre-filled in the topic for the throughput run.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Partitions of the benchmark topic.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Steady rate of the latency run (events/s).
    #[arg(long, default_value_t = 5_000.0)]
    rate: f64,
    /// Length of the latency run.
    #[arg(long, default_value = "30s", value_parser = lake_stream::run::parse_duration)]
    duration: Duration,
    /// Use this broker instead of starting tansu.
    #[arg(long, env = "LAKE_BENCH_KAFKA")]
    kafka: Option<String>,
}

fn settings(brokers: &str, topic: &str) -> KafkaSettings {
    KafkaSettings {
        brokers: brokers.to_string(),
        topic: topic.to_string(),
        group: "bench".into(),
        extra: Vec::new(),
        connect_timeout: Duration::from_secs(10),
    }
}

/// Reads every partition from the start to its high watermark, doing
/// nothing with the messages; returns (messages, time).
fn raw_consume(brokers: &str, topic: &str, partitions: i32) -> Result<(u64, Duration)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("raw-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        // The same fetch setting as lake-stream's consumer.
        .set("fetch.wait.max.ms", "100")
        .create()
        .context("creating the raw consumer")?;
    let mut targets = Vec::new();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        targets.push(high);
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    let total: i64 = targets.iter().sum();
    let started = Instant::now();
    consumer.assign(&tpl)?;
    let mut read = 0i64;
    while read < total {
        match consumer.poll(Duration::from_secs(5)) {
            Some(Ok(_)) => read += 1,
            Some(Err(err)) => bail!("raw consumer: {err}"),
            None => bail!("raw consumer stalled at {read} of {total}"),
        }
    }
    Ok((read as u64, started.elapsed()))
}

/// The `lake-stream` binary beside this one.
pub(crate) fn lake_stream_binary() -> Result<std::path::PathBuf> {
    let exe = std::env::current_exe().context("locating xtask")?;
    let binary = exe.with_file_name("lake-stream");
    if !binary.exists() {
        bail!(
            "{} is not built: run `cargo build --release -p lake-stream-cli` first",
            binary.display()
        );
    }
    Ok(binary)
}

fn stream_command(
    brokers: &str,
    topic: &str,
    lake: &std::path::Path,
    trigger: &str,
) -> Result<Command> {
    let mut command = Command::new(lake_stream_binary()?);
    command
        .args([
            "run",
            "--kafka",
            brokers,
            "--topic",
            topic,
            "--trigger",
            trigger,
        ])
        .args([
            "--group",
            &format!("bench-{}-{trigger}", std::process::id()),
            "--lake",
        ])
        .arg(lake)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Ok(command)
}

/// Transactions in the live view, 0 before it exists.
fn live_transactions(lake: &Lake) -> i64 {
    let table = TableRef::new(Layer::Gold, "live_sales_by_country");
    let Ok(Some((_, df))) = lake_table::read_latest_date(lake, &table) else {
        return 0;
    };
    df.column("nb_transactions")
        .ok()
        .and_then(|c| c.i64().ok().map(|ca| ca.iter().flatten().sum()))
        .unwrap_or(0)
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

pub fn stream(args: StreamArgs) -> Result<()> {
    let brokers = match &args.kafka {
        Some(b) => b.clone(),
        None => lake_testkit::kafka_server().brokers.clone(),
    };
    let server = lake_testkit::KafkaServer::attach(&brokers);

    // Throughput over a pre-filled topic.
    let topic = server.create_topic("bench-throughput", args.partitions);
    let clean = EventMix {
        malformed: 0.0,
        duplicate: 0.0,
        late: 0.0,
    };
    let started = Instant::now();
    produce(
        &settings(&brokers, &topic),
        &ProduceOptions {
            count: Some(args.events),
            duration: None,
            rate: None,
            mix: clean,
            seed: 1,
        },
    )?;
    eprintln!(
        "pre-filled {} events in {:.1} s",
        group_digits(args.events),
        started.elapsed().as_secs_f64()
    );
    let (raw_messages, raw_time) = raw_consume(&brokers, &topic, args.partitions)?;
    let lake_dir = tempfile::Builder::new()
        .prefix("lake-bench-stream-")
        .tempdir()?;
    let started = Instant::now();
    let child = stream_command(&brokers, &topic, lake_dir.path(), "available-now")?.spawn()?;
    let (ok, max_rss) = crate::bench::wait_with_rusage(child.id())?;
    let stream_time = started.elapsed();
    if !ok {
        bail!("lake-stream run failed");
    }

    // Latency at a steady rate with a 1 s trigger.
    let topic = server.create_topic("bench-latency", args.partitions);
    let lake_dir = tempfile::Builder::new()
        .prefix("lake-bench-latency-")
        .tempdir()?;
    let lake = Lake::open(lake_dir.path().to_str().unwrap_or("."))?;
    let mut consumer = stream_command(&brokers, &topic, lake_dir.path(), "interval=1s")?.spawn()?;
    std::thread::sleep(Duration::from_secs(3));
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        let lake = lake.clone();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut last = 0i64;
            loop {
                let now = Instant::now();
                let count = live_transactions(&lake);
                for _ in last..count {
                    seen.push(now);
                }
                last = last.max(count);
                if done.load(Ordering::SeqCst) {
                    break seen;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    // Produce at the rate, timing each event from its hand-over to the
    // client (all valid, so the i-th event sent is the i-th counted).
    let total = (args.rate * args.duration.as_secs_f64()) as u64;
    let mut sent_at: Vec<Instant> = Vec::with_capacity(total as usize);
    produce_with(
        &settings(&brokers, &topic),
        &ProduceOptions {
            count: Some(total),
            duration: None,
            rate: Some(args.rate),
            mix: clean,
            seed: 2,
        },
        &mut |_| sent_at.push(Instant::now()),
    )?;
    // Wait for the view to catch up (bounded).
    let deadline = Instant::now() + Duration::from_secs(60);
    while live_transactions(&lake) < total as i64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    done.store(true, Ordering::SeqCst);
    let seen = watcher
        .join()
        .map_err(|_| anyhow::anyhow!("watcher panicked"))?;
    let _ = Command::new("kill")
        .args(["-TERM", &consumer.id().to_string()])
        .status();
    let _ = consumer.wait();
    let mut latencies: Vec<f64> = sent_at
        .iter()
        .zip(&seen)
        .map(|(sent, seen)| seen.saturating_duration_since(*sent).as_secs_f64())
        .collect();
    latencies.sort_by(f64::total_cmp);

    let raw_rate = raw_messages as f64 / raw_time.as_secs_f64();
    let stream_rate = args.events as f64 / stream_time.as_secs_f64();
    println!(
        "\nstream benchmark, {} events, {} partitions",
        group_digits(args.events),
        args.partitions
    );
    println!(
        "  raw rdkafka consumer:        {:>10} events/s ({:.2} s)",
        group_digits(raw_rate as u64),
        raw_time.as_secs_f64()
    );
    println!(
        "  lake-stream available-now:   {:>10} events/s ({:.2} s, peak RSS {} MiB)",
        group_digits(stream_rate as u64),
        stream_time.as_secs_f64(),
        max_rss / (1024 * 1024)
    );
    println!(
        "  latency at {} events/s, 1 s trigger ({} events seen of {}): p50 {:.3} s, p99 {:.3} s",
        args.rate,
        group_digits(seen.len() as u64),
        group_digits(total),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
    let ratio = stream_rate / raw_rate * 100.0;
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!("\ntargets");
    println!(
        "  >= 80% of the raw consumer:  {ratio:>6.1} %   {}",
        verdict(ratio >= 80.0)
    );
    let p99 = percentile(&latencies, 0.99);
    println!(
        "  p99 latency < 1.5 s:         {p99:>6.3} s   {}",
        verdict(p99 < 1.5)
    );
    Ok(())
}
