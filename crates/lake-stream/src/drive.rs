//! The one loop every source runs under: it buffers what a [`Source`]
//! polls, runs a micro-batch of the processor when the trigger says so,
//! writes the status once per batch, and stops on the stop signal or,
//! available-now, when the source says its end is processed. The loop
//! holds the processor; a source sees it only through
//! [`crate::source::context::SourceContext`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::config::Trigger;
use crate::message::SourceMessage;
use crate::processor::{BatchReport, Processor};
use crate::source::context::{Source, lock};

/// When micro-batches run over a source.
#[derive(Debug, Clone, Copy)]
pub struct LoopOptions {
    pub trigger: Trigger,
    /// Most messages in one micro-batch.
    pub max_batch: usize,
}

/// How long a poll waits for a message.
const POLL_WAIT: Duration = Duration::from_millis(100);
/// How long the source may pause before an available-now run processes
/// what it has.
const AVAILABLE_NOW_PAUSE: Duration = Duration::from_millis(300);

/// Runs micro-batches of `processor` over `source` until the trigger says
/// stop (or `stop()` says so); returns the reports of its batches. The
/// processor is locked only between calls to the source: a Kafka source's
/// rebalance callback, run inside its poll, locks it too.
pub fn drive<S: Source>(
    source: &mut S,
    processor: &Mutex<Processor>,
    options: LoopOptions,
    stop: &dyn Fn() -> bool,
    on_batch: &mut dyn FnMut(&BatchReport, &Processor),
) -> Result<Vec<BatchReport>> {
    let mut reports = Vec::new();
    let mut buffer: Vec<SourceMessage> = Vec::new();
    let mut batch_started = Instant::now();
    let mut last_message_at = Instant::now();
    loop {
        let idle = match source.poll(POLL_WAIT)? {
            Some(mut message) => {
                last_message_at = Instant::now();
                lock(processor).accept(&mut message)?;
                buffer.push(message);
                false
            }
            None => true,
        };
        let stopping = stop();
        let full = buffer.len() >= options.max_batch;
        let due = match options.trigger {
            // Up to the source's end in as few batches as it allows: a
            // batch is due when full, when every owned partition's messages
            // up to the end are in, or after a pause of the source (each
            // batch costs a few commits, whatever its size). Messages the
            // processor holds back (the next date's, those past the end of
            // a replayed batch) count too: the source may have nothing
            // more to say.
            Trigger::AvailableNow => {
                let held = lock(processor).carried() > 0;
                (!buffer.is_empty() || held)
                    && (full
                        || (idle
                            && (buffer.is_empty()
                                || last_message_at.elapsed() >= AVAILABLE_NOW_PAUSE
                                || source.at_end(&buffer))))
            }
            // A batch every interval from the start of the previous one (or
            // at once when that one took longer), as Spark's processing-time
            // trigger: a batch's duration does not add to the wait.
            Trigger::Interval(every) => batch_started.elapsed() >= every || full,
        };
        if due || stopping {
            batch_started = Instant::now();
            let processing_time = source.processing_time();
            let report =
                lock(processor).process_at(std::mem::take(&mut buffer), processing_time)?;
            if report.messages + report.forwarded > 0 {
                tracing::info!(
                    "{}: micro-batch of {} messages ({} forwarded) in {:.3} s",
                    source.name(),
                    report.messages,
                    report.forwarded,
                    batch_started.elapsed().as_secs_f64()
                );
            }
            let lag = source.after_batch()?;
            let mut processor = lock(processor);
            if let Some(lag) = lag {
                processor.set_lag(lag);
            }
            processor.save_status()?;
            on_batch(&report, &processor);
            reports.push(report);
        }
        if stopping {
            break;
        }
        if options.trigger == Trigger::AvailableNow {
            let carried = lock(processor).carried();
            if buffer.is_empty() && carried == 0 {
                // Every message polled went through a batch, which
                // flushed its forwards, or was dropped with its partition:
                // those forwards are acknowledged here.
                lock(processor).flush_forwards()?;
            }
            if source.finished(&buffer, carried)? {
                break;
            }
        }
    }
    Ok(reports)
}
