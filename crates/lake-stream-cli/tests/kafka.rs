//! The stream against a real Kafka-protocol broker (see lake-testkit):
//! exact totals and DLQ counts, crash recovery under kill -9, parallel
//! consumers with a rebalance, resuming, and bad input.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use lake_stream::checkpoint::CheckpointStore;
use lake_stream::config::KafkaSettings;
use lake_stream::generator::{EventMix, ProducerReport};
use lake_stream::produce::{ProduceOptions, produce};
use lake_stream::route::{Envelope, internal_topic};
use lake_table::{Lake, Layer, Table, TableRef};
use lake_testkit::{free_port, kafka_server};
use polars::prelude::*;
use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

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
    send_with(topic, count, rate, seed, false)
}

/// `unkeyed`: as a producer that sends without a key, each resent copy of
/// an event on another partition than its original.
fn send_with(
    topic: &str,
    count: u64,
    rate: Option<f64>,
    seed: u64,
    unkeyed: bool,
) -> ProducerReport {
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
            unkeyed,
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

/// An available-now run to its end (at most two minutes).
fn run_available_now(lake: &Path, topic: &str, group: &str) -> Output {
    // Output to files, not pipes: a full pipe would stall the run.
    let logs = tempfile::tempdir().unwrap();
    let (out, err) = (logs.path().join("stdout"), logs.path().join("stderr"));
    let mut child = stream_command(lake, topic, group, "available-now")
        .env("RUST_LOG", "info")
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            kill9(&mut child);
            let log = std::fs::read_to_string(&err).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            panic!(
                "an available-now run of {topic} did not end within 120 s; its last lines:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = Output {
        status,
        stdout: std::fs::read(&out).unwrap(),
        stderr: std::fs::read(&err).unwrap(),
    };
    assert!(
        output.status.success(),
        "lake-stream run failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Every row of a table's latest version, all dates.
fn read_all(lake: &Lake, layer: Layer, table: &str) -> Option<DataFrame> {
    let snapshot = Table::open(lake, TableRef::new(layer, table))
        .unwrap()
        .latest()
        .unwrap()?;
    Some(snapshot.scan_all().unwrap().collect().unwrap())
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
    let (_, live) =
        lake_table::read_latest_date(&lake, &TableRef::new(Layer::Gold, "live_sales_by_country"))
            .unwrap()
            .expect("no live view");
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
    assert_eq!(dlq_reasons(&lake), dlq);
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

/// Files of a table on disk that its latest version does not list.
fn uncommitted_files(lake: &Lake, table: &str) -> usize {
    let listed: BTreeSet<String> = Table::open(lake, TableRef::new(Layer::Bronze, table))
        .unwrap()
        .latest()
        .unwrap()
        .map(|s| {
            s.files()
                .iter()
                .map(|f| format!("{table}/{}", f.path))
                .collect()
        })
        .unwrap_or_default();
    lake.list(Layer::Bronze, table)
        .unwrap()
        .iter()
        .filter(|o| o.key.ends_with(".parquet") && !listed.contains(&o.key))
        .count()
}

/// Partitions whose outputs hold a batch their checkpoint does not: the
/// batch was committed, the checkpoint not yet written.
fn batches_past_their_checkpoint(lake: &Lake) -> usize {
    let checkpoints: CheckpointStore = CheckpointStore::new(lake, "ventes_temps_reel");
    let mut past = 0;
    for partition in 0..2 {
        let checkpointed = checkpoints
            .load(partition)
            .unwrap()
            .map_or(0, |c| c.state.batches as i64);
        let committed = ["ventes_temps_reel", "_dlq/ventes_temps_reel"]
            .iter()
            .filter_map(|table| {
                Table::open(lake, TableRef::new(Layer::Bronze, *table))
                    .unwrap()
                    .latest()
                    .unwrap()?
                    .txn_version(&format!("ventes_temps_reel/partition-{partition}"))
                    .unwrap()
            })
            .max()
            .unwrap_or(0);
        if committed > checkpointed {
            past += 1;
        }
    }
    past
}

#[test]
fn kill_9_at_each_step_of_a_batch_changes_nothing() {
    let topic = kafka_server().create_topic("crash", 2);
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    // Produce in the background while a consumer is killed and restarted.
    // Unkeyed: the copies of events land on other partitions than their
    // home, so batches forward them.
    let producer_topic = topic.clone();
    let producer =
        std::thread::spawn(move || send_with(&producer_topic, 20_000, Some(1500.0), 21, true));
    // Each process stops for good at one step of a micro-batch; the test
    // kills it there: after the events' data files (before their commit),
    // after the events' commit (before the DLQ's), after both commits
    // (before the checkpoint), and after the forwarded copies reached the
    // internal topic (before the checkpoint: the next process forwards them
    // again).
    let points = [
        "before_commit@bronze/ventes_temps_reel",
        "before_commit@bronze/_dlq/ventes_temps_reel",
        "before_checkpoint@ventes_temps_reel",
        "after_forward_flush@ventes_temps_reel",
    ];
    let started = Instant::now();
    for (kill, point) in points.iter().cycle().take(8).enumerate() {
        let marker = dir.path().join(format!("marker-{kill}"));
        // A new group each time: the dead member's partitions would otherwise
        // wait for its session to expire; checkpoints decide where to resume.
        let mut child = stream_command(
            dir.path(),
            &topic,
            &format!("g-crash-{kill}"),
            "interval=200ms",
        )
        .env("LAKE_FAULT", format!("hang:{point}"))
        .env("LAKE_FAULT_MARKER", &marker)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !marker.exists() {
            assert!(
                child.try_wait().unwrap().is_none(),
                "kill {kill}: the stream exited early"
            );
            assert!(
                Instant::now() < deadline,
                "kill {kill}: never reached {point}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // The kill lands mid-batch, at the step named.
        match *point {
            "before_commit@bronze/ventes_temps_reel" => assert!(
                uncommitted_files(&lake, "ventes_temps_reel") > 0,
                "kill {kill}: no uncommitted events file"
            ),
            "before_commit@bronze/_dlq/ventes_temps_reel" => assert!(
                uncommitted_files(&lake, "_dlq/ventes_temps_reel") > 0,
                "kill {kill}: no uncommitted DLQ file"
            ),
            "after_forward_flush@ventes_temps_reel" => assert!(
                forwarded_past_checkpoint(&lake, &topic),
                "kill {kill}: the internal topic holds nothing past the source checkpoints"
            ),
            _ => assert!(
                batches_past_their_checkpoint(&lake) > 0,
                "kill {kill}: the outputs hold no batch past its checkpoint"
            ),
        }
        kill9(&mut child);
    }
    assert!(started.elapsed() < Duration::from_secs(300));
    let report = producer.join().unwrap();
    run_available_now(dir.path(), &topic, "g-crash-final");
    assert_exact(dir.path(), std::slice::from_ref(&report));
    // The processes killed after forwarding, before their checkpoints,
    // left copies that the next ones forwarded again: the internal topic
    // holds some source messages twice, and each event was still counted
    // once (above).
    let forwarded = forwarded_source_messages(&topic);
    let distinct: BTreeSet<&(i32, i64)> = forwarded.iter().collect();
    assert!(
        forwarded.len() > distinct.len(),
        "no source message was forwarded twice ({} forwarded)",
        forwarded.len()
    );
    assert_eq!(batches_past_their_checkpoint(&lake), 0);
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
    // Wait until both processes have committed a batch (each commit names
    // its writer's run id), which needs the group to have split the
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
    // The first consumes the rest, including the partitions it took over:
    // wait until every message sent and every copy forwarded is processed
    // and checkpointed.
    let lake_handle = Lake::open(lake.path().to_str().unwrap()).unwrap();
    let checkpoints: CheckpointStore = CheckpointStore::new(&lake_handle, "ventes_temps_reel");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let states = checkpoints.load_all().unwrap();
        let read: i64 = states.values().map(|c| c.state.next_offset).sum();
        let aggregated: i64 = states.values().map(|c| c.state.next_internal_offset).sum();
        let forwarded = high_watermarks(&internal_topic(&topic))
            .values()
            .sum::<i64>();
        if read as u64 >= report.sent && aggregated >= forwarded {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "in 60 s the remaining consumer read {read} of {} messages and aggregated \
             {aggregated} of {forwarded} forwarded copies",
            report.sent
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status();
    assert!(first.wait().unwrap().success());
    // Nothing is left for a later run, then the check.
    let output = run_available_now(lake.path(), &topic, "g-par");
    assert!(String::from_utf8_lossy(&output.stdout).contains(" 0 messages"));
    assert_exact(lake.path(), &[report]);
    // Every partition is checkpointed.
    assert_eq!(checkpoints.load_all().unwrap().len(), 4);
}

/// The high watermark of each partition of a topic.
fn high_watermarks(topic: &str) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &kafka_server().brokers)
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    partitions
        .into_iter()
        .map(|p| {
            let (_, high) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap();
            (p, high)
        })
        .collect()
}

/// The source partition and offset of every message in the internal topic:
/// what has been forwarded, copies forwarded again included.
fn forwarded_source_messages(topic: &str) -> Vec<(i32, i64)> {
    let internal = internal_topic(topic);
    let highs = high_watermarks(&internal);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &kafka_server().brokers)
        .set("group.id", "test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for partition in highs.keys() {
        tpl.add_partition_offset(&internal, *partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut next: BTreeMap<i32, i64> = highs.keys().map(|p| (*p, 0)).collect();
    let mut forwarded = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while next.iter().any(|(p, n)| n < &highs[p]) {
        assert!(
            Instant::now() < deadline,
            "reading {internal} took over 60 s"
        );
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        next.insert(message.partition(), message.offset() + 1);
        if let Some(envelope) = message.payload().and_then(Envelope::decode) {
            forwarded.push((envelope.partition, envelope.offset));
        }
    }
    forwarded
}

/// True when the internal topic holds a message forwarded from a source
/// partition at or past that partition's checkpoint: a batch forwarded,
/// not yet checkpointed.
fn forwarded_past_checkpoint(lake: &Lake, topic: &str) -> bool {
    let checkpoints: CheckpointStore = CheckpointStore::new(lake, "ventes_temps_reel");
    let mut furthest: BTreeMap<i32, i64> = BTreeMap::new();
    for (partition, offset) in forwarded_source_messages(topic) {
        let max = furthest.entry(partition).or_insert(-1);
        *max = (*max).max(offset);
    }
    furthest.iter().any(|(partition, max)| {
        let checkpointed = checkpoints
            .load(*partition)
            .unwrap()
            .map_or(0, |c| c.state.next_offset);
        *max >= checkpointed
    })
}

/// An unkeyed producer spreads the copies of an event over partitions;
/// `consumers` processes in one group consume them with a 200 ms trigger,
/// one of them is killed with -9 mid-run, the others go on; then a last
/// available-now run. Each event is counted once, and bronze holds it once.
fn unkeyed_copies_count_once(consumers: usize) {
    let topic = kafka_server().create_topic(&format!("unkeyed{consumers}"), 4);
    let lake = tempfile::tempdir().unwrap();
    let group = format!("g-unkeyed-{consumers}");
    let producer_topic = topic.clone();
    // 12 s of events: time for the group to split the partitions and for
    // every process to commit before the kill.
    let producer =
        std::thread::spawn(move || send_with(&producer_topic, 24_000, Some(2000.0), 51, true));
    let mut children: Vec<Child> = (0..consumers)
        .map(|_| {
            stream_command(lake.path(), &topic, &group, "interval=200ms")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut writers = batch_writers(lake.path());
    while writers.len() < consumers && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        writers = batch_writers(lake.path());
    }
    assert_eq!(
        writers.len(),
        consumers,
        "processes that committed before the kill: {writers:?}"
    );
    // The kill lands mid-run: events are still being sent.
    assert!(
        !producer.is_finished(),
        "the producer finished before the kill"
    );
    let mut killed = children.pop().unwrap();
    kill9(&mut killed);
    let report = producer.join().unwrap();
    assert!(report.dlq["duplicate"] > 500, "{:?}", report.dlq);
    for mut child in children {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        assert!(child.wait().unwrap().success());
    }
    // A new group: the dead member's partitions would wait for its session
    // to expire; the checkpoints say where each partition resumes.
    run_available_now(lake.path(), &topic, &format!("{group}-last"));
    assert_exact(lake.path(), &[report]);
}

#[test]
fn unkeyed_copies_count_once_with_one_consumer_killed() {
    unkeyed_copies_count_once(1);
}

#[test]
fn unkeyed_copies_count_once_with_two_consumers_one_killed() {
    unkeyed_copies_count_once(2);
}

#[test]
fn unkeyed_copies_count_once_with_three_consumers_one_killed() {
    unkeyed_copies_count_once(3);
}

/// Run ids of the processes whose batches are committed in bronze.
fn batch_writers(lake: &Path) -> BTreeSet<String> {
    let lake_handle = Lake::open(lake.to_str().unwrap()).unwrap();
    let table = Table::open(
        &lake_handle,
        TableRef::new(Layer::Bronze, "ventes_temps_reel"),
    )
    .unwrap();
    lake_table::history::history(&table, 10_000)
        .unwrap()
        .into_iter()
        .filter(|entry| entry.change.as_deref() == Some("stream_append"))
        .filter_map(|entry| entry.run_id)
        .collect()
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
    // Producing to it names the flag that creates it.
    let line = failing(Command::new(BIN).args([
        "produce",
        "--kafka",
        &kafka_server().brokers,
        "--topic",
        "no-such-topic",
        "--count",
        "10",
    ]));
    assert!(
        line.contains("topic no-such-topic does not exist"),
        "{line}"
    );
    assert!(line.contains("--create 4"), "{line}");

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

/// Microseconds since the epoch, now.
fn now_micros() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_micros()).unwrap()
}

/// One message to send raw: its partition, its key and its value.
struct Raw {
    partition: i32,
    key: String,
    value: String,
}

/// Sends the messages as they are, each to its partition, and waits until
/// the topic holds them all (the sum of its high watermarks grew by their
/// number).
fn send_raw(topic: &str, messages: &[Raw]) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let before: i64 = high_watermarks(topic).values().sum();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &kafka_server().brokers)
        .set("acks", "all")
        .create()
        .unwrap();
    for message in messages {
        producer
            .send(
                BaseRecord::to(topic)
                    .partition(message.partition)
                    .key(&message.key)
                    .payload(&message.value),
            )
            .map_err(|(err, _)| err)
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now: i64 = high_watermarks(topic).values().sum();
        if now - before == messages.len() as i64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{topic} holds {} new messages of {} sent",
            now - before,
            messages.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A valid event and where it goes: its home partition, or (`away`) the
/// next one, whence it is forwarded home.
struct Valid {
    id: String,
    micros: i64,
    pays: &'static str,
    montant: f64,
    away: bool,
}

impl Valid {
    fn raw(&self, partitions: i32) -> Raw {
        let home = lake_stream::route::partition_of_event(&self.id, partitions);
        Raw {
            partition: if self.away {
                (home + 1) % partitions
            } else {
                home
            },
            key: self.id.clone(),
            value: format!(
                r#"{{"event_id":"{}","event_time":"{}","pays":"{}","montant":{:?}}}"#,
                self.id,
                lake_stream::state::micros_to_rfc3339(self.micros),
                self.pays,
                self.montant
            ),
        }
    }
}

/// An event id whose home among `partitions` is `partition`.
fn id_at_home(prefix: &str, partition: i32, partitions: i32) -> String {
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .find(|id| lake_stream::route::partition_of_event(id, partitions) == partition)
        .unwrap()
}

/// `(pays, total, count)` per row of the live view by country; every total
/// a finite number.
fn live_by_country(lake: &Lake) -> BTreeMap<String, (f64, u64)> {
    let (_, live) =
        lake_table::read_latest_date(lake, &TableRef::new(Layer::Gold, "live_sales_by_country"))
            .unwrap()
            .expect("no live view");
    let pays = live.column("pays").unwrap().str().unwrap().clone();
    let totals = live
        .column("total_ventes_live")
        .unwrap()
        .f64()
        .unwrap()
        .clone();
    let counts = live
        .column("nb_transactions")
        .unwrap()
        .i64()
        .unwrap()
        .clone();
    let mut out = BTreeMap::new();
    for i in 0..live.height() {
        let country = pays.get(i).unwrap().to_string();
        let total = totals.get(i).unwrap_or(f64::NAN);
        assert!(total.is_finite(), "{country}: total {total}");
        out.insert(country, (total, counts.get(i).unwrap() as u64));
    }
    out
}

/// DLQ rows by reason.
fn dlq_reasons(lake: &Lake) -> BTreeMap<String, u64> {
    let mut by_reason = BTreeMap::new();
    if let Some(rejected) = read_all(lake, Layer::Bronze, "_dlq/ventes_temps_reel") {
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
    }
    by_reason
}

fn rows(lake: &Lake, table: &str) -> u64 {
    read_all(lake, Layer::Bronze, table).map_or(0, |f| f.height() as u64)
}

/// Checks the live view against the valid events, summed here.
fn assert_live_totals(lake: &Lake, valid: &[Valid]) {
    let mut expected: BTreeMap<String, (f64, u64)> = BTreeMap::new();
    for event in valid {
        let entry = expected.entry(event.pays.to_string()).or_default();
        entry.0 += event.montant;
        entry.1 += 1;
    }
    let live = live_by_country(lake);
    assert_eq!(
        live.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (country, (total, count)) in &live {
        let (want_total, want_count) = expected[country];
        assert_eq!(*count, want_count, "{country}: transactions");
        assert!(
            (total - want_total).abs() <= 1e-9 * want_total.abs(),
            "{country}: {total} vs {want_total}"
        );
    }
}

/// Events from the future, amounts beyond one sale or the float range,
/// leap seconds and objects giving a key twice go to the DLQ with their
/// reason; none moves a watermark or a total: the valid events around
/// them are all counted, in this run and after a restart, and `status`
/// shows each partition's watermark from the valid events alone.
#[test]
fn bad_times_amounts_and_repeated_keys_go_to_the_dlq_and_block_nothing() {
    const PARTITIONS: i32 = 3;
    const LATENESS: i64 = 10 * 60 * 1_000_000;
    let topic = kafka_server().create_topic("integrity", PARTITIONS);
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
    let start = now_micros();
    let bad_event = |id: &str, time: &str, montant: &str| {
        format!(
            r#"{{"event_id":"{id}","event_time":"{time}","pays":"France","montant":{montant}}}"#
        )
    };

    // First on every partition: an event stamped 2099 (at home there).
    let mut messages: Vec<Raw> = (0..PARTITIONS)
        .map(|p| {
            let id = id_at_home("far-future", p, PARTITIONS);
            Raw {
                partition: p,
                value: bad_event(&id, "2099-01-01T00:00:00Z", "10"),
                key: id,
            }
        })
        .collect();
    let mut reasons: BTreeMap<String, u64> = BTreeMap::from([("future_time".into(), 3)]);
    // Then valid events over the last three minutes, a fifth of them sent
    // away from their home partition (forwarded there), amounts up to the
    // bound of one sale (1e9, accepted), and one a minute ahead (within
    // the 5-minute skew).
    let countries = ["France", "Germany", "Brazil"];
    let mut valid: Vec<Valid> = (0..30)
        .map(|i| Valid {
            id: format!("ok-{i}"),
            micros: start - 180_000_000 + i * 1_000_000,
            pays: countries[i as usize % 3],
            montant: if i == 7 { 1e9 } else { 0.25 + i as f64 * 1.5 },
            away: i % 5 == 0,
        })
        .collect();
    valid.push(Valid {
        id: "ahead".into(),
        micros: start + 60_000_000,
        pays: "Germany",
        montant: 3.0,
        away: false,
    });
    // The id both copies of a repeated key name: "aK" is also a valid
    // event of its own, at home.
    valid.push(Valid {
        id: "aK".into(),
        micros: start - 30_000_000,
        pays: "France",
        montant: 5.0,
        away: false,
    });
    messages.extend(valid.iter().map(|v| v.raw(PARTITIONS)));
    let now = lake_stream::state::micros_to_rfc3339(start);
    let home_of_ak = lake_stream::route::partition_of_event("aK", PARTITIONS);
    let elsewhere = (home_of_ak + 1) % PARTITIONS;
    let invalid = [
        // An hour ahead: beyond the skew.
        (
            "future_time",
            bad_event(
                "hour-ahead",
                &lake_stream::state::micros_to_rfc3339(start + 3_600_000_000),
                "1",
            ),
        ),
        (
            "invalid_time",
            bad_event("leap", "2026-12-31T23:59:60Z", "1"),
        ),
        // Two amounts near the float limit in one country: an infinite
        // total, then NaN, before the bound.
        ("invalid_field", bad_event("huge-1", &now, "1e308")),
        ("invalid_field", bad_event("huge-2", &now, "1e308")),
        ("invalid_field", bad_event("huger", &now, "1e400")),
        ("invalid_field", bad_event("just-over", &now, "1000000001")),
        // The event id twice: one parser routed it by neither, another
        // counted it as "aK" where it was read, a second time.
        (
            "invalid_field",
            format!(
                r#"{{"event_id":"zK","event_id":"aK","event_time":"{now}","pays":"France","montant":7}}"#
            ),
        ),
        // The amount twice: which one would count?
        (
            "invalid_field",
            format!(
                r#"{{"event_id":"twice","event_time":"{now}","pays":"France","montant":1,"montant":1000}}"#
            ),
        ),
    ];
    for (i, (reason, value)) in invalid.into_iter().enumerate() {
        *reasons.entry(reason.to_string()).or_default() += 1;
        messages.push(Raw {
            partition: if i >= 6 {
                elsewhere
            } else {
                i as i32 % PARTITIONS
            },
            key: format!("bad-{i}"),
            value,
        });
    }
    send_raw(&topic, &messages);

    run_available_now(dir.path(), &topic, "g-integrity");
    let sent = messages.len() as u64;
    let (events, rejected) = (
        rows(&lake, "ventes_temps_reel"),
        rows(&lake, "_dlq/ventes_temps_reel"),
    );
    assert_eq!(
        events + rejected,
        sent,
        "{events} events + {rejected} rejects"
    );
    assert_eq!(events, valid.len() as u64);
    assert_eq!(dlq_reasons(&lake), reasons);
    assert_live_totals(&lake, &valid);

    // A restart: later valid events still count (the watermarks are those
    // of the valid events, not 2099's, in memory and in the checkpoints).
    let restart = now_micros();
    let more: Vec<Valid> = (0..12)
        .map(|i| Valid {
            id: format!("later-{i}"),
            micros: restart - 20_000_000 + i * 1_000_000,
            pays: countries[i as usize % 3],
            montant: 2.0 + i as f64,
            away: i % 4 == 0,
        })
        .collect();
    send_raw(
        &topic,
        &more.iter().map(|v| v.raw(PARTITIONS)).collect::<Vec<_>>(),
    );
    let output = run_available_now(dir.path(), &topic, "g-integrity");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains(" 12 counted"),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    valid.extend(more);
    assert_eq!(rows(&lake, "ventes_temps_reel"), valid.len() as u64);
    assert_eq!(dlq_reasons(&lake), reasons, "no late event");
    assert_live_totals(&lake, &valid);

    // `status`: each partition's watermark, the latest valid event of its
    // home less the lateness.
    let mut latest: BTreeMap<i32, i64> = BTreeMap::new();
    for event in &valid {
        let home = lake_stream::route::partition_of_event(&event.id, PARTITIONS);
        let entry = latest.entry(home).or_insert(i64::MIN);
        *entry = (*entry).max(event.micros);
    }
    let output = Command::new(BIN)
        .args([
            "status",
            "--kafka",
            &kafka_server().brokers,
            "--topic",
            &topic,
        ])
        .arg("--lake")
        .arg(dir.path())
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0][6], "watermark", "{table}");
    for partition in 0..PARTITIONS {
        let row = lines
            .iter()
            .find(|cells| cells.first() == Some(&partition.to_string().as_str()))
            .unwrap_or_else(|| panic!("no row for partition {partition}:\n{table}"));
        assert_eq!(
            row[5],
            lake_stream::state::micros_to_rfc3339(latest[&partition] - LATENESS),
            "partition {partition}:\n{table}"
        );
    }
}

/// Status line of a plain HTTP/1.1 GET, with `key` as its bearer token.
fn status_with(addr: &str, path: &str, key: Option<&str>) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.lines().next().unwrap_or("").to_string()
}

#[test]
fn run_serve_takes_the_api_key_file_of_lake_serve() {
    const KEY: &str = "stream-serve-key-0123456789abcdef";
    let topic = kafka_server().create_topic("serve-keys", 1);
    let lake = tempfile::tempdir().unwrap();
    let keys = lake.path().join("keys.txt");
    std::fs::write(&keys, format!("# the test's key\n{KEY}\n")).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = stream_command(lake.path(), &topic, "g-serve-keys", "interval=1s")
        .args(["--serve", &addr, "--api-key-file"])
        .arg(&keys)
        .env_remove("LAKE_API_KEYS")
        .env_remove("LAKE_API_KEY_FILE")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            panic!("lake-stream ended before serving: {seen}");
        }
        seen.push_str(&line);
        if line.contains("serving the API and dashboard at") {
            break;
        }
    }
    // Drain stderr so that the child never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let without = status_with(&addr, "/api/gold", None);
    let with = status_with(&addr, "/api/gold", Some(KEY));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(without, "HTTP/1.1 401 Unauthorized");
    assert_eq!(with, "HTTP/1.1 200 OK");
}
