//! The profile of a micro-batch: how long each of its steps took.

use std::time::{Duration, Instant};

/// Times the steps of a micro-batch, for the debug log (the profile of a
/// batch: `RUST_LOG=lake_stream=debug`).
pub(crate) struct StepTimer {
    last: Instant,
    laps: Vec<(&'static str, Duration)>,
}

impl StepTimer {
    pub(crate) fn new() -> Self {
        StepTimer {
            last: Instant::now(),
            laps: Vec::new(),
        }
    }

    pub(crate) fn lap(&mut self, step: &'static str) {
        let now = Instant::now();
        self.laps.push((step, now - self.last));
        self.last = now;
    }

    pub(crate) fn summary(&self) -> String {
        self.laps
            .iter()
            .map(|(step, took)| format!("{step} {:.1} ms", took.as_secs_f64() * 1000.0))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
