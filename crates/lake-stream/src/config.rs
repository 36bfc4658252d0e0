//! The settings of a stream query: when it runs ([`Trigger`]), where Kafka
//! is and how to talk to it ([`KafkaSettings`], from the command line by
//! [`KafkaArgs`], shared by `lake-stream` and the pipeline), how a Kafka
//! run goes ([`KafkaRunOptions`]), what the query is ([`StreamConfig`])
//! and the tables it writes.

use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use clap::Args;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, ConsumerContext};

/// Bronze table of valid events.
pub const EVENTS_TABLE: &str = "ventes_temps_reel";
/// DLQ table, in the bronze root.
pub const DLQ_TABLE: &str = "_dlq/ventes_temps_reel";
/// Gold live views.
pub const LIVE_BY_COUNTRY: &str = "live_sales_by_country";
pub const LIVE_BY_MINUTE: &str = "live_sales_by_minute";

/// The stream query of the sales events (its checkpoints' folder,
/// `checkpoints/{query}/`), when none is named.
pub const QUERY: &str = "ventes_temps_reel";
/// The Kafka topic of the sales events (data contract, section 6).
pub const TOPIC: &str = "ventes-temps-reel";

/// The allowed clock skew when none is given (data contract, section 6):
/// events more than this ahead of the processing time are from the future.
pub const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);
/// The allowed lateness when none is given (data contract, section 6): the
/// watermark is the latest event time seen less this.
pub const DEFAULT_LATENESS: Duration = Duration::from_secs(10 * 60);

/// Which stream query a command works on: the one `--query` of every
/// command that takes one.
#[derive(Args, Clone, Debug)]
pub struct QueryName {
    /// Name of the stream query (its checkpoints live in checkpoints/{query}/).
    #[arg(long = "query", default_value = QUERY, value_name = "NAME")]
    pub name: String,
}

/// A duration on the command line, written as [`parse_duration`] reads it
/// (`500ms`, `10s`, `10m`, `1h`) and shown the same way in the help's
/// defaults, so a default is defined once, as a [`Duration`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationArg(pub Duration);

impl std::str::FromStr for DurationArg {
    type Err = anyhow::Error;

    fn from_str(raw: &str) -> Result<Self> {
        parse_duration(raw).map(DurationArg)
    }
}

impl std::fmt::Display for DurationArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let millis = self.0.as_millis();
        match millis {
            m if m % 3_600_000 == 0 => write!(f, "{}h", m / 3_600_000),
            m if m % 60_000 == 0 => write!(f, "{}m", m / 60_000),
            m if m % 1_000 == 0 => write!(f, "{}s", m / 1_000),
            m => write!(f, "{m}ms"),
        }
    }
}

/// When micro-batches run and when the query stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Up to the high watermarks found at start, then stop.
    AvailableNow,
    /// A micro-batch per interval until a stop signal.
    Interval(Duration),
}

impl std::str::FromStr for Trigger {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        if s == "available-now" {
            return Ok(Trigger::AvailableNow);
        }
        let Some(raw) = s.strip_prefix("interval=") else {
            bail!(
                "unknown trigger {s:?}: expected available-now or interval=DURATION (e.g. interval=1s)"
            );
        };
        Ok(Trigger::Interval(parse_duration(raw)?))
    }
}

/// `500ms`, `1s`, `2m`, `1.5s`.
pub fn parse_duration(raw: &str) -> Result<Duration> {
    let raw = raw.trim();
    let (number, unit) = raw
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| raw.split_at(i))
        .ok_or_else(|| {
            anyhow!("invalid duration {raw:?}: expected a number and a unit (ms, s, m, h)")
        })?;
    let value: f64 = number.parse().map_err(|_| {
        anyhow!("invalid duration {raw:?}: expected a number and a unit (ms, s, m, h)")
    })?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => bail!("invalid duration {raw:?}: unit must be ms, s, m or h"),
    };
    if !(seconds.is_finite() && seconds > 0.0) {
        bail!("invalid duration {raw:?}: must be positive");
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// How a stream query runs.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Names the query's checkpoints (`checkpoints/{query}/`) and its
    /// transactions in the outputs' logs.
    pub query: String,
    pub topic: String,
    /// `_source` of the bronze events, e.g. `kafka://host:9092/ventes-temps-reel`.
    pub source: String,
    /// Events older than the latest event time minus this are late.
    pub allowed_lateness: Duration,
    /// Recorded in the commits of this process.
    pub run_id: String,
}

impl StreamConfig {
    pub(crate) fn lateness_micros(&self) -> i64 {
        self.allowed_lateness.as_micros() as i64
    }

    /// The application id of a source partition in the outputs' `txn` actions.
    pub fn app_id(&self, partition: i32) -> String {
        format!("{}/partition-{partition}", self.query)
    }
}

/// Where Kafka is and how to talk to it.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    pub brokers: String,
    pub topic: String,
    pub group: String,
    /// librdkafka settings passed through (security.protocol, sasl.*, ssl.*...).
    pub extra: Vec<(String, String)>,
    /// How long to wait for the brokers before giving up.
    pub connect_timeout: Duration,
}

impl KafkaSettings {
    /// `_source` of the events read: `kafka://{brokers}/{topic}`.
    pub fn source_uri(&self) -> String {
        format!("kafka://{}/{}", self.brokers, self.topic)
    }

    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1000")
            // An idle partition answers a fetch after at most this: it bounds
            // the time a new event waits in the broker.
            .set("fetch.wait.max.ms", "100")
            .set(
                "socket.timeout.ms",
                (self.connect_timeout.as_millis().max(1000)).to_string(),
            );
        for (key, value) in &self.extra {
            config.set(key, value);
        }
        config
    }

    /// A missing topic, with the command that creates it: a new broker
    /// (`cargo xtask up`) has none.
    fn missing_topic(&self) -> anyhow::Error {
        anyhow!(
            "topic {topic} does not exist on {brokers}: create it, e.g. with 4 partitions, by \
             producing events with `lake-stream produce --kafka {brokers} --topic {topic} \
             --create 4 --count N`",
            topic = self.topic,
            brokers = self.brokers,
        )
    }

    /// Fails with a clear error when the brokers cannot be reached within
    /// the connect timeout or the topic does not exist; else its partitions.
    pub fn check_topic<C: ConsumerContext, T: Consumer<C>>(
        &self,
        consumer: &T,
    ) -> Result<Vec<i32>> {
        let metadata = consumer
            .fetch_metadata(Some(&self.topic), self.connect_timeout)
            .map_err(|err| {
                anyhow!(
                    "cannot reach Kafka at {} within {} s: {err}",
                    self.brokers,
                    self.connect_timeout.as_secs_f64()
                )
            })?;
        let topic = metadata
            .topics()
            .iter()
            .find(|t| t.name() == self.topic)
            .ok_or_else(|| self.missing_topic())?;
        if topic.error().is_some() || topic.partitions().is_empty() {
            return Err(self.missing_topic());
        }
        Ok(topic.partitions().iter().map(|p| p.id()).collect())
    }
}

/// Options of a Kafka run.
#[derive(Debug, Clone)]
pub struct KafkaRunOptions {
    pub trigger: Trigger,
    /// Most messages in one micro-batch.
    pub max_batch: usize,
    /// Available-now gives up when no partition is assigned within this.
    pub assignment_timeout: Duration,
    /// Events more than this ahead of their batch's processing time go to
    /// the DLQ as `future_time` (data contract, section 6). A run setting
    /// beside the lateness of [`StreamConfig`], kept here because this
    /// struct has a default.
    pub max_clock_skew: Duration,
}

impl Default for KafkaRunOptions {
    fn default() -> Self {
        KafkaRunOptions {
            trigger: Trigger::AvailableNow,
            max_batch: 50_000,
            assignment_timeout: Duration::from_secs(30),
            max_clock_skew: DEFAULT_MAX_CLOCK_SKEW,
        }
    }
}

#[derive(Args, Clone)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers (host:port,...).
    #[arg(long = "kafka", env = "LAKE_KAFKA_BROKERS", value_name = "BROKERS")]
    pub brokers: Option<String>,
    /// Topic of the sales events.
    #[arg(long, env = "LAKE_KAFKA_TOPIC", default_value = TOPIC)]
    pub topic: String,
    /// Consumer group.
    #[arg(long, env = "LAKE_KAFKA_GROUP", default_value = "lake-stream")]
    pub group: String,
    /// librdkafka setting passed through, e.g. -X security.protocol=SASL_SSL (repeatable;
    /// LAKE_KAFKA_CONFIG holds comma-separated ones).
    #[arg(
        short = 'X',
        value_name = "KEY=VALUE",
        env = "LAKE_KAFKA_CONFIG",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub config: Vec<String>,
    /// How long to wait for the brokers.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
}

impl KafkaArgs {
    /// The settings, or `None` when no broker is configured.
    pub fn settings(&self) -> Result<Option<KafkaSettings>> {
        let Some(brokers) = self.brokers.clone().filter(|b| !b.trim().is_empty()) else {
            return Ok(None);
        };
        let mut extra = Vec::new();
        for item in &self.config {
            let Some((key, value)) = item.split_once('=') else {
                bail!("invalid Kafka setting {item:?}: expected KEY=VALUE");
            };
            extra.push((key.trim().to_string(), value.trim().to_string()));
        }
        Ok(Some(KafkaSettings {
            brokers,
            topic: self.topic.clone(),
            group: self.group.clone(),
            extra,
            connect_timeout: self.connect_timeout,
        }))
    }

    /// The settings; an error naming the flag when no broker is configured.
    pub fn required(&self) -> Result<KafkaSettings> {
        self.settings()?.ok_or_else(|| {
            anyhow::anyhow!("no Kafka broker configured: set --kafka or LAKE_KAFKA_BROKERS")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_argument_shows_as_it_is_written() {
        for (text, duration) in [
            ("10m", DEFAULT_LATENESS),
            ("5m", DEFAULT_MAX_CLOCK_SKEW),
            ("1h", Duration::from_secs(3600)),
            ("90s", Duration::from_secs(90)),
            ("250ms", Duration::from_millis(250)),
        ] {
            assert_eq!(DurationArg(duration).to_string(), text);
            assert_eq!(text.parse::<DurationArg>().unwrap(), DurationArg(duration));
        }
    }
}
