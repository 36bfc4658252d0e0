//! The serving stack of one process, as `lake-stream run --serve` runs it:
//! gold from the pipeline in a local lake, the stream consuming a Kafka
//! topic on a thread, and the API with the live views in memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lake_core::run::new_run_id;
use lake_serve::ApiKeys;
use lake_stream::config::{KafkaRunOptions, KafkaSettings, StreamConfig, Trigger};
use lake_stream::generator::{EventMix, ProducerReport};
use lake_stream::produce::{ProduceOptions, produce};
use lake_stream::runner::{RunSummary, run_kafka};
use lake_stream_cli::serve::LiveServer;
use lake_table::Lake;
use lake_testkit::kafka_server;

use crate::{run, test_date};

pub const QUERY: &str = lake_stream::config::QUERY;

pub struct LiveStack {
    pub lake_dir: tempfile::TempDir,
    pub lake: Lake,
    pub kafka: KafkaSettings,
    pub server: LiveServer,
    stop: Arc<AtomicBool>,
    stream: Option<JoinHandle<anyhow::Result<RunSummary>>>,
}

impl LiveStack {
    /// Pipeline at scale 1 on the generator, then the stream and the server.
    pub fn start(name: &str) -> LiveStack {
        LiveStack::start_with_keys(name, None)
    }

    /// [`LiveStack::start`], the API guarded by `keys`.
    pub fn start_with_keys(name: &str, keys: Option<ApiKeys>) -> LiveStack {
        let lake_dir = tempfile::tempdir().unwrap();
        let pipeline = run(lake_dir.path(), None, 1, test_date()).unwrap();
        let lake = pipeline.lake;
        let topic = kafka_server().create_topic(name, 3);
        let kafka = KafkaSettings {
            brokers: kafka_server().brokers.clone(),
            topic: topic.clone(),
            group: format!("{name}-group"),
            extra: Vec::new(),
            connect_timeout: Duration::from_secs(10),
        };
        let server = lake_stream_cli::serve::start_with("127.0.0.1:0", &lake, QUERY, |state| {
            Ok(match keys {
                Some(keys) => state.with_keys(keys),
                None => state,
            })
        })
        .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stream = {
            let (lake, kafka, stop, live) = (
                lake.clone(),
                kafka.clone(),
                stop.clone(),
                server.live.clone(),
            );
            std::thread::spawn(move || {
                let config = StreamConfig {
                    query: QUERY.into(),
                    topic: kafka.topic.clone(),
                    source: kafka.source_uri(),
                    allowed_lateness: Duration::from_secs(600),
                    run_id: new_run_id(),
                };
                let options = KafkaRunOptions {
                    trigger: Trigger::Interval(Duration::from_millis(300)),
                    ..KafkaRunOptions::default()
                };
                run_kafka(
                    &lake,
                    &kafka,
                    config,
                    &options,
                    stop,
                    &mut |_, processor| {
                        live.publish(lake_stream_cli::serve::snapshot(processor).unwrap());
                    },
                )
            })
        };
        LiveStack {
            lake_dir,
            lake,
            kafka,
            server,
            stop,
            stream: Some(stream),
        }
    }

    pub fn url(&self) -> String {
        self.server.handle.url()
    }

    /// Sends `count` generated events (with the usual share of bad ones).
    pub fn produce(&self, count: u64, seed: u64) -> ProducerReport {
        produce(
            &self.kafka,
            &ProduceOptions {
                count: Some(count),
                duration: None,
                rate: None,
                mix: EventMix::default(),
                seed,
                unkeyed: false,
            },
        )
        .unwrap()
    }

    /// Stops the stream; what it did.
    pub fn stop(&mut self) -> RunSummary {
        self.stop.store(true, Ordering::SeqCst);
        self.stream.take().unwrap().join().unwrap().unwrap()
    }
}

impl Drop for LiveStack {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(stream) = self.stream.take() {
            let _ = stream.join();
        }
    }
}

/// Polls `check` until it returns `Some`, for at most `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
