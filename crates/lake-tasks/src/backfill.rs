//! `cargo xtask pipeline --from D1 --to D2`: a backfill, one pipeline run
//! per date from D1 to D2 (both included), oldest first, each recorded in
//! its own run manifest under `_runs/` as `pipeline --date D` would.
//!
//! Oldest first because a run reads, for a table it does not write, the
//! run date or the latest date before it: the later dates then see the
//! earlier ones. A date that fails does not stop the backfill (each run
//! replaces only its own date, so the others stand); the failed dates are
//! named at the end and make the command fail, so rerunning just those is
//! `pipeline --date D` for each.

use std::fmt::Write;
use std::time::Instant;

use anyhow::{Result, bail};
use chrono::NaiveDate;
use lake_core::error::{one_line, say};

use crate::pipeline::{PipelineOptions, run_pipeline};

/// The dates of a backfill, `from` to `to`, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    from: NaiveDate,
    to: NaiveDate,
}

impl DateRange {
    /// The range from `from` to `to`; refused when `from` is after `to`.
    pub fn new(from: NaiveDate, to: NaiveDate) -> Result<DateRange> {
        if from > to {
            bail!(
                "--from {from} is after --to {to}: a backfill runs from the older date to the newer"
            );
        }
        Ok(DateRange { from, to })
    }

    /// Every date of the range, oldest first.
    pub fn dates(&self) -> Vec<NaiveDate> {
        self.from
            .iter_days()
            .take_while(|date| *date <= self.to)
            .collect()
    }
}

/// How one date of a backfill went.
#[derive(Debug, Clone, PartialEq)]
pub struct DateOutcome {
    pub date: NaiveDate,
    /// The run's id when it succeeded, else its error as one line.
    pub result: Result<String, String>,
    pub seconds: f64,
}

/// What a backfill did, date by date.
#[derive(Debug, Clone, PartialEq)]
pub struct Backfill {
    pub range: DateRange,
    pub dates: Vec<DateOutcome>,
}

impl Backfill {
    /// The dates that failed, oldest first.
    pub fn failed(&self) -> Vec<NaiveDate> {
        self.dates
            .iter()
            .filter(|d| d.result.is_err())
            .map(|d| d.date)
            .collect()
    }

    /// One line per date: its outcome and run (or error).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\nBackfill {} to {}: {} dates, {} failed",
            self.range.from,
            self.range.to,
            self.dates.len(),
            self.failed().len()
        );
        for date in &self.dates {
            let _ = match &date.result {
                Ok(run_id) => writeln!(
                    out,
                    "  {}  ok      run {run_id} ({:.1} s)",
                    date.date, date.seconds
                ),
                Err(error) => writeln!(out, "  {}  FAILED  {error}", date.date),
            };
        }
        out
    }

    /// An error naming the failed dates, when some failed.
    pub fn into_result(self) -> Result<Backfill> {
        let failed = self.failed();
        if failed.is_empty() {
            return Ok(self);
        }
        let names: Vec<String> = failed.iter().map(ToString::to_string).collect();
        bail!(
            "backfill: {} of {} dates failed: {} (rerun each with pipeline --date)",
            failed.len(),
            self.dates.len(),
            names.join(", ")
        )
    }
}

/// Runs the pipeline of `options` once per date of `range`, oldest first,
/// saying on stderr which date of how many starts and how each ended.
/// `options.lake.date` is set to each date in turn.
pub fn backfill(options: &mut PipelineOptions, range: DateRange) -> Backfill {
    let dates = range.dates();
    let mut outcomes = Vec::with_capacity(dates.len());
    for (i, date) in dates.iter().enumerate() {
        say(format_args!(
            "backfill: date {} of {}: {date}",
            i + 1,
            dates.len()
        ));
        options.lake.date = Some(*date);
        let started = Instant::now();
        let result = run_pipeline(options)
            .map(|run| run.manifest.run_id)
            .map_err(|err| one_line(&err));
        let seconds = started.elapsed().as_secs_f64();
        match &result {
            Ok(run_id) => say(format_args!(
                "backfill: {date} ok: run {run_id} ({seconds:.1} s)"
            )),
            Err(error) => say(format_args!("backfill: {date} FAILED: {error}")),
        }
        outcomes.push(DateOutcome {
            date: *date,
            result,
            seconds,
        });
    }
    Backfill {
        range,
        dates: outcomes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_range_holds_every_date_oldest_first() {
        let range = DateRange::new(day("2026-02-27"), day("2026-03-02")).unwrap();
        assert_eq!(
            range.dates(),
            ["2026-02-27", "2026-02-28", "2026-03-01", "2026-03-02"].map(day)
        );
        let one = DateRange::new(day("2026-11-26"), day("2026-11-26")).unwrap();
        assert_eq!(one.dates(), [day("2026-11-26")]);
    }

    #[test]
    fn a_range_ending_before_it_starts_is_refused() {
        let err = DateRange::new(day("2026-11-26"), day("2026-11-24")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--from 2026-11-26 is after --to 2026-11-24: a backfill runs from the older date to the newer"
        );
    }

    #[test]
    fn failed_dates_are_named_and_fail_the_backfill() {
        let backfill = Backfill {
            range: DateRange::new(day("2026-11-24"), day("2026-11-26")).unwrap(),
            dates: vec![
                DateOutcome {
                    date: day("2026-11-24"),
                    result: Ok("run-a".into()),
                    seconds: 1.0,
                },
                DateOutcome {
                    date: day("2026-11-25"),
                    result: Err("boom".into()),
                    seconds: 1.0,
                },
                DateOutcome {
                    date: day("2026-11-26"),
                    result: Err("bang".into()),
                    seconds: 1.0,
                },
            ],
        };
        let text = backfill.render();
        assert!(
            text.contains("  2026-11-24  ok      run run-a (1.0 s)"),
            "{text}"
        );
        assert!(text.contains("  2026-11-25  FAILED  boom"), "{text}");
        assert_eq!(
            backfill.into_result().unwrap_err().to_string(),
            "backfill: 2 of 3 dates failed: 2026-11-25, 2026-11-26 (rerun each with pipeline --date)"
        );
    }
}
