//! Command-line configuration of Kafka, shared by `lake-stream` and the
//! pipeline.

use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;

use crate::run::{KafkaSettings, parse_duration};

#[derive(Args, Clone)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers (host:port,...).
    #[arg(long = "kafka", env = "LAKE_KAFKA_BROKERS", value_name = "BROKERS")]
    pub brokers: Option<String>,
    /// Topic of the sales events.
    #[arg(long, env = "LAKE_KAFKA_TOPIC", default_value = "ventes-temps-reel")]
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
