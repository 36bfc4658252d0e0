//! The messages of a query's input: one [`SourceMessage`] per message read,
//! from one of a partition's two [`Lane`]s.

use chrono::{DateTime, NaiveDate};

use crate::route::Envelope;

/// The topic a partition's message was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lane {
    /// The source topic.
    Source,
    /// The internal topic: copies forwarded from other source partitions.
    Internal,
}

/// One message of the query's input.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceMessage {
    pub lane: Lane,
    pub partition: i32,
    pub offset: i64,
    /// Message timestamp (milliseconds since the epoch), when the source has one.
    pub timestamp_ms: Option<i64>,
    pub payload: Option<Vec<u8>>,
    /// The source topic's partition and offset the message came from: its
    /// own for a message read from the source, the envelope's for one
    /// forwarded.
    pub origin: (i32, i64),
    /// For a source message: forwarded to its home partition (not
    /// aggregated here), once decided.
    pub away: Option<bool>,
}

impl SourceMessage {
    /// A message read straight from its source partition.
    pub fn direct(
        partition: i32,
        offset: i64,
        timestamp_ms: Option<i64>,
        payload: Option<Vec<u8>>,
    ) -> Self {
        SourceMessage {
            lane: Lane::Source,
            partition,
            offset,
            timestamp_ms,
            payload,
            origin: (partition, offset),
            away: None,
        }
    }

    /// A message of the internal topic: the forwarder's envelope unwrapped
    /// (a value that is not an envelope is taken as it is).
    pub fn routed(
        partition: i32,
        offset: i64,
        timestamp_ms: Option<i64>,
        value: Option<&[u8]>,
    ) -> Self {
        match value.and_then(Envelope::decode) {
            Some(envelope) => SourceMessage {
                lane: Lane::Internal,
                partition,
                offset,
                timestamp_ms,
                payload: envelope.payload,
                origin: (envelope.partition, envelope.offset),
                away: Some(false),
            },
            None => SourceMessage {
                lane: Lane::Internal,
                away: Some(false),
                ..SourceMessage::direct(partition, offset, timestamp_ms, value.map(<[u8]>::to_vec))
            },
        }
    }

    /// The date partitioning the message's outputs.
    pub(crate) fn date(&self, fallback: NaiveDate) -> NaiveDate {
        self.timestamp_ms
            .and_then(DateTime::from_timestamp_millis)
            .map(|t| t.date_naive())
            .unwrap_or(fallback)
    }
}
