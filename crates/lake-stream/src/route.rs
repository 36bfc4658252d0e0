//! Global deduplication by co-partitioning: every copy of an event must be
//! aggregated by the partition its `event_id` hashes to (its *home*), so
//! that deduplication per partition is global whichever source partition
//! a copy was sent to (the repartitioning of Kafka Streams, paid only for
//! the messages that are not at home already).
//!
//! - The aggregating stage owning partition `q` reads source partition `q`
//!   directly, and internal partition `q` of `{topic}.by-event-id` (same
//!   partition count; the consumer group's range assignment gives a member
//!   the same partitions of both topics).
//! - A source message at home (or not a valid event, which the DLQ takes
//!   where it is: [`routing_id`]) is aggregated where it is read. Any other is
//!   forwarded by [`Forwarder`] to internal partition `home(id)`, in an
//!   [`Envelope`] carrying its source partition and offset, and skipped
//!   locally. A producer that keys events by `event_id` with the same hash
//!   leaves nothing to forward; an unkeyed one pays for the share that
//!   moves.
//!
//! Exactly-once effects:
//! - forwarding is at least once: a micro-batch waits for the broker's
//!   acknowledgement of every message forwarded (`flush`) before it
//!   checkpoints the source offsets; after a crash the next owner forwards
//!   the messages since the checkpoint again;
//! - the producer is idempotent (the broker keeps each partition's
//!   messages in the order sent, retries included), so the messages of one
//!   source partition reach an internal partition in source-offset order:
//!   a copy forwarded again after a crash comes at or below a source offset
//!   already there, and the home partition skips it
//!   ([`crate::state::PartitionState::apply_routed`]). A copy forwarded
//!   again is skipped, a copy the producer sent twice is a duplicate: both
//!   are told apart.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use xxhash_rust::xxh3::xxh3_64;

use crate::config::KafkaSettings;
use crate::event::parse_event;

/// The internal topic of a source topic.
pub fn internal_topic(topic: &str) -> String {
    format!("{topic}.by-event-id")
}

/// The home partition of an event id among `partitions`: the built-in
/// producer's keyed partitioner too.
pub fn partition_of_event(event_id: &str, partitions: i32) -> i32 {
    (xxh3_64(event_id.as_bytes()) % partitions.max(1) as u64) as i32
}

/// The event id a message is routed by: that of a valid event, read by the
/// one parse that validates it ([`parse_event`]). `None` for a message the
/// DLQ takes: it stays on the partition it was read from and is rejected
/// there by that same parse. Routing and validation cannot disagree on a
/// message's id (an object giving `event_id` twice is invalid, not routed
/// by one copy and counted by the other); an invalid message is never
/// forwarded.
pub fn routing_id(payload: Option<&[u8]>) -> Option<String> {
    parse_event(payload).ok().map(|event| event.event_id)
}

/// Where a message read from a source partition is aggregated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Its event id's home, or where it was read when it is not a valid
    /// event.
    pub partition: i32,
    /// The id it is routed by ([`routing_id`]); `None` for a message the
    /// DLQ takes.
    pub event_id: Option<String>,
}

/// The partition that aggregates a message read from `source_partition`
/// among `partitions`, and the event id that decides it.
pub fn route(payload: Option<&[u8]>, source_partition: i32, partitions: i32) -> Route {
    let event_id = routing_id(payload);
    let partition = match &event_id {
        Some(id) => partition_of_event(id, partitions),
        None => source_partition.rem_euclid(partitions.max(1)),
    };
    Route {
        partition,
        event_id,
    }
}

const ENVELOPE_MAGIC: &[u8; 4] = b"LKR1";
const ENVELOPE_HEADER: usize = 4 + 4 + 8 + 1;

/// A source message as republished: its source partition and offset, and
/// its value unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub partition: i32,
    pub offset: i64,
    pub payload: Option<Vec<u8>>,
}

impl Envelope {
    /// `LKR1`, partition (i32 LE), offset (i64 LE), 1 if a value follows,
    /// the value.
    pub fn encode(partition: i32, offset: i64, payload: Option<&[u8]>) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(ENVELOPE_HEADER + payload.map_or(0, <[u8]>::len));
        bytes.extend_from_slice(ENVELOPE_MAGIC);
        bytes.extend_from_slice(&partition.to_le_bytes());
        bytes.extend_from_slice(&offset.to_le_bytes());
        bytes.push(u8::from(payload.is_some()));
        if let Some(payload) = payload {
            bytes.extend_from_slice(payload);
        }
        bytes
    }

    /// `None` when the bytes are not an envelope (a message some other
    /// producer wrote to the internal topic).
    pub fn decode(bytes: &[u8]) -> Option<Envelope> {
        if bytes.len() < ENVELOPE_HEADER || &bytes[..4] != ENVELOPE_MAGIC {
            return None;
        }
        let partition = i32::from_le_bytes(bytes[4..8].try_into().ok()?);
        let offset = i64::from_le_bytes(bytes[8..16].try_into().ok()?);
        let payload = match bytes[16] {
            0 if bytes.len() == ENVELOPE_HEADER => None,
            1 => Some(bytes[ENVELOPE_HEADER..].to_vec()),
            _ => return None,
        };
        Some(Envelope {
            partition,
            offset,
            payload,
        })
    }
}

/// Creates the internal topic with `partitions` partitions unless it
/// exists; returns its partition count.
pub fn ensure_internal_topic(settings: &KafkaSettings, partitions: i32) -> Result<i32> {
    ensure_topic(settings, &internal_topic(&settings.topic), partitions)
}

/// Creates topic `name` with `partitions` partitions unless it exists;
/// returns its partition count.
pub fn ensure_topic(settings: &KafkaSettings, name: &str, partitions: i32) -> Result<i32> {
    let probe: BaseConsumer = settings
        .client_config()
        .create()
        .context("creating a Kafka client")?;
    if let Some(count) = partition_count(&probe, name, settings.connect_timeout)? {
        return Ok(count);
    }
    let mut config = rdkafka::ClientConfig::new();
    config.set("bootstrap.servers", &settings.brokers);
    for (key, value) in &settings.extra {
        config.set(key, value);
    }
    let admin: AdminClient<DefaultClientContext> =
        config.create().context("creating a Kafka admin client")?;
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(settings.connect_timeout));
    let results = pollster::block_on(admin.create_topics([&topic], &options))
        .with_context(|| format!("creating the topic {name}"))?;
    for result in results {
        match result {
            Ok(_) => {}
            // Another process of the group created it first.
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => bail!("creating the topic {topic}: {code}"),
        }
    }
    let deadline =
        std::time::Instant::now() + settings.connect_timeout.max(Duration::from_secs(10));
    loop {
        if let Some(count) = partition_count(&probe, name, settings.connect_timeout)?
            && count > 0
        {
            return Ok(count);
        }
        if std::time::Instant::now() > deadline {
            bail!("the topic {name} did not appear in the brokers' metadata");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn partition_count(consumer: &BaseConsumer, topic: &str, timeout: Duration) -> Result<Option<i32>> {
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .with_context(|| format!("reading the metadata of {topic}"))?;
    Ok(metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
        .map(|t| t.partitions().len() as i32))
}

#[derive(Default)]
struct DeliveryFailures {
    failed: AtomicU64,
    first: std::sync::Mutex<Option<String>>,
}

impl ClientContext for DeliveryFailures {}

impl ProducerContext for DeliveryFailures {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        if let Err((err, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut first) = self.first.lock() {
                first.get_or_insert_with(|| err.to_string());
            }
        }
    }
}

/// Forwards source messages to their home partitions of the internal
/// topic, for the partitions this process owns.
pub struct Forwarder {
    topic: String,
    partitions: i32,
    producer: BaseProducer<DeliveryFailures>,
    /// Messages sent since the last flush.
    unflushed: u64,
}

impl Forwarder {
    /// A forwarder to `internal_topic(settings.topic)`, which has
    /// `partitions` partitions (as many as the source topic).
    pub fn new(settings: &KafkaSettings, partitions: i32) -> Result<Self> {
        let mut config = rdkafka::ClientConfig::new();
        config
            .set("bootstrap.servers", &settings.brokers)
            .set("acks", "all")
            .set("linger.ms", "5")
            // The idempotent producer keeps each partition's messages in
            // the order sent, retries included, with several requests in
            // flight (see the module's comment).
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "30000");
        for (key, value) in &settings.extra {
            config.set(key, value);
        }
        let producer = config
            .create_with_context(DeliveryFailures::default())
            .context("creating the forwarding Kafka producer")?;
        Ok(Forwarder {
            topic: internal_topic(&settings.topic),
            partitions,
            producer,
            unflushed: 0,
        })
    }

    /// The partition count of the internal topic (and of the source).
    pub fn partitions(&self) -> i32 {
        self.partitions
    }

    /// Sends `payload`, read at `offset` of source partition `partition`
    /// with timestamp `timestamp_ms`, to internal partition `home`, keyed
    /// by its event id. The record keeps the source timestamp, so the
    /// event's outputs land on the same date wherever it is aggregated.
    pub fn forward(
        &mut self,
        home: i32,
        event_id: &str,
        partition: i32,
        offset: i64,
        timestamp_ms: Option<i64>,
        payload: Option<&[u8]>,
    ) -> Result<()> {
        let value = Envelope::encode(partition, offset, payload);
        let mut record = BaseRecord::<str, [u8]>::to(&self.topic)
            .partition(home)
            .key(event_id)
            .payload(&value);
        if let Some(ms) = timestamp_ms {
            record = record.timestamp(ms);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((err, _)) => return Err(anyhow!("forwarding to {}: {err}", self.topic)),
            }
        }
        self.producer.poll(Duration::ZERO);
        self.unflushed += 1;
        Ok(())
    }

    /// Waits until the broker acknowledged every message sent since the
    /// last flush, and returns how many that was; an error when one was not
    /// delivered (the batch must not checkpoint: a restart forwards it
    /// again).
    pub fn flush(&mut self) -> Result<u64> {
        let sent = self.unflushed;
        if sent == 0 {
            return Ok(0);
        }
        self.producer
            .flush(Duration::from_secs(60))
            .map_err(|err| anyhow!("flushing to {}: {err}", self.topic))?;
        self.unflushed = 0;
        let failed = self.producer.context().failed.swap(0, Ordering::Relaxed);
        if failed > 0 {
            let first = self
                .producer
                .context()
                .first
                .lock()
                .ok()
                .and_then(|mut f| f.take())
                .unwrap_or_default();
            bail!(
                "{failed} messages were not forwarded to {} ({first}); not checkpointing: a \
                 restart forwards them again",
                self.topic
            );
        }
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_foreign_bytes_are_not_envelopes() {
        let bytes = Envelope::encode(3, 1_234_567_890_123, Some(b"{\"a\":1}"));
        assert_eq!(bytes.len(), ENVELOPE_HEADER + 7);
        assert_eq!(
            Envelope::decode(&bytes),
            Some(Envelope {
                partition: 3,
                offset: 1_234_567_890_123,
                payload: Some(b"{\"a\":1}".to_vec())
            })
        );
        let empty = Envelope::encode(0, 7, None);
        assert_eq!(Envelope::decode(&empty).unwrap().payload, None);
        // A value some other producer wrote: not ours.
        assert_eq!(Envelope::decode(b"{\"event_id\":\"x\"}"), None);
        assert_eq!(Envelope::decode(b"LKR1\x01"), None);
        // A header saying "no value" with bytes after it is not an envelope.
        let mut bad = Envelope::encode(0, 7, None);
        bad.push(b'x');
        assert_eq!(Envelope::decode(&bad), None);
    }

    #[test]
    fn copies_of_an_event_go_to_one_partition_whatever_their_source() {
        let original = br#"{"event_id":"evt-1","event_time":"2026-11-26T10:00:00Z","pays":"France","montant":1}"#;
        let copy = br#"{"pays":"France","event_id":"evt-1","montant":1,"event_time":"2026-11-26T10:00:00Z"}"#;
        let partitions = 4;
        let expected = partition_of_event("evt-1", partitions);
        for source in 0..partitions {
            assert_eq!(
                route(Some(original), source, partitions).partition,
                expected
            );
            assert_eq!(route(Some(copy), source, partitions).partition, expected);
        }
        // The same hash as the built-in producer's keyed partitioner.
        assert_eq!(
            expected,
            (xxh3_64(b"evt-1") % 4) as i32,
            "hash of the event id modulo the partition count"
        );
        // Not a valid event: the source partition's number.
        assert_eq!(route(Some(b"{oops"), 6, partitions).partition, 2);
        assert_eq!(route(None, 1, partitions).partition, 1);
        assert_eq!(
            route(Some(br#"{"event_id":12}"#), 3, partitions).partition,
            3
        );
        assert_eq!(
            routing_id(Some(
                br#"{"event_id":"a b","event_time":"2026-11-26T10:00:00Z","pays":"FR","montant":1}"#
            ))
            .as_deref(),
            Some("a b")
        );
        // A readable id is not enough: the DLQ takes an invalid event where
        // it was read.
        assert_eq!(routing_id(Some(br#"{"event_id":"a b"}"#)), None);
    }

    /// Two ids whose homes differ among `partitions`.
    fn ids_with_different_homes(partitions: i32) -> (String, String) {
        let first = "zK".to_string();
        let home = partition_of_event(&first, partitions);
        let second = (0..)
            .map(|i| format!("aK{i}"))
            .find(|id| partition_of_event(id, partitions) != home)
            .unwrap();
        (first, second)
    }

    #[test]
    fn an_object_giving_its_event_id_twice_stays_where_it_was_read() {
        let partitions = 4;
        let (first, second) = ids_with_different_homes(partitions);
        let twice = format!(
            r#"{{"event_id":"{first}","event_id":"{second}","event_time":"2026-11-26T10:00:00Z","pays":"France","montant":1}}"#
        );
        assert_eq!(routing_id(Some(twice.as_bytes())), None);
        for source in 0..partitions {
            // Neither id's home: where it was read, where the same parse
            // rejects it.
            assert_eq!(
                route(Some(twice.as_bytes()), source, partitions).partition,
                source
            );
        }
        assert_eq!(
            parse_event(Some(twice.as_bytes())).unwrap_err().reason,
            crate::event::DlqReason::InvalidField
        );
    }
}
