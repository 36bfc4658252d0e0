//! `lake-stream produce`: sends generated sales events to Kafka at a rate,
//! for a count or a duration, and reports what a consumer must count.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use chrono::Utc;
use rdkafka::ClientContext;
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::KafkaSettings;
use crate::generator::{EventGenerator, EventMix, ProducerReport};

/// How much to send.
#[derive(Debug, Clone)]
pub struct ProduceOptions {
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    /// Messages per second (as fast as possible when absent).
    pub rate: Option<f64>,
    pub mix: EventMix,
    pub seed: u64,
    /// Send without a key, as many producers do: a resent copy of an event
    /// lands on another partition than its original.
    pub unkeyed: bool,
}

#[derive(Default)]
struct DeliveryCounter {
    failed: AtomicU64,
}

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        if let Err((err, _)) = result {
            tracing::warn!("delivery failed: {err}");
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Sends the events and returns the report of what was sent.
pub fn produce(settings: &KafkaSettings, options: &ProduceOptions) -> Result<ProducerReport> {
    produce_with(settings, options, &mut |_| {})
}

/// [`produce`], calling `on_sent` with each message's sequence number as
/// it is handed to the client (benchmarks time events from there).
pub fn produce_with(
    settings: &KafkaSettings,
    options: &ProduceOptions,
    on_sent: &mut dyn FnMut(u64),
) -> Result<ProducerReport> {
    if options.count.is_none() && options.duration.is_none() {
        bail!("say how much to send: --count N or --duration D");
    }
    let probe: BaseConsumer = settings
        .client_config()
        .create()
        .context("creating a Kafka client")?;
    let partitions = settings.check_topic(&probe)?;
    drop(probe);
    let mut config = rdkafka::ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("acks", "all")
        // librdkafka's default. 1 ms made a produce request (a broker
        // transaction) per few events: at 5,000 events/s tansu then fell
        // behind once a consumer also fetched, and events aged seconds in
        // the producer's queue (bench stream, p99 2.3 s against 0.69 s).
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    for (key, value) in &settings.extra {
        config.set(key, value);
    }
    let producer: BaseProducer<DeliveryCounter> = config
        .create_with_context(DeliveryCounter::default())
        .context("creating the Kafka producer")?;
    let mut generator = EventGenerator::new(options.seed, partitions.len() as i32, options.mix)?;
    if options.unkeyed {
        generator = generator.spreading_copies();
    }
    let started = Instant::now();
    let mut sent = 0u64;
    loop {
        if options.count.is_some_and(|n| sent >= n)
            || options.duration.is_some_and(|d| started.elapsed() >= d)
        {
            break;
        }
        if let Some(rate) = options.rate {
            let due = Duration::from_secs_f64(sent as f64 / rate);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                // Sleep, then serve the delivery callbacks: librdkafka's poll
                // counts whole milliseconds, so a wait under 1 ms (every
                // event above 1,000 events/s) would spin a core away from
                // the broker and the consumer being measured.
                std::thread::sleep(wait.min(Duration::from_millis(50)));
                producer.poll(Duration::ZERO);
                continue;
            }
        }
        let message = generator.next_message(Utc::now());
        let mut record = BaseRecord::<String, Vec<u8>>::to(&settings.topic)
            .partition(partitions[message.partition as usize])
            .payload(&message.payload);
        if !options.unkeyed {
            record = record.key(&message.key);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(10));
                }
                Err((err, _)) => return Err(anyhow!("sending to {}: {err}", settings.topic)),
            }
        }
        on_sent(sent);
        sent += 1;
        if sent.is_multiple_of(1000) || options.rate.is_some() {
            producer.poll(Duration::ZERO);
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .map_err(|err| anyhow!("flushing to {}: {err}", settings.brokers))?;
    let failed = producer.context().failed.load(Ordering::Relaxed);
    if failed > 0 {
        bail!(
            "{failed} of {sent} messages were not delivered to {}",
            settings.topic
        );
    }
    Ok(generator.report().clone())
}
