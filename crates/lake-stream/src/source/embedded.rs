//! The built-in producer as a source, in process: a fixed topic for a
//! seed and date (so a rerun has nothing new to count), each event stamped
//! over the run date up to now. Its generator sends every copy of an
//! event to the partition of its id, its home, so nothing is forwarded.

use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};

use crate::generator::{EventGenerator, EventMix, ProducerReport};
use crate::message::SourceMessage;
use crate::source::context::{Source, SourceContext};

/// Options of the in-process source.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    pub events: u64,
    pub partitions: i32,
    pub seed: u64,
    pub mix: EventMix,
    pub batch_size: usize,
    /// The day the events happen (spread over it).
    pub date: NaiveDate,
}

pub struct EmbeddedSource {
    /// Names the source: the `_source` of its events.
    name: String,
    generator: EventGenerator,
    events: u64,
    /// Events generated so far.
    sent: u64,
    day_start: DateTime<Utc>,
    /// Milliseconds between two events' timestamps.
    step_ms: i64,
    /// The time stamped on the latest event generated.
    stamped: DateTime<Utc>,
    /// The next offset of each partition.
    offsets: Vec<i64>,
}

impl EmbeddedSource {
    /// Feeds the processor behind `context`, which is given every
    /// partition; `name` is the `_source` of the events.
    pub fn new(
        context: &mut dyn SourceContext,
        name: &str,
        options: &EmbeddedOptions,
    ) -> Result<Self> {
        let generator = EventGenerator::new(options.seed, options.partitions, options.mix)?;
        for partition in 0..options.partitions {
            context.assign(partition)?;
        }
        // Events spread over the run date up to now: the live view of a run
        // dated today never shows events from the future. (A run dated in
        // the future gets its events at the start of that day.)
        let day_start =
            Utc.from_utc_datetime(&options.date.and_hms_opt(0, 0, 0).unwrap_or_default());
        let window_ms = (Utc::now() - day_start)
            .num_milliseconds()
            .clamp(1, 86_400_000);
        Ok(EmbeddedSource {
            name: name.to_string(),
            generator,
            events: options.events,
            sent: 0,
            day_start,
            step_ms: (window_ms / options.events.max(1) as i64).max(0),
            stamped: day_start,
            offsets: vec![0; options.partitions as usize],
        })
    }

    fn exhausted(&self) -> bool {
        self.sent >= self.events
    }

    /// What the producer says a correct consumer counts.
    pub fn finish(self) -> ProducerReport {
        self.generator.report().clone()
    }
}

impl Source for EmbeddedSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn poll(&mut self, _wait: Duration) -> Result<Option<SourceMessage>> {
        if self.exhausted() {
            return Ok(None);
        }
        let now = self.day_start + chrono::Duration::milliseconds(self.sent as i64 * self.step_ms);
        let message = self.generator.next_message(now);
        self.sent += 1;
        self.stamped = now;
        let offset = &mut self.offsets[message.partition as usize];
        let polled = SourceMessage::direct(
            message.partition,
            *offset,
            Some(now.timestamp_millis()),
            Some(message.payload),
        );
        *offset += 1;
        Ok(Some(polled))
    }

    fn at_end(&mut self, _buffer: &[SourceMessage]) -> bool {
        self.exhausted()
    }

    fn finished(&mut self, buffer: &[SourceMessage], carried: usize) -> Result<bool> {
        Ok(self.exhausted() && buffer.is_empty() && carried == 0)
    }

    /// The simulated clock: the time of the latest event generated, or the
    /// wall clock when later. A run dated in the future simulates that
    /// date: its events are not from the future of the stream it makes.
    fn processing_time(&self) -> DateTime<Utc> {
        Utc::now().max(self.stamped)
    }
}
