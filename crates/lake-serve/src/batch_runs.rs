//! The complete batch runs, one per run date: which figures the gold API and
//! the dashboard show.
//!
//! A complete batch run is a batch run (not a stream run, which writes only
//! the live views) that succeeded and wrote gold
//! ([`RunManifest::is_complete_batch`]). For each date the newest such run counts (the last to
//! finish: its versions are the ones a re-run left). By default the
//! dates' newest is served, so a backfill of an older date never turns the
//! dashboard back in time; any other date is asked for by `?date=`.
//!
//! Manifests never change once written, so each is read once: a refresh
//! lists `_runs/` and reads only the manifests it has not seen, among the
//! newest [`RUNS_SEARCHED`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::NaiveDate;
use lake_core::run::RunManifest;
use lake_table::Lake;

/// Manifests searched, newest first: about a year of daily runs with a
/// restart of the stream every day.
pub const RUNS_SEARCHED: usize = 1000;

/// The newest complete batch run of each date.
#[derive(Debug, Default)]
pub struct ByDate(BTreeMap<NaiveDate, Arc<RunManifest>>);

impl ByDate {
    fn from_runs<'a>(runs: impl Iterator<Item = &'a Arc<RunManifest>>) -> ByDate {
        let mut by_date: BTreeMap<NaiveDate, Arc<RunManifest>> = BTreeMap::new();
        for run in runs {
            let newer = by_date.get(&run.date).is_none_or(|kept| {
                (run.finished_at, &run.run_id) > (kept.finished_at, &kept.run_id)
            });
            if newer {
                by_date.insert(run.date, run.clone());
            }
        }
        ByDate(by_date)
    }

    /// The run served by default: the newest date's.
    pub fn newest(&self) -> Option<&Arc<RunManifest>> {
        self.0.values().next_back()
    }

    /// The run of `date`, if it has a complete one.
    pub fn of(&self, date: NaiveDate) -> Option<&Arc<RunManifest>> {
        self.0.get(&date)
    }

    /// The runs, newest date first.
    pub fn newest_first(&self) -> impl Iterator<Item = &Arc<RunManifest>> {
        self.0.values().rev()
    }
}

/// The complete batch runs of a lake, refreshed at most once per `ttl`.
pub struct BatchRuns {
    lake: Lake,
    ttl: Duration,
    /// Every manifest read so far, by key: the run when it is a complete
    /// batch run, else `None` (so it is not read again).
    read: Mutex<HashMap<String, Option<Arc<RunManifest>>>>,
    current: Mutex<Option<(Instant, Arc<ByDate>)>>,
}

impl BatchRuns {
    pub fn new(lake: Lake, ttl: Duration) -> BatchRuns {
        BatchRuns {
            lake,
            ttl,
            read: Mutex::new(HashMap::new()),
            current: Mutex::new(None),
        }
    }

    /// The newest complete batch run of each date, as of at most `ttl` ago.
    /// Blocks on lake I/O; no lock is held during it.
    pub fn by_date(&self) -> Result<Arc<ByDate>> {
        if let Some((at, by_date)) = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            && at.elapsed() < self.ttl
        {
            return Ok(by_date.clone());
        }
        let keys = RunManifest::keys_newest_first(&self.lake, RUNS_SEARCHED)?;
        let unread: Vec<String> = {
            let read = self.read.lock().unwrap_or_else(|p| p.into_inner());
            keys.iter()
                .filter(|key| !read.contains_key(*key))
                .cloned()
                .collect()
        };
        let mut fresh = Vec::with_capacity(unread.len());
        for key in unread {
            let run = RunManifest::read(&self.lake, &key)?;
            fresh.push((key, run.is_complete_batch().then(|| Arc::new(run))));
        }
        let by_date = {
            let mut read = self.read.lock().unwrap_or_else(|p| p.into_inner());
            read.extend(fresh);
            // Only the manifests still searched are kept.
            let searched: std::collections::HashSet<&String> = keys.iter().collect();
            read.retain(|key, _| searched.contains(key));
            Arc::new(ByDate::from_runs(read.values().flatten()))
        };
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((Instant::now(), by_date.clone()));
        Ok(by_date)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use lake_core::run::{Outcome, RunKind, StepRecord, TableVersion};

    fn day(d: &str) -> NaiveDate {
        d.parse().unwrap()
    }

    const GOLD: &str = "gold/kpi_summary";

    fn run(id: &str, date: &str, finished: &str, outcome: Outcome, writes: &[&str]) -> RunManifest {
        let finished_at: DateTime<Utc> = finished.parse().unwrap();
        RunManifest {
            run_id: id.into(),
            kind: RunKind::Batch,
            project_version: "test".into(),
            date: day(date),
            source: "generator".into(),
            started_at: finished_at,
            finished_at,
            outcome,
            steps: vec![StepRecord {
                name: "gold".into(),
                sources: vec![],
                reads: vec![],
                writes: writes
                    .iter()
                    .map(|table| TableVersion {
                        table: table.to_string(),
                        version: 1,
                        date: day(date),
                    })
                    .collect(),
                rows_in: 0,
                rows_out: 0,
                rejects: Default::default(),
                duration_ms: 0,
                attempts: 1,
                outcome,
                error: None,
            }],
        }
    }

    #[test]
    fn the_newest_date_is_served_whatever_order_the_runs_ran_in() {
        let runs: Vec<Arc<RunManifest>> = [
            // The daily run, then a backfill of an older date after it.
            run(
                "a",
                "2026-12-07",
                "2026-12-07T10:00:00Z",
                Outcome::Succeeded,
                &[GOLD],
            ),
            run(
                "b",
                "2026-11-26",
                "2026-12-07T11:00:00Z",
                Outcome::Succeeded,
                &[GOLD],
            ),
            // A re-run of 12-07 that failed, and a stream run after all
            // (which writes gold's live views).
            run(
                "c",
                "2026-12-07",
                "2026-12-07T12:00:00Z",
                Outcome::Failed,
                &[GOLD],
            ),
            RunManifest {
                kind: RunKind::Stream,
                ..run(
                    "d",
                    "2026-12-08",
                    "2026-12-08T00:00:00Z",
                    Outcome::Succeeded,
                    &["gold/live_sales_by_country"],
                )
            },
        ]
        .into_iter()
        .filter(RunManifest::is_complete_batch)
        .map(Arc::new)
        .collect();
        let by_date = ByDate::from_runs(runs.iter());
        assert_eq!(by_date.newest().unwrap().run_id, "a");
        assert_eq!(by_date.of(day("2026-11-26")).unwrap().run_id, "b");
        assert!(by_date.of(day("2026-12-08")).is_none());
        let dates: Vec<NaiveDate> = by_date.newest_first().map(|r| r.date).collect();
        assert_eq!(dates, vec![day("2026-12-07"), day("2026-11-26")]);
    }

    #[test]
    fn of_two_complete_runs_of_a_date_the_last_to_finish_counts() {
        let runs = [
            run(
                "b",
                "2026-12-07",
                "2026-12-07T09:00:00Z",
                Outcome::Succeeded,
                &[GOLD],
            ),
            run(
                "a",
                "2026-12-07",
                "2026-12-07T10:00:00Z",
                Outcome::Succeeded,
                &[GOLD],
            ),
        ]
        .map(Arc::new);
        assert_eq!(ByDate::from_runs(runs.iter()).newest().unwrap().run_id, "a");
        assert_eq!(
            ByDate::from_runs(runs.iter().rev())
                .newest()
                .unwrap()
                .run_id,
            "a"
        );
    }
}
