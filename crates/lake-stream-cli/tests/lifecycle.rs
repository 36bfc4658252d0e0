//! A query's life across runs, on the `lake-stream` binary and a real
//! Kafka-protocol broker (see lake-testkit): a restarted `run --serve`
//! serves the checkpointed views from its first request, with counters
//! that add up to its rows; a lake holds one stream source, and `reset`
//! deletes every source's checkpoints; each run leaves a run manifest
//! under the run id its commits carry.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use lake_core::dag::{RunOptions, run_steps};
use lake_core::run::{Outcome, RunKind, RunManifest, new_run_id};
use lake_stream::checkpoint::CheckpointStore;
use lake_stream::config::{KafkaSettings, QUERY};
use lake_stream::generator::{EventMix, ProducerReport};
use lake_stream::produce::{ProduceOptions, produce};
use lake_stream::step::{StreamSource, pipeline_step};
use lake_table::{Lake, Layer, Table, TableRef};
use lake_testkit::{free_port, kafka_server};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_lake-stream");

fn send(topic: &str, count: u64, seed: u64) -> ProducerReport {
    let settings = KafkaSettings {
        brokers: kafka_server().brokers.clone(),
        topic: topic.to_string(),
        group: "producer".into(),
        extra: Vec::new(),
        connect_timeout: Duration::from_secs(10),
    };
    let options = ProduceOptions {
        count: Some(count),
        duration: None,
        rate: None,
        mix: EventMix {
            malformed: 0.05,
            duplicate: 0.05,
            late: 0.03,
        },
        seed,
        unkeyed: false,
    };
    produce(&settings, &options).unwrap()
}

fn stream_command(lake: &Path, topic: &str, group: &str, trigger: &str) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(["run", "--kafka", &kafka_server().brokers])
        .args(["--topic", topic, "--group", group, "--trigger", trigger])
        .arg("--lake")
        .arg(lake)
        .env_remove("LAKE_FAULT")
        .env_remove("LAKE_API_KEYS")
        .env_remove("LAKE_API_KEY_FILE");
    command
}

/// An available-now run to its end (at most two minutes), its output
/// kept in files (a full pipe would stall it).
fn available_now(lake: &Path, topic: &str, group: &str) -> Output {
    let logs = tempfile::tempdir().unwrap();
    let (out, err) = (logs.path().join("stdout"), logs.path().join("stderr"));
    let mut child = stream_command(lake, topic, group, "available-now")
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let status = wait_for_exit(&mut child, Duration::from_secs(120));
    Output {
        status,
        stdout: std::fs::read(&out).unwrap(),
        stderr: std::fs::read(&err).unwrap(),
    }
}

fn succeeded(output: Output) -> Output {
    assert!(
        output.status.success(),
        "lake-stream failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn wait_for_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("lake-stream did not end within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = wait_for_exit(child, Duration::from_secs(60));
    assert!(status.success(), "lake-stream stopped with {status}");
}

fn open(lake: &Path) -> Lake {
    Lake::open(lake.to_str().unwrap()).unwrap()
}

/// The body of a GET, as JSON.
fn get_json(addr: &str, path: &str) -> Value {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    serde_json::from_str(body).unwrap_or_else(|err| panic!("{err}: {body}"))
}

/// The live view's rows, country -> transactions.
fn rows_of(body: &Value) -> BTreeMap<String, u64> {
    body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["pays"].as_str().unwrap().to_string(),
                row["nb_transactions"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Countries -> events counted, as the producers sent them.
fn expected(reports: &[&ProducerReport]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for report in reports {
        for (country, e) in &report.by_country {
            *out.entry(country.clone()).or_default() += e.count;
        }
    }
    out
}

/// Starts `run --serve` and returns once it says it serves.
fn serve(lake: &Path, topic: &str, group: &str, addr: &str) -> Child {
    let mut child = stream_command(lake, topic, group, "interval=500ms")
        .args(["--serve", addr])
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
    child
}

#[test]
fn a_restarted_run_serve_shows_the_checkpointed_views_from_the_first_request() {
    let topic = kafka_server().create_topic("restart-serve", 2);
    let lake = tempfile::tempdir().unwrap();
    let first = send(&topic, 1500, 61);
    succeeded(available_now(lake.path(), &topic, "g-restart"));
    let checkpointed: u64 = CheckpointStore::new(&open(lake.path()), QUERY)
        .load_all()
        .unwrap()
        .values()
        .map(|c| c.state.counted)
        .sum();
    assert_eq!(checkpointed, first.counted);

    // Restarted with --serve, nothing new on the topic: the first answer
    // is the checkpointed state, complete, its counters those of its rows.
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = serve(lake.path(), &topic, "g-restart", &addr);
    let body = get_json(&addr, "/api/live/sales-by-country");
    let rows = rows_of(&body);
    assert!(!rows.is_empty(), "{body}");
    assert_eq!(rows, expected(&[&first]), "{body}");
    assert_eq!(rows.values().sum::<u64>(), first.counted, "{body}");
    assert_eq!(body["freshness"]["counted"], first.counted, "{body}");
    assert_eq!(body["freshness"]["events_consumed"], first.sent, "{body}");

    // New events: the counters stay those of the rows, the checkpointed
    // events included.
    let second = send(&topic, 700, 62);
    let total = first.counted + second.counted;
    let deadline = Instant::now() + Duration::from_secs(60);
    let body = loop {
        let body = get_json(&addr, "/api/live/sales-by-country");
        if rows_of(&body).values().sum::<u64>() == total
            && body["freshness"]["events_consumed"] == first.sent + second.sent
        {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "the new events were not all counted within 60 s: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(rows_of(&body), expected(&[&first, &second]), "{body}");
    assert_eq!(body["freshness"]["counted"], total, "{body}");
    stop(&mut child);
}

/// The run ids of the stream's commits to bronze events.
fn commit_run_ids(lake: &Lake) -> BTreeSet<String> {
    let table = Table::open(lake, TableRef::new(Layer::Bronze, "ventes_temps_reel")).unwrap();
    lake_table::history::history(&table, 10_000)
        .unwrap()
        .into_iter()
        .filter(|entry| entry.change.as_deref() == Some("stream_append"))
        .filter_map(|entry| entry.run_id)
        .collect()
}

/// Every event in bronze, with its `_source`.
fn sources_in_bronze(lake: &Lake) -> BTreeMap<String, u64> {
    let snapshot = Table::open(lake, TableRef::new(Layer::Bronze, "ventes_temps_reel"))
        .unwrap()
        .latest()
        .unwrap()
        .expect("no bronze events");
    let frame = snapshot.scan_all().unwrap().collect().unwrap();
    let mut out = BTreeMap::new();
    for source in frame.column("_source").unwrap().str().unwrap().iter() {
        *out.entry(source.unwrap().to_string()).or_default() += 1;
    }
    out
}

/// The checkpoint folders holding an object.
fn checkpoint_folders(lake: &Lake) -> BTreeSet<String> {
    lake.list(Layer::Checkpoints, "")
        .unwrap()
        .iter()
        .filter_map(|object| object.key.split('/').next().map(str::to_string))
        .collect()
}

#[test]
fn a_lake_holds_one_stream_source_until_reset() {
    let dir = tempfile::tempdir().unwrap();
    let lake = open(dir.path());
    // The pipeline's stream stage on the built-in producer, as `cargo
    // xtask pipeline` runs it without Kafka: its commits carry the
    // pipeline's run id, which has its manifest.
    let run_id = new_run_id();
    let date = chrono::Utc::now().date_naive();
    let step = pipeline_step(
        &lake,
        date,
        &run_id,
        StreamSource::Embedded {
            events: 400,
            seed: 7,
        },
        Vec::new(),
    );
    let options = RunOptions {
        progress: false,
        ..RunOptions::default()
    };
    let pipeline = run_steps(&lake, &run_id, date, "generator", vec![step], &options)
        .unwrap()
        .into_result()
        .unwrap();
    assert_eq!(pipeline.kind, RunKind::Batch);
    assert_eq!(commit_run_ids(&lake), BTreeSet::from([run_id.clone()]));
    let embedded = sources_in_bronze(&lake);
    assert_eq!(
        embedded.keys().collect::<Vec<_>>(),
        ["embedded://producer/ventes-temps-reel"]
    );
    assert!(checkpoint_folders(&lake).contains("embedded_ventes_temps_reel"));

    // Kafka into the same lake: refused, naming the source it holds and
    // how to start over; nothing of Kafka's is written.
    let topic = kafka_server().create_topic("one-source", 2);
    let report = send(&topic, 300, 71);
    let output = available_now(dir.path(), &topic, "g-one-source");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let line = stderr.lines().last().unwrap_or("");
    assert!(line.starts_with("lake-stream: error: "), "{stderr}");
    assert!(line.contains("the built-in producer"), "{line}");
    assert!(line.contains("embedded_ventes_temps_reel/"), "{line}");
    assert!(line.contains("lake-stream reset --yes"), "{line}");
    assert_eq!(sources_in_bronze(&lake), embedded);
    assert_eq!(
        CheckpointStore::new(&lake, QUERY).partitions().unwrap(),
        Vec::<i32>::new()
    );

    // Reset: every source's checkpoints go, and the stream's tables.
    let output = Command::new(BIN)
        .args(["reset", "--yes", "--lake"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("embedded_ventes_temps_reel"), "{stdout}");
    assert_eq!(checkpoint_folders(&lake), BTreeSet::new());
    assert!(
        Table::open(&lake, TableRef::new(Layer::Bronze, "ventes_temps_reel"))
            .unwrap()
            .latest()
            .unwrap()
            .is_none()
    );

    // Then Kafka starts over: bronze holds its events alone.
    succeeded(available_now(dir.path(), &topic, "g-one-source"));
    assert_eq!(
        sources_in_bronze(&lake),
        BTreeMap::from([(
            format!("kafka://{}/{topic}", kafka_server().brokers),
            report.counted
        )])
    );
    // And the built-in producer is refused in its turn.
    let step = pipeline_step(
        &lake,
        date,
        &new_run_id(),
        StreamSource::Embedded {
            events: 10,
            seed: 8,
        },
        Vec::new(),
    );
    let refused = run_steps(
        &lake,
        &new_run_id(),
        date,
        "generator",
        vec![step],
        &options,
    )
    .unwrap()
    .into_result()
    .unwrap_err();
    assert!(
        format!("{refused:#}").contains(&format!("Kafka topic {topic}")),
        "{refused:#}"
    );
}

/// The stream runs' manifests, newest first.
fn stream_runs(lake: &Lake) -> Vec<RunManifest> {
    RunManifest::recent(lake, 100)
        .unwrap()
        .into_iter()
        .filter(|run| run.kind == RunKind::Stream)
        .collect()
}

#[test]
fn each_stream_run_has_a_manifest_under_the_run_id_its_commits_carry() {
    let topic = kafka_server().create_topic("run-manifest", 2);
    let dir = tempfile::tempdir().unwrap();
    let lake = open(dir.path());
    let first = send(&topic, 400, 81);
    succeeded(available_now(dir.path(), &topic, "g-manifest"));
    let runs = stream_runs(&lake);
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run.outcome, Outcome::Succeeded);
    assert!(!run.is_complete_batch());
    assert_eq!(commit_run_ids(&lake), BTreeSet::from([run.run_id.clone()]));
    let step = run.step("stream/ventes_temps_reel").unwrap();
    assert_eq!((step.rows_in, step.rows_out), (first.sent, first.counted));
    let latest = Table::open(&lake, TableRef::new(Layer::Bronze, "ventes_temps_reel"))
        .unwrap()
        .latest()
        .unwrap()
        .unwrap();
    assert_eq!(
        run.written("bronze/ventes_temps_reel").map(|w| w.version),
        Some(latest.version())
    );

    // A continuous run stopped by SIGTERM records its manifest too.
    let mut child = stream_command(dir.path(), &topic, "g-manifest", "interval=300ms")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let second = send(&topic, 200, 82);
    let deadline = Instant::now() + Duration::from_secs(60);
    while commit_run_ids(&lake).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the second run committed nothing in 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop(&mut child);
    let runs = stream_runs(&lake);
    assert_eq!(runs.len(), 2);
    let ids: BTreeSet<String> = runs.iter().map(|r| r.run_id.clone()).collect();
    assert_eq!(commit_run_ids(&lake), ids);
    // Newest first: the stopped run, which processed some of the new events.
    assert_eq!(runs[0].outcome, Outcome::Succeeded);
    let processed = runs[0].steps[0].rows_in;
    assert!(
        processed > 0 && processed <= second.sent,
        "{processed} of {} new messages",
        second.sent
    );
}
