//! The stream against a real Kafka-protocol broker (see lake-testkit):
//! exact totals and DLQ counts, crash recovery under kill -9, parallel
//! consumers with a rebalance, resuming, and bad input.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use lake_core::partition::{committed_dates, read_manifest, read_partition};
use lake_core::{Lake, Layer, PartitionRef};
use lake_stream::produce::{ProduceOptions, produce};
use lake_stream::producer::{EventMix, ProducerReport};
use lake_stream::run::KafkaSettings;
use lake_testkit::{free_port, kafka_server};
use polars::prelude::*;

const BIN: &str = env!("CARGO_BIN_EXE_lake-stream");

fn settings(topic: &str) -> KafkaSettings {
    KafkaSettings {
        brokers: kafka_server().brokers.clone(),
        topic: topic.to_string(),
        group: "producer".into(),
        extra: Vec::new(),
        connect_timeout: Duration::from_secs(10),
    }
}

fn send(topic: &str, count: u64, rate: Option<f64>, seed: u64) -> ProducerReport {
    produce(
        &settings(topic),
        &ProduceOptions {
            count: Some(count),
            duration: None,
            rate,
            mix: EventMix {
                malformed: 0.05,
                duplicate: 0.05,
                late: 0.03,
            },
            seed,
        },
    )
    .unwrap()
}

fn stream_command(lake: &Path, topic: &str, group: &str, trigger: &str) -> Command {
    let mut command = Command::new(BIN);
    command
        .args([
            "run",
            "--kafka",
            &kafka_server().brokers,
            "--topic",
            topic,
            "--group",
            group,
        ])
        .args(["--trigger", trigger, "--lake"])
        .arg(lake)
        .env_remove("LAKE_FAULT");
    command
}

fn run_available_now(lake: &Path, topic: &str, group: &str) -> Output {
    let output = stream_command(lake, topic, group, "available-now")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "lake-stream run failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Every committed partition of a table, all dates.
fn read_all(lake: &Lake, layer: Layer, table: &str) -> Option<DataFrame> {
    let mut out: Option<DataFrame> = None;
    for date in committed_dates(lake, layer, table).unwrap() {
        let partition = PartitionRef::new(layer, table, date);
        let manifest = read_manifest(lake, &partition).unwrap().unwrap();
        let df = read_partition(lake, &partition, &manifest, None).unwrap();
        out = Some(match out {
            None => df,
            Some(mut acc) => {
                acc.vstack_mut(&df).unwrap();
                acc
            }
        });
    }
    out
}

/// Checks the lake against what the producers sent.
fn assert_exact(lake_dir: &Path, reports: &[ProducerReport]) {
    let lake = Lake::open(lake_dir.to_str().unwrap()).unwrap();
    let mut expected: BTreeMap<String, (f64, u64)> = BTreeMap::new();
    let mut dlq: BTreeMap<String, u64> = BTreeMap::new();
    let mut counted = 0;
    for report in reports {
        counted += report.counted;
        for (country, e) in &report.by_country {
            let entry = expected.entry(country.clone()).or_default();
            entry.0 += e.total;
            entry.1 += e.count;
        }
        for (reason, n) in &report.dlq {
            *dlq.entry(reason.clone()).or_default() += n;
        }
    }

    // The live view: one row per country, totals and counts as sent.
    let live = read_all(&lake, Layer::Gold, "live_sales_by_country").expect("no live view");
    let dates = committed_dates(&lake, Layer::Gold, "live_sales_by_country").unwrap();
    let latest = PartitionRef::new(Layer::Gold, "live_sales_by_country", *dates.last().unwrap());
    let live = if dates.len() > 1 {
        read_partition(
            &lake,
            &latest,
            &read_manifest(&lake, &latest).unwrap().unwrap(),
            None,
        )
        .unwrap()
    } else {
        live
    };
    let countries: Vec<&str> = live
        .column("pays")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .flatten()
        .collect();
    let totals: Vec<f64> = live
        .column("total_ventes_live")
        .unwrap()
        .f64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    let counts: Vec<i64> = live
        .column("nb_transactions")
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    assert_eq!(countries.len(), expected.len(), "countries: {countries:?}");
    for ((country, total), count) in countries.iter().zip(&totals).zip(&counts) {
        let (want_total, want_count) = expected[*country];
        assert_eq!(*count as u64, want_count, "{country}: transactions");
        assert!(
            (total - want_total).abs() <= 1e-9 * want_total.abs(),
            "{country}: {total} vs {want_total}"
        );
    }

    // Bronze: every counted event once, no (partition, offset) twice.
    let events = read_all(&lake, Layer::Bronze, "ventes_temps_reel").expect("no bronze events");
    assert_eq!(events.height() as u64, counted);
    let positions: BTreeSet<(i32, i64)> = events
        .column("_partition")
        .unwrap()
        .i32()
        .unwrap()
        .into_no_null_iter()
        .zip(
            events
                .column("_offset")
                .unwrap()
                .i64()
                .unwrap()
                .into_no_null_iter(),
        )
        .collect();
    assert_eq!(
        positions.len(),
        events.height(),
        "a (partition, offset) appears twice in bronze"
    );

    // The DLQ: counts by reason as sent.
    let rejected = read_all(&lake, Layer::Bronze, "_dlq/ventes_temps_reel").expect("no DLQ");
    let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
    for reason in rejected
        .column("reason")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .flatten()
    {
        *by_reason.entry(reason.to_string()).or_default() += 1;
    }
    assert_eq!(by_reason, dlq);
}

#[test]
fn available_now_counts_exactly_what_was_sent_and_resumes_without_rereading() {
    let topic = kafka_server().create_topic("e2e", 3);
    let report = send(&topic, 4000, None, 11);
    let lake = tempfile::tempdir().unwrap();
    let output = run_available_now(lake.path(), &topic, "g-e2e");
    assert!(String::from_utf8_lossy(&output.stdout).contains("4000 messages"));
    assert_exact(lake.path(), std::slice::from_ref(&report));

    // A clean restart reads only what arrived since.
    let more = send(&topic, 500, None, 12);
    let output = run_available_now(lake.path(), &topic, "g-e2e");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(" 500 messages"), "{stdout}");
    assert_exact(lake.path(), &[report, more]);
}

fn kill9(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

#[test]
fn kill_9_at_random_moments_changes_nothing() {
    let topic = kafka_server().create_topic("crash", 2);
    let lake = tempfile::tempdir().unwrap();
    // Produce in the background while a consumer is killed and restarted.
    let producer_topic = topic.clone();
    let producer = std::thread::spawn(move || send(&producer_topic, 12_000, Some(1500.0), 21));
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut kills = 0;
    let started = Instant::now();
    while kills < 6 {
        // A new group each time: the dead member's partitions would otherwise
        // wait for its session to expire; checkpoints decide where to resume.
        let mut child = stream_command(
            lake.path(),
            &topic,
            &format!("g-crash-{kills}"),
            "interval=200ms",
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(400 + seed % 900));
        kill9(&mut child);
        kills += 1;
    }
    assert!(started.elapsed() < Duration::from_secs(120));
    let report = producer.join().unwrap();
    run_available_now(lake.path(), &topic, "g-crash-final");
    assert_exact(lake.path(), &[report]);
}

#[test]
fn two_consumers_split_the_partitions_and_survive_one_leaving() {
    let topic = kafka_server().create_topic("parallel", 4);
    let lake = tempfile::tempdir().unwrap();
    let producer_topic = topic.clone();
    // 15 s of events: time for the group to rebalance onto both consumers
    // and for both to commit batches, even on a loaded machine.
    let producer = std::thread::spawn(move || send(&producer_topic, 30_000, Some(2000.0), 31));
    let mut first = stream_command(lake.path(), &topic, "g-par", "interval=300ms")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut second = stream_command(lake.path(), &topic, "g-par", "interval=300ms")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until both processes have committed a batch (file names carry
    // the writer's run id), which needs the group to have split the
    // partitions between them.
    let deadline = Instant::now() + Duration::from_secs(12);
    let mut writers = batch_writers(lake.path());
    while writers.len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        writers = batch_writers(lake.path());
    }
    assert_eq!(writers.len(), 2, "writers before one leaves: {writers:?}");
    // The second leaves midway (a clean stop): the first takes its partitions.
    let _ = Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status();
    assert!(second.wait().unwrap().success());
    let report = producer.join().unwrap();
    std::thread::sleep(Duration::from_millis(2000));
    let _ = Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status();
    assert!(first.wait().unwrap().success());
    // Whatever is left (if anything), then the check.
    run_available_now(lake.path(), &topic, "g-par");
    assert_exact(lake.path(), &[report]);
    // Both processes checkpointed partitions.
    let checkpoints = lake_stream::checkpoint::CheckpointStore::new(
        &Lake::open(lake.path().to_str().unwrap()).unwrap(),
        "ventes_temps_reel",
    )
    .load_all()
    .unwrap();
    assert_eq!(checkpoints.len(), 4);
}

/// Run ids of the processes whose batches are committed in bronze.
fn batch_writers(lake: &Path) -> BTreeSet<String> {
    let lake_handle = Lake::open(lake.to_str().unwrap()).unwrap();
    let mut writers = BTreeSet::new();
    for date in committed_dates(&lake_handle, Layer::Bronze, "ventes_temps_reel").unwrap() {
        let partition = PartitionRef::new(Layer::Bronze, "ventes_temps_reel", date);
        if let Some(manifest) = read_manifest(&lake_handle, &partition).unwrap() {
            for file in manifest.files {
                writers.insert(file.name["part-".len().."part-".len() + 26].to_string());
            }
        }
    }
    writers
}

fn failing(command: &mut Command) -> String {
    let started = Instant::now();
    let output = command.output().unwrap();
    assert!(!output.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the error took too long"
    );
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let last = stderr.lines().last().unwrap_or("").to_string();
    assert!(last.starts_with("lake-stream: error: "), "{stderr}");
    last
}

#[test]
fn bad_input_gives_clear_errors() {
    let lake = tempfile::tempdir().unwrap();
    // No broker there.
    let dead = format!("127.0.0.1:{}", free_port());
    let line = failing(
        Command::new(BIN)
            .args(["run", "--kafka", &dead, "--connect-timeout", "2s", "--lake"])
            .arg(lake.path()),
    );
    assert!(
        line.contains(&format!("cannot reach Kafka at {dead} within 2 s")),
        "{line}"
    );

    // A topic that does not exist.
    let line = failing(
        Command::new(BIN)
            .args([
                "run",
                "--kafka",
                &kafka_server().brokers,
                "--topic",
                "no-such-topic",
                "--lake",
            ])
            .arg(lake.path()),
    );
    assert!(
        line.contains("topic no-such-topic does not exist"),
        "{line}"
    );

    // A corrupt checkpoint: refuse to start, name the object and the way out.
    let topic = kafka_server().create_topic("corrupt", 1);
    send(&topic, 50, None, 41);
    run_available_now(lake.path(), &topic, "g-corrupt");
    let checkpoint = lake
        .path()
        .join("checkpoints/ventes_temps_reel/partition-0.ckpt");
    let mut bytes = std::fs::read(&checkpoint).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(&checkpoint, bytes).unwrap();
    let line = failing(&mut stream_command(
        lake.path(),
        &topic,
        "g-corrupt-2",
        "available-now",
    ));
    assert!(line.contains("partition-0.ckpt is corrupt"), "{line}");
    assert!(
        line.contains("lake-stream reset --query ventes_temps_reel"),
        "{line}"
    );
}
