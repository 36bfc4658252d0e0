//! `cargo xtask bench stream --events N`: the stream's throughput next to a
//! raw consumer that reads the same topic and does nothing (the floor set
//! by the broker), with one process (available-now) and with two in one
//! consumer group; the checkpoint bytes per partition after the run; and
//! the latency from an event's production to its presence in the live
//! view at steady rates with a 200 ms trigger.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use lake_core::dag::group_digits;
use lake_stream::config::KafkaSettings;
use lake_stream::generator::EventMix;
use lake_stream::produce::{ProduceOptions, produce, produce_with};
use lake_table::{Lake, Layer, Table, TableRef};
use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::measure::{load_average, percentile, wait_with_rusage};

#[derive(Args)]
pub struct StreamArgs {
    /// Events pre-filled in the topic for the throughput run.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Partitions of the benchmark topic.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Steady rates of the latency runs (events/s), comma separated.
    #[arg(long, value_delimiter = ',', default_value = "5000,20000")]
    rates: Vec<f64>,
    /// Length of each latency run.
    #[arg(long, default_value = "20s", value_parser = lake_stream::config::parse_duration)]
    duration: Duration,
    /// Trigger of the latency runs.
    #[arg(long, default_value = "interval=200ms")]
    trigger: String,
    /// Use this broker instead of starting tansu.
    #[arg(long, env = "LAKE_BENCH_KAFKA")]
    kafka: Option<String>,
    /// A folder holding another build's binaries (its `lake-stream`): the
    /// one-process throughput run is repeated with that build, right after
    /// this one's, over the same pre-filled topic (a consumer group and a
    /// lake of its own), so two builds compare side by side in one run.
    #[arg(long, value_name = "DIR")]
    baseline: Option<std::path::PathBuf>,
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

/// A consumer that does nothing but read (no group membership, lake-stream's
/// fetch setting), and the assignment of every partition of `topic` from
/// its start.
fn raw_consumer(
    brokers: &str,
    topic: &str,
    partitions: i32,
    name: &str,
) -> Result<(BaseConsumer, TopicPartitionList)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{name}-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        // The same fetch setting as lake-stream's consumer.
        .set("fetch.wait.max.ms", "100")
        .create()
        .context("creating the raw consumer")?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    Ok((consumer, tpl))
}

/// Reads every partition from the start to its high watermark, doing
/// nothing with the messages; returns (messages, time).
fn raw_consume(brokers: &str, topic: &str, partitions: i32) -> Result<(u64, Duration)> {
    let (consumer, tpl) = raw_consumer(brokers, topic, partitions, "raw")?;
    let mut total = 0;
    for p in 0..partitions {
        total += consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))?
            .1;
    }
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
    stream_command_of(
        &lake_stream_binary()?,
        brokers,
        topic,
        lake,
        trigger,
        &format!("bench-{}-{trigger}-{topic}", std::process::id()),
    )
}

/// Numbers the children's log files.
static CHILD_LOGS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// `binary run ...`: a `lake-stream` of this build or another.
fn stream_command_of(
    binary: &std::path::Path,
    brokers: &str,
    topic: &str,
    lake: &std::path::Path,
    trigger: &str,
    group: &str,
) -> Result<Command> {
    let mut command = Command::new(binary);
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
        .args(["--group", group, "--lake"])
        .arg(lake)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // For a profile of the micro-batches (with RUST_LOG=lake_stream=debug):
    // each child's log in a file of its own there.
    if let Some(dir) = std::env::var_os("LAKE_BENCH_LOG_DIR") {
        let path = std::path::Path::new(&dir).join(format!(
            "{group}-{}.log",
            std::process::id() as u64 * 1000 + CHILD_LOGS.fetch_add(1, Ordering::Relaxed)
        ));
        let log =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        command.stderr(log);
    }
    Ok(command)
}

const LIVE_VIEW: &str = lake_stream::config::LIVE_BY_COUNTRY;

/// Transactions in the live view, 0 before it exists; with the version
/// read.
fn live_transactions_at(lake: &Lake) -> (i64, Option<i64>) {
    let table = TableRef::new(Layer::Gold, LIVE_VIEW);
    let Ok(Ok(Some(snapshot))) = Table::open(lake, table).map(|t| t.latest()) else {
        return (0, None);
    };
    let count = snapshot
        .latest_date()
        .and_then(|date| snapshot.scan(date).ok()?.collect().ok())
        .and_then(|df| {
            df.column("nb_transactions")
                .ok()
                .and_then(|c| c.i64().ok().map(|ca| ca.iter().flatten().sum()))
        })
        .unwrap_or(0);
    (count, Some(snapshot.version()))
}

/// Transactions in the live view, 0 before it exists.
fn live_transactions(lake: &Lake) -> i64 {
    live_transactions_at(lake).0
}

/// Follows the live view's transactions, reading the table only when its
/// log has a new version: a poll every few milliseconds costs a lookup of
/// one object, not a snapshot load (which would take a core from the
/// stream being measured).
struct LiveWatch {
    lake: Lake,
    version: Option<i64>,
    count: i64,
}

impl LiveWatch {
    fn new(lake: &Lake) -> Self {
        let (count, version) = live_transactions_at(lake);
        LiveWatch {
            lake: lake.clone(),
            version,
            count,
        }
    }

    fn count(&mut self) -> i64 {
        let next = self.version.map_or(0, |v| v + 1);
        let key = format!("{LIVE_VIEW}/_delta_log/{next:020}.json");
        if matches!(self.lake.head(Layer::Gold, &key), Ok(Some(_))) {
            let (count, version) = live_transactions_at(&self.lake);
            self.count = self.count.max(count);
            self.version = version.max(self.version);
        }
        self.count
    }
}

/// Checkpoint objects of the query after a run: (files, total bytes,
/// largest).
fn checkpoint_bytes(lake: &Lake) -> Result<(usize, u64, u64)> {
    let objects = lake.list(Layer::Checkpoints, lake_stream::config::QUERY)?;
    let sizes: Vec<u64> = objects
        .iter()
        .filter(|o| o.key.ends_with(".ckpt"))
        .map(|o| o.size)
        .collect();
    Ok((
        sizes.len(),
        sizes.iter().sum(),
        sizes.iter().copied().max().unwrap_or(0),
    ))
}

/// Two `interval` processes in one group over the pre-filled topic: the
/// time until the live view counts every event.
fn two_processes(brokers: &str, topic: &str, events: u64) -> Result<Duration> {
    let lake_dir = tempfile::Builder::new()
        .prefix("lake-bench-stream-2-")
        .tempdir()?;
    let lake = Lake::open(lake_dir.path().to_str().unwrap_or("."))?;
    let group = format!("bench-{}-two", std::process::id());
    let started = Instant::now();
    let mut children = Vec::new();
    for _ in 0..2 {
        children.push(Stopped(
            stream_command_of(
                &lake_stream_binary()?,
                brokers,
                topic,
                lake_dir.path(),
                "interval=1s",
                &group,
            )?
            .spawn()?,
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut counted = 0;
    while counted < events as i64 {
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        counted = live_transactions(&lake);
    }
    let took = started.elapsed();
    let exited: Vec<String> = children
        .iter_mut()
        .filter_map(|child| child.0.try_wait().ok().flatten().map(|s| s.to_string()))
        .collect();
    for child in &mut children {
        child.stop();
    }
    if !exited.is_empty() {
        bail!("a lake-stream process of the two ended before the last event ({exited:?})");
    }
    if counted < events as i64 {
        bail!("two processes counted {counted} of {events} events in 600 s");
    }
    Ok(took)
}

/// A child process stopped (SIGTERM, then waited for) however the
/// benchmark ends.
struct Stopped(std::process::Child);

impl Stopped {
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            self.stop();
        }
    }
}

/// The broker's floor at a steady rate: p50 and p99 from an event's
/// hand-over to the producer client (its message timestamp, set by the
/// client then) to its poll by a consumer that does nothing else.
fn raw_latency(
    server: &lake_testkit::KafkaServer,
    brokers: &str,
    partitions: i32,
    rate: f64,
    duration: Duration,
) -> Result<(f64, f64)> {
    let topic = server.create_topic("bench-raw-latency", partitions);
    let total = (rate * duration.as_secs_f64()) as usize;
    let (consumer, tpl) = raw_consumer(brokers, &topic, partitions, "raw-latency")?;
    consumer.assign(&tpl)?;
    let reader = std::thread::spawn(move || -> Result<Vec<f64>> {
        let mut latencies = Vec::with_capacity(total);
        let deadline = Instant::now() + duration + Duration::from_secs(60);
        while latencies.len() < total {
            if Instant::now() > deadline {
                bail!("the raw consumer got {} of {total} events", latencies.len());
            }
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => {
                    let now = chrono::Utc::now().timestamp_millis();
                    if let Some(sent) = message.timestamp().to_millis() {
                        latencies.push((now - sent) as f64 / 1000.0);
                    }
                }
                Some(Err(err)) => bail!("raw consumer: {err}"),
                None => {}
            }
        }
        Ok(latencies)
    });
    produce(
        &settings(brokers, &topic),
        &valid_events(total as u64, Some(rate), 3),
    )?;
    let mut latencies = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the raw consumer panicked"))??;
    latencies.sort_by(f64::total_cmp);
    Ok((percentile(&latencies, 0.5), percentile(&latencies, 0.99)))
}

/// Latency at a steady rate: p50 and p99 from an event's hand-over to the
/// producer client to its count in the live view, and the events seen.
fn latency(
    server: &lake_testkit::KafkaServer,
    brokers: &str,
    partitions: i32,
    rate: f64,
    duration: Duration,
    trigger: &str,
) -> Result<(f64, f64, usize, u64)> {
    let topic = server.create_topic("bench-latency", partitions);
    let lake_dir = tempfile::Builder::new()
        .prefix("lake-bench-latency-")
        .tempdir()?;
    let lake = Lake::open(lake_dir.path().to_str().unwrap_or("."))?;
    let mut consumer = Stopped(stream_command(brokers, &topic, lake_dir.path(), trigger)?.spawn()?);
    // The consumer joins its groups and counts a first event before the
    // measured ones are sent.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut warmup_sent = 0i64;
    while live_transactions(&lake) == 0 && Instant::now() < deadline {
        warmup_sent += 1;
        send_valid(brokers, &topic, 1, 1000 + warmup_sent as u64)?;
        std::thread::sleep(Duration::from_millis(500));
    }
    while live_transactions(&lake) < warmup_sent && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let warmup = live_transactions(&lake);
    if warmup != warmup_sent {
        bail!("the stream counted {warmup} of the {warmup_sent} warm-up events in 30 s");
    }
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        let lake = lake.clone();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut last = warmup;
            let mut watch = LiveWatch::new(&lake);
            loop {
                let now = Instant::now();
                let count = watch.count();
                for _ in last..count {
                    seen.push(now);
                }
                last = last.max(count);
                if done.load(Ordering::SeqCst) {
                    break seen;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    // Produce at the rate, timing each event from its hand-over to the
    // client (all valid, so the i-th event sent is the i-th counted).
    let total = (rate * duration.as_secs_f64()) as u64;
    let mut sent_at: Vec<Instant> = Vec::with_capacity(total as usize);
    produce_with(
        &settings(brokers, &topic),
        &valid_events(total, Some(rate), 2),
        &mut |_| sent_at.push(Instant::now()),
    )?;
    // Wait for the view to catch up (bounded).
    let deadline = Instant::now() + Duration::from_secs(60);
    while live_transactions(&lake) < warmup + total as i64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    done.store(true, Ordering::SeqCst);
    let seen = watcher
        .join()
        .map_err(|_| anyhow::anyhow!("watcher panicked"))?;
    consumer.stop();
    let mut latencies: Vec<f64> = sent_at
        .iter()
        .zip(&seen)
        .map(|(sent, seen)| seen.saturating_duration_since(*sent).as_secs_f64())
        .collect();
    latencies.sort_by(f64::total_cmp);
    Ok((
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        seen.len(),
        total,
    ))
}

/// Fills the topic with `events` valid events, as fast as the broker takes them.
fn prefill(brokers: &str, topic: &str, events: u64) -> Result<()> {
    send_valid(brokers, topic, events, 1)
}

/// Sends `events` valid events of generator seed `seed` (the same seed
/// twice sends the same events).
fn send_valid(brokers: &str, topic: &str, events: u64, seed: u64) -> Result<()> {
    produce(&settings(brokers, topic), &valid_events(events, None, seed))?;
    Ok(())
}

/// `count` valid, keyed events of generator seed `seed`, at `rate` events/s
/// (as fast as the broker takes them when `None`).
fn valid_events(count: u64, rate: Option<f64>, seed: u64) -> ProduceOptions {
    ProduceOptions {
        count: Some(count),
        duration: None,
        rate,
        mix: EventMix {
            malformed: 0.0,
            duplicate: 0.0,
            late: 0.0,
        },
        seed,
        unkeyed: false,
    }
}

/// The one-process available-now run of another build's `lake-stream`
/// (in `dir`) over `topic`: its time and peak RSS.
fn baseline_throughput(
    dir: &std::path::Path,
    brokers: &str,
    topic: &str,
) -> Result<(Duration, u64)> {
    let binary = dir.join("lake-stream");
    if !binary.is_file() {
        bail!("--baseline {}: no lake-stream binary there", dir.display());
    }
    let lake_dir = tempfile::Builder::new()
        .prefix("lake-bench-stream-baseline-")
        .tempdir()?;
    let group = format!("bench-{}-baseline-{topic}", std::process::id());
    let started = Instant::now();
    let child = stream_command_of(
        &binary,
        brokers,
        topic,
        lake_dir.path(),
        "available-now",
        &group,
    )?
    .spawn()?;
    let (ok, max_rss) = wait_with_rusage(child.id())?;
    let took = started.elapsed();
    if !ok {
        bail!("the --baseline build's lake-stream run failed");
    }
    Ok((took, max_rss))
}

pub fn stream(args: StreamArgs) -> Result<()> {
    let brokers = match &args.kafka {
        Some(b) => b.clone(),
        None => lake_testkit::kafka_server().brokers.clone(),
    };
    let server = lake_testkit::KafkaServer::attach(&brokers);
    let load = load_average();

    // Throughput over a pre-filled topic.
    let topic = server.create_topic("bench-throughput", args.partitions);
    let started = Instant::now();
    prefill(&brokers, &topic, args.events)?;
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
    let (ok, max_rss) = wait_with_rusage(child.id())?;
    let stream_time = started.elapsed();
    if !ok {
        bail!("lake-stream run failed");
    }
    let lake = Lake::open(lake_dir.path().to_str().unwrap_or("."))?;
    let (checkpoints, checkpoint_total, checkpoint_largest) = checkpoint_bytes(&lake)?;
    let baseline = match &args.baseline {
        Some(dir) => Some(baseline_throughput(dir, &brokers, &topic)?),
        None => None,
    };
    // Two processes on a topic of their own: the first run's internal
    // topic already holds its events.
    let topic = server.create_topic("bench-throughput-2", args.partitions);
    prefill(&brokers, &topic, args.events)?;
    let two_time = two_processes(&brokers, &topic, args.events)?;

    let mut latencies = Vec::new();
    for rate in &args.rates {
        let floor = raw_latency(&server, &brokers, args.partitions, *rate, args.duration)?;
        latencies.push((
            *rate,
            latency(
                &server,
                &brokers,
                args.partitions,
                *rate,
                args.duration,
                &args.trigger,
            )?,
            floor,
        ));
    }

    let raw_rate = raw_messages as f64 / raw_time.as_secs_f64();
    let stream_rate = args.events as f64 / stream_time.as_secs_f64();
    let two_rate = args.events as f64 / two_time.as_secs_f64();
    println!(
        "\nstream benchmark, {} events, {} partitions (load average before: {load})",
        group_digits(args.events),
        args.partitions
    );
    println!(
        "  raw rdkafka consumer:        {:>10} events/s ({:.2} s)",
        group_digits(raw_rate as u64),
        raw_time.as_secs_f64()
    );
    println!(
        "  lake-stream, 1 process:      {:>10} events/s ({:.2} s available-now, peak RSS {} MiB)",
        group_digits(stream_rate as u64),
        stream_time.as_secs_f64(),
        max_rss / (1024 * 1024)
    );
    if let Some((time, rss)) = baseline {
        println!(
            "  --baseline build, 1 process: {:>10} events/s ({:.2} s available-now, peak RSS {} MiB; this build: {:.2}x its time)",
            group_digits((args.events as f64 / time.as_secs_f64()) as u64),
            time.as_secs_f64(),
            rss / (1024 * 1024),
            stream_time.as_secs_f64() / time.as_secs_f64()
        );
    }
    println!(
        "  lake-stream, 2 processes:    {:>10} events/s ({:.2} s to the last event in the live view)",
        group_digits(two_rate as u64),
        two_time.as_secs_f64()
    );
    println!(
        "  checkpoints after the run:   {checkpoints} objects, {} bytes, largest {} bytes ({} per partition on average)",
        group_digits(checkpoint_total),
        group_digits(checkpoint_largest),
        group_digits(checkpoint_total / checkpoints.max(1) as u64)
    );
    for (rate, (p50, p99, seen, total), (raw50, raw99)) in &latencies {
        println!(
            "  latency at {rate} events/s, {} ({} events seen of {}): p50 {p50:.3} s, p99 {p99:.3} s \
             (raw consumer: p50 {raw50:.3} s, p99 {raw99:.3} s)",
            args.trigger,
            group_digits(*seen as u64),
            group_digits(*total),
        );
    }
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!("\ntargets");
    for (name, rate) in [("1 process", stream_rate), ("2 processes", two_rate)] {
        let ratio = rate / raw_rate * 100.0;
        println!(
            "  >= 80% of the raw consumer, {name:<11}: {ratio:>6.1} %   {}",
            verdict(ratio >= 80.0)
        );
    }
    for (rate, (_, p99, _, _), _) in &latencies {
        let bound = if *rate <= 5_000.0 { 0.5 } else { 1.0 };
        println!(
            "  p99 latency at {rate} events/s < {bound} s: {p99:>6.3} s   {}",
            verdict(*p99 < bound)
        );
    }
    Ok(())
}
