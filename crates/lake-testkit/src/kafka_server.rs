//! A Kafka-protocol broker for tests: `LAKE_TEST_KAFKA` (bootstrap servers),
//! else the native `tansu` broker (`LAKE_TANSU_BIN`, `tansu` on the PATH, or
//! the copy `cargo xtask test` installs under `cache_dir()/tools/bin`)
//! started with its SQLite storage engine on a free loopback port.

use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::process::{Watchdog, stop_pid};
use crate::{free_port, unique_suffix};

/// A running broker.
pub struct KafkaServer {
    pub brokers: String,
    _watchdog: Option<Watchdog>,
    _container: Option<testcontainers::Container<testcontainers::GenericImage>>,
}

static SERVER: OnceLock<std::result::Result<KafkaServer, String>> = OnceLock::new();

/// The test process's broker, started on first use.
pub fn kafka_server() -> &'static KafkaServer {
    let server = SERVER.get_or_init(|| KafkaServer::obtain().map_err(|err| format!("{err:#}")));
    match server {
        Ok(server) => server,
        Err(err) => panic!(
            "a Kafka-protocol broker is needed by this test and could not be had: {err}\n\
             Provide one with LAKE_TEST_KAFKA=host:port, or install tansu \
             (cargo install tansu --version 0.6.0 --locked --features dynostore,libsql,postgres) \
             and put it on the PATH or in LAKE_TANSU_BIN."
        ),
    }
}

/// `tansu broker` on 127.0.0.1:`port` with its SQLite storage in `dir`.
pub fn tansu_broker(tansu: &std::path::Path, dir: &std::path::Path, port: u16) -> Command {
    let url = format!("tcp://127.0.0.1:{port}");
    let mut command = Command::new(tansu);
    // The SQLite URL is relative to the working directory (an absolute one
    // is taken as relative and the broker exits).
    command
        .current_dir(dir)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", "sqlite://tansu.db"]);
    command
}

pub use lake_tools::find_tansu;

impl KafkaServer {
    /// A handle on a broker someone else runs (for topic creation).
    pub fn attach(brokers: &str) -> KafkaServer {
        KafkaServer {
            brokers: brokers.to_string(),
            _watchdog: None,
            _container: None,
        }
    }

    fn obtain() -> Result<KafkaServer> {
        if let Ok(brokers) = std::env::var("LAKE_TEST_KAFKA") {
            let server = KafkaServer {
                brokers,
                _watchdog: None,
                _container: None,
            };
            server.wait_ready(Duration::from_secs(30))?;
            return Ok(server);
        }
        if crate::docker::docker_answers() {
            let (container, brokers) = crate::docker::kafka()?;
            let server = KafkaServer {
                brokers,
                _watchdog: None,
                _container: Some(container),
            };
            server.wait_ready(Duration::from_secs(60))?;
            return Ok(server);
        }
        Self::start_tansu()
    }

    fn start_tansu() -> Result<KafkaServer> {
        let tansu = find_tansu()?;
        let dir = tempfile::Builder::new()
            .prefix("lake-test-kafka-")
            .tempdir()
            .context("creating the broker directory")?
            .keep();
        let port = free_port();
        let log =
            std::fs::File::create(dir.join("tansu.log")).context("creating the broker log")?;
        let log_err = log.try_clone().context("opening the broker log")?;
        let mut child = tansu_broker(&tansu, &dir, port)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .with_context(|| format!("starting {}", tansu.display()))?;
        let watchdog = Watchdog::spawn(&stop_pid(child.id(), &dir))?;
        let server = KafkaServer {
            brokers: format!("127.0.0.1:{port}"),
            _watchdog: Some(watchdog),
            _container: None,
        };
        // A broker started on a busy port exits (with status 0): check it lives.
        std::thread::sleep(Duration::from_millis(200));
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(dir.join("tansu.log")).unwrap_or_default();
            bail!("tansu exited at start ({status}): {log}");
        }
        server.wait_ready(Duration::from_secs(30)).map_err(|err| {
            let log = std::fs::read_to_string(dir.join("tansu.log")).unwrap_or_default();
            anyhow!("{err:#}\n{log}")
        })?;
        Ok(server)
    }

    /// Waits until a metadata request succeeds.
    pub fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .create()
            .context("creating a Kafka client")?;
        let deadline = Instant::now() + timeout;
        loop {
            match consumer.fetch_metadata(None, Duration::from_secs(2)) {
                Ok(_) => return Ok(()),
                Err(err) if Instant::now() > deadline => {
                    bail!(
                        "Kafka at {} not ready after {} s: {err}",
                        self.brokers,
                        timeout.as_secs()
                    )
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Creates a topic with a unique name (prefix + suffix) and returns it.
    pub fn create_topic(&self, prefix: &str, partitions: i32) -> String {
        let name = format!("{prefix}-{}", unique_suffix().replace('_', "-"));
        self.create_named_topic(&name, partitions)
            .unwrap_or_else(|err| panic!("creating topic {name}: {err:#}"));
        name
    }

    pub fn create_named_topic(&self, name: &str, partitions: i32) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .create()
            .context("creating a Kafka admin client")?;
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let results = futures_lite_block_on(admin.create_topics([&topic], &AdminOptions::new()))
            .context("creating the topic")?;
        for result in results {
            result.map_err(|(topic, code)| anyhow!("creating {topic}: {code}"))?;
        }
        // Wait until the metadata shows every partition.
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .create()
            .context("creating a Kafka client")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(metadata) = consumer.fetch_metadata(Some(name), Duration::from_secs(2))
                && metadata.topics().iter().any(|t| {
                    t.name() == name
                        && t.error().is_none()
                        && t.partitions().len() == partitions as usize
                })
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("topic {name} did not appear in the metadata");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Runs the admin client's future to completion on this thread.
fn futures_lite_block_on<F: std::future::Future>(future: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|err| panic!("starting a runtime for the admin client: {err}"));
    runtime.block_on(future)
}
