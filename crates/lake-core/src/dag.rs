//! A small DAG runner for pipeline steps.
//!
//! A step starts when every step it depends on has succeeded; independent
//! steps run in parallel (bounded by `workers`). A step failing with a
//! transient error is retried with backoff a bounded number of times; a
//! step failing for good stops the run: steps depending on it are skipped
//! and the runner reports the first failure. Every run writes a run manifest
//! under `_runs/`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use chrono::{NaiveDate, Utc};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use lake_table::Lake;

use crate::error::{RunFailed, backtrace_of, is_transient, one_line, panic_message, say};
use crate::run::{Outcome, PROJECT_VERSION, RunKind, RunManifest, StepRecord, TableVersion};

/// What a step reports when it succeeds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepOutput {
    /// Sources read outside the lake (a database table, a topic).
    pub sources: Vec<String>,
    /// Table versions read.
    pub reads: Vec<TableVersion>,
    /// Table versions committed.
    pub writes: Vec<TableVersion>,
    pub rows_in: u64,
    pub rows_out: u64,
    pub rejects: BTreeMap<String, u64>,
}

/// Handed to a running step to report progress.
pub struct StepContext {
    bar: ProgressBar,
    pub attempt: u32,
}

impl StepContext {
    /// Reports rows processed so far (shown live on long steps).
    pub fn rows(&self, rows: u64) {
        self.bar.set_position(rows);
    }

    /// Sets a short status message.
    pub fn message(&self, message: impl Into<String>) {
        self.bar.set_message(message.into());
    }
}

type StepFn = Box<dyn Fn(&StepContext) -> Result<StepOutput> + Send + Sync>;

/// One step of the DAG.
pub struct Step {
    pub name: String,
    pub depends_on: Vec<String>,
    run: StepFn,
}

impl Step {
    pub fn new(
        name: impl Into<String>,
        depends_on: Vec<String>,
        run: impl Fn(&StepContext) -> Result<StepOutput> + Send + Sync + 'static,
    ) -> Step {
        Step {
            name: name.into(),
            depends_on,
            run: Box::new(run),
        }
    }
}

/// How the runner behaves.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub workers: usize,
    /// Attempts per step when failures are transient (1 = no retry).
    pub max_attempts: u32,
    pub first_backoff: Duration,
    /// Show live progress bars (when stderr is a terminal).
    pub progress: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            workers: 2,
            max_attempts: 3,
            first_backoff: Duration::from_millis(500),
            progress: true,
        }
    }
}

/// The run's outcome: its manifest, saved under `_runs/`.
pub struct RunResult {
    pub manifest: RunManifest,
    /// The first failure, already as one line, when the run failed.
    pub failure: Option<String>,
}

impl RunResult {
    /// Turns a failed run into an error naming the failed step.
    pub fn into_result(self) -> Result<RunManifest> {
        match self.failure {
            Some(failure) => Err(RunFailed(failure).into()),
            None => Ok(self.manifest),
        }
    }
}

/// Where the runner's progress lines go: stderr through [`say`], or a test's
/// buffer.
type Printer<'a> = &'a (dyn Fn(std::fmt::Arguments<'_>) + Sync);

/// Runs `steps` as a DAG and records the run in `_runs/{run_id}.json`.
pub fn run_steps(
    lake: &Lake,
    run_id: &str,
    date: NaiveDate,
    source: &str,
    steps: Vec<Step>,
    options: &RunOptions,
) -> Result<RunResult> {
    run_steps_printing(lake, run_id, date, source, steps, options, &say)
}

/// [`run_steps`], with its progress lines (`ok`, `retry`, `FAILED`,
/// `skipped`) written by `say`.
fn run_steps_printing(
    lake: &Lake,
    run_id: &str,
    date: NaiveDate,
    source: &str,
    steps: Vec<Step>,
    options: &RunOptions,
    say: Printer<'_>,
) -> Result<RunResult> {
    validate(&steps)?;
    let started_at = Utc::now();
    let multi = MultiProgress::with_draw_target(if options.progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let records: Mutex<HashMap<String, StepRecord>> = Mutex::new(HashMap::new());
    let mut done: HashSet<String> = HashSet::new();
    let mut failed: HashSet<String> = HashSet::new();
    let mut started: HashSet<String> = HashSet::new();
    let mut failure: Option<String> = None;
    // The step that failed for good behind each failed or skipped step, so
    // that a skipped step names the failure it waited on, not the skipped
    // step between them.
    let mut failed_behind: HashMap<String, String> = HashMap::new();
    let mut first_failed: Option<String> = None;
    let by_name: HashMap<&str, &Step> = steps.iter().map(|s| (s.name.as_str(), s)).collect();

    std::thread::scope(|scope| {
        let (finished_tx, finished_rx) = mpsc::channel::<(String, bool)>();
        let mut running = 0usize;
        loop {
            // Skip steps whose inputs failed; start ready ones while workers are free.
            for step in &steps {
                if started.contains(&step.name) {
                    continue;
                }
                if let Some(input) = step.depends_on.iter().find(|d| failed.contains(*d)) {
                    let cause = failed_behind
                        .get(input)
                        .cloned()
                        .unwrap_or_else(|| input.clone());
                    say(format_args!(
                        "  skipped {} (waited on {cause}, which failed)",
                        step.name
                    ));
                    started.insert(step.name.clone());
                    failed.insert(step.name.clone());
                    failed_behind.insert(step.name.clone(), cause);
                    lock(&records).insert(step.name.clone(), skipped_record(step));
                    continue;
                }
                let ready = step.depends_on.iter().all(|d| done.contains(d));
                if ready && running < options.workers.max(1) && failure.is_none() {
                    started.insert(step.name.clone());
                    running += 1;
                    let tx = finished_tx.clone();
                    let bar = multi.add(step_bar(&step.name));
                    let step_ref = by_name[step.name.as_str()];
                    let records = &records;
                    scope.spawn(move || {
                        // The scheduler waits for this report: it is sent
                        // when the guard drops, even if what follows panics.
                        let mut report = Report {
                            tx,
                            name: step_ref.name.clone(),
                            ok: false,
                        };
                        // A panicking step must fail the run, not leave the
                        // scheduler waiting for it forever.
                        let record = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            run_one(step_ref, bar, options, say)
                        }))
                        .unwrap_or_else(|panic| panicked_record(step_ref, panic.as_ref(), say));
                        report.ok = record.outcome == Outcome::Succeeded;
                        lock(records).insert(step_ref.name.clone(), record);
                    });
                }
            }
            if running == 0 {
                break;
            }
            let Ok((name, ok)) = finished_rx.recv() else {
                break;
            };
            running -= 1;
            if ok {
                done.insert(name);
            } else {
                if failure.is_none() {
                    let record = lock(&records).get(&name).cloned();
                    // A worker that died before recording (it cannot
                    // happen short of a bug in the runner) still fails.
                    let reason = record
                        .and_then(|r| r.error)
                        .unwrap_or_else(|| "the step's worker stopped without a result".into());
                    failure = Some(format!("step {name} failed: {reason}"));
                    first_failed = Some(name.clone());
                }
                failed_behind.insert(name.clone(), name.clone());
                failed.insert(name);
            }
        }
    });
    // Steps never started (a failure stopped the run) are recorded as skipped.
    let mut records = records
        .into_inner()
        .map_err(|_| anyhow!("step records poisoned"))?;
    let ordered: Vec<StepRecord> = steps
        .iter()
        .map(|s| {
            records.remove(&s.name).unwrap_or_else(|| {
                // Independent of the failed step, it waited for the run
                // to go on; the console says so as the manifest does.
                if let Some(stopped_at) = &first_failed {
                    say(format_args!(
                        "  skipped {} (the run stopped at {stopped_at}, which failed)",
                        s.name
                    ));
                }
                skipped_record(s)
            })
        })
        .collect();
    let outcome = if failure.is_some() {
        Outcome::Failed
    } else {
        Outcome::Succeeded
    };
    let manifest = RunManifest {
        run_id: run_id.to_string(),
        kind: RunKind::Batch,
        project_version: PROJECT_VERSION.to_string(),
        date,
        source: source.to_string(),
        started_at,
        finished_at: Utc::now(),
        outcome,
        steps: ordered,
    };
    if let Err(err) = manifest.save(lake) {
        // A failed step is what the run reports; that its manifest could
        // not be written either is a warning beside it, not a replacement.
        if failure.is_none() {
            return Err(err.context(format!(
                "every step succeeded, but the run manifest _runs/{run_id}.json was not saved"
            )));
        }
        say(format_args!(
            "warning: the run manifest _runs/{run_id}.json was not saved: {}",
            one_line(&err)
        ));
    }
    Ok(RunResult { manifest, failure })
}

/// A worker's report to the scheduler, sent when dropped: on return and on
/// unwinding alike, so the scheduler never waits for a worker that died.
struct Report {
    tx: mpsc::Sender<(String, bool)>,
    name: String,
    ok: bool,
}

impl Drop for Report {
    fn drop(&mut self) {
        let _ = self.tx.send((std::mem::take(&mut self.name), self.ok));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn validate(steps: &[Step]) -> Result<()> {
    let names: HashSet<&str> = steps.iter().map(|s| s.name.as_str()).collect();
    if names.len() != steps.len() {
        bail!("two pipeline steps share a name");
    }
    for step in steps {
        for dep in &step.depends_on {
            if !names.contains(dep.as_str()) {
                bail!("step {} depends on unknown step {dep}", step.name);
            }
        }
    }
    // Kahn's algorithm: every step must become ready eventually.
    let mut remaining: Vec<&Step> = steps.iter().collect();
    let mut resolved: HashSet<&str> = HashSet::new();
    while !remaining.is_empty() {
        let before = remaining.len();
        remaining.retain(|s| {
            if s.depends_on.iter().all(|d| resolved.contains(d.as_str())) {
                resolved.insert(s.name.as_str());
                false
            } else {
                true
            }
        });
        if remaining.len() == before {
            bail!("pipeline steps form a cycle");
        }
    }
    Ok(())
}

fn step_bar(name: &str) -> ProgressBar {
    let bar = ProgressBar::no_length();
    let style = ProgressStyle::with_template(
        "{spinner} {prefix:<28} {human_pos:>12} rows  {elapsed:>4}  {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_spinner());
    bar.set_style(style);
    bar.set_prefix(name.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn run_one(step: &Step, bar: ProgressBar, options: &RunOptions, say: Printer<'_>) -> StepRecord {
    let started = Instant::now();
    let mut attempt = 1;
    loop {
        let context = StepContext {
            bar: bar.clone(),
            attempt,
        };
        let result = (step.run)(&context);
        match result {
            Ok(output) => {
                bar.finish_and_clear();
                let record = StepRecord {
                    name: step.name.clone(),
                    sources: output.sources,
                    reads: output.reads,
                    writes: output.writes,
                    rows_in: output.rows_in,
                    rows_out: output.rows_out,
                    rejects: output.rejects,
                    duration_ms: started.elapsed().as_millis() as u64,
                    attempts: attempt,
                    outcome: Outcome::Succeeded,
                    error: None,
                };
                say(format_args!(
                    "  ok  {:<30} {:>12} rows in {:>12} rows out  {:>7.2} s",
                    step.name,
                    group_digits(record.rows_in),
                    group_digits(record.rows_out),
                    started.elapsed().as_secs_f64()
                ));
                return record;
            }
            Err(err) if is_transient(&err) && attempt < options.max_attempts => {
                let wait = options.first_backoff * 2u32.pow(attempt - 1);
                say(format_args!(
                    "  retry {} (attempt {attempt} of {}) in {:.1} s: {}",
                    step.name,
                    options.max_attempts,
                    wait.as_secs_f64(),
                    one_line(&err)
                ));
                std::thread::sleep(wait);
                attempt += 1;
            }
            Err(err) => {
                bar.finish_and_clear();
                let message = one_line(&err);
                say(format_args!("  FAILED {}: {message}", step.name));
                // A backtrace, when RUST_LIB_BACKTRACE asks for one, goes
                // on lines of its own after the one-line error, never into
                // it or the manifest.
                if let Some(backtrace) = backtrace_of(&err) {
                    say(format_args!("  backtrace of {}:\n{backtrace}", step.name));
                }
                return StepRecord {
                    name: step.name.clone(),
                    sources: Vec::new(),
                    reads: Vec::new(),
                    writes: Vec::new(),
                    rows_in: 0,
                    rows_out: 0,
                    rejects: BTreeMap::new(),
                    duration_ms: started.elapsed().as_millis() as u64,
                    attempts: attempt,
                    outcome: Outcome::Failed,
                    error: Some(message),
                };
            }
        }
    }
}

fn panicked_record(
    step: &Step,
    panic: &(dyn std::any::Any + Send),
    say: Printer<'_>,
) -> StepRecord {
    let message = panic_message(panic);
    let error = format!("panicked: {}", message.replace('\n', " "));
    say(format_args!("  FAILED {}: {error}", step.name));
    StepRecord {
        outcome: Outcome::Failed,
        error: Some(error),
        attempts: 1,
        ..skipped_record(step)
    }
}

fn skipped_record(step: &Step) -> StepRecord {
    StepRecord {
        name: step.name.clone(),
        sources: Vec::new(),
        reads: Vec::new(),
        writes: Vec::new(),
        rows_in: 0,
        rows_out: 0,
        rejects: BTreeMap::new(),
        duration_ms: 0,
        attempts: 0,
        outcome: Outcome::Skipped,
        error: None,
    }
}

/// `1234567` -> `1,234,567`.
pub fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::error::Transient;

    fn quiet() -> RunOptions {
        RunOptions {
            workers: 2,
            max_attempts: 3,
            first_backoff: Duration::from_millis(1),
            progress: false,
        }
    }

    fn lake() -> (tempfile::TempDir, Lake) {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        (dir, lake)
    }

    fn date() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 1, 2).unwrap()
    }

    #[test]
    fn steps_run_after_their_inputs_and_transient_failures_are_retried() {
        let (_dir, lake) = lake();
        let order = Arc::new(Mutex::new(Vec::new()));
        let flaky_calls = Arc::new(AtomicU32::new(0));
        let o1 = order.clone();
        let o2 = order.clone();
        let calls = flaky_calls.clone();
        let steps = vec![
            Step::new("b", vec!["a".into()], move |_| {
                o2.lock().unwrap().push("b");
                Ok(StepOutput::default())
            }),
            Step::new("a", vec![], move |_| {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err(anyhow::Error::new(Transient("flaky".into())));
                }
                o1.lock().unwrap().push("a");
                Ok(StepOutput {
                    rows_out: 7,
                    ..Default::default()
                })
            }),
        ];
        let result = run_steps(&lake, "run-1", date(), "test", steps, &quiet()).unwrap();
        assert!(result.failure.is_none());
        assert_eq!(*order.lock().unwrap(), vec!["a", "b"]);
        let a = &result.manifest.steps[1];
        assert_eq!(
            (a.attempts, a.rows_out, a.outcome),
            (2, 7, Outcome::Succeeded)
        );
        let saved = RunManifest::recent(&lake, 10).unwrap();
        assert_eq!(saved, vec![result.manifest]);
    }

    #[test]
    fn permanent_failure_stops_dependants_and_names_the_step() {
        let (_dir, lake) = lake();
        let steps = vec![
            Step::new("a", vec![], |_| bail!("table public.orders does not exist")),
            Step::new("b", vec!["a".into()], |_| Ok(StepOutput::default())),
        ];
        let result = run_steps(&lake, "run-2", date(), "test", steps, &quiet()).unwrap();
        assert_eq!(
            result.failure.as_deref(),
            Some("step a failed: table public.orders does not exist")
        );
        let outcomes: Vec<_> = result
            .manifest
            .steps
            .iter()
            .map(|s| (s.attempts, s.outcome))
            .collect();
        assert_eq!(outcomes, vec![(1, Outcome::Failed), (0, Outcome::Skipped)]);
        assert_eq!(result.manifest.outcome, Outcome::Failed);
    }

    #[test]
    fn skipped_steps_are_printed_with_the_failure_they_waited_on() {
        let (_dir, lake) = lake();
        // gold/rfm fails; rfm_segments waits on it, report on rfm_segments
        // (behind a skipped step), and silver/late on nothing that failed
        // nor does gold/slow: with one worker, neither starts once the run
        // stopped.
        let steps = vec![
            Step::new("gold/rfm", vec![], |_| bail!("out of memory")),
            Step::new("gold/rfm_segments", vec!["gold/rfm".into()], |_| {
                Ok(StepOutput::default())
            }),
            Step::new("gold/report", vec!["gold/rfm_segments".into()], |_| {
                Ok(StepOutput::default())
            }),
            Step::new("gold/late", vec!["gold/slow".into()], |_| {
                Ok(StepOutput::default())
            }),
            Step::new("gold/slow", vec![], |_| Ok(StepOutput::default())),
        ];
        let printed = Mutex::new(Vec::new());
        let print = |line: std::fmt::Arguments<'_>| lock(&printed).push(line.to_string());
        let options = RunOptions {
            workers: 1,
            ..quiet()
        };
        let result =
            run_steps_printing(&lake, "run-7", date(), "test", steps, &options, &print).unwrap();
        let printed = printed.into_inner().unwrap();
        let skipped: Vec<&str> = printed
            .iter()
            .map(String::as_str)
            .filter(|l| l.starts_with("  skipped"))
            .collect();
        assert_eq!(
            skipped,
            vec![
                "  skipped gold/rfm_segments (waited on gold/rfm, which failed)",
                "  skipped gold/report (waited on gold/rfm, which failed)",
                "  skipped gold/late (the run stopped at gold/rfm, which failed)",
                "  skipped gold/slow (the run stopped at gold/rfm, which failed)",
            ],
            "{printed:#?}"
        );
        assert!(printed.contains(&"  FAILED gold/rfm: out of memory".to_string()));
        // One line for each step the manifest records as skipped.
        let in_manifest = result
            .manifest
            .steps
            .iter()
            .filter(|s| s.outcome == Outcome::Skipped)
            .count();
        assert_eq!(in_manifest, skipped.len());
    }

    #[test]
    fn a_manifest_that_cannot_be_saved_does_not_hide_the_failed_step() {
        let (dir, lake) = lake();
        // `_runs` is a file: no manifest can be written under it.
        std::fs::write(dir.path().join("_runs"), b"not a folder").unwrap();
        let failing = vec![Step::new("a", vec![], |_| bail!("the source is gone"))];
        let result = run_steps(&lake, "run-5", date(), "test", failing, &quiet()).unwrap();
        let err = result.into_result().unwrap_err();
        assert_eq!(one_line(&err), "step a failed: the source is gone");
        // A run whose steps all succeeded fails on its missing manifest.
        let fine = vec![Step::new("a", vec![], |_| Ok(StepOutput::default()))];
        let err = match run_steps(&lake, "run-6", date(), "test", fine, &quiet()) {
            Ok(_) => panic!("a run without its manifest succeeded"),
            Err(err) => one_line(&err),
        };
        assert!(
            err.starts_with("every step succeeded, but the run manifest _runs/run-6.json"),
            "{err}"
        );
    }

    #[test]
    fn a_panicking_step_fails_the_run() {
        let (_dir, lake) = lake();
        let steps = vec![
            Step::new("a", vec![], |_| panic!("index out of bounds")),
            Step::new("b", vec!["a".into()], |_| Ok(StepOutput::default())),
        ];
        let result = run_steps(&lake, "run-3", date(), "test", steps, &quiet()).unwrap();
        assert_eq!(
            result.failure.as_deref(),
            Some("step a failed: panicked: index out of bounds")
        );
        assert_eq!(result.manifest.steps[1].outcome, Outcome::Skipped);
    }

    #[test]
    fn cycles_and_unknown_dependencies_are_refused() {
        let (_dir, lake) = lake();
        let refusal = |steps: Vec<Step>| match run_steps(&lake, "r", date(), "t", steps, &quiet()) {
            Ok(_) => panic!("an invalid DAG was run"),
            Err(err) => err.to_string(),
        };
        // The cycle check (Kahn's algorithm) reports that there is a cycle,
        // without naming its steps.
        let cyclic = vec![
            Step::new("a", vec!["b".into()], |_| Ok(StepOutput::default())),
            Step::new("b", vec!["a".into()], |_| Ok(StepOutput::default())),
        ];
        assert_eq!(refusal(cyclic), "pipeline steps form a cycle");
        // A cycle behind a valid step is still found.
        let cycle_downstream = vec![
            Step::new("root", vec![], |_| Ok(StepOutput::default())),
            Step::new("x", vec!["root".into(), "y".into()], |_| {
                Ok(StepOutput::default())
            }),
            Step::new("y", vec!["x".into()], |_| Ok(StepOutput::default())),
        ];
        assert_eq!(refusal(cycle_downstream), "pipeline steps form a cycle");
        // The unknown dependency and the step naming it are both reported.
        let unknown = vec![
            Step::new("a", vec![], |_| Ok(StepOutput::default())),
            Step::new("b", vec!["a".into(), "zz".into()], |_| {
                Ok(StepOutput::default())
            }),
        ];
        assert_eq!(refusal(unknown), "step b depends on unknown step zz");
        let duplicate = vec![
            Step::new("a", vec![], |_| Ok(StepOutput::default())),
            Step::new("a", vec![], |_| Ok(StepOutput::default())),
        ];
        assert_eq!(refusal(duplicate), "two pipeline steps share a name");
        // Refused before anything ran: no run manifest was written.
        assert_eq!(RunManifest::recent(&lake, 10).unwrap(), vec![]);
    }

    #[test]
    fn digits_are_grouped() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1000), "1,000");
        assert_eq!(group_digits(2_155_000), "2,155,000");
    }
}
