//! Running a checked query so that it can be stopped, with its memory
//! bounded.
//!
//! # Stopping
//!
//! Polars 0.55.2 has no handle that stops a streaming query from outside.
//! `LazyFrame::collect_concurrently` and `InProcessQuery::cancel` set the
//! in-memory engine's stop flag, which its executors read only when an
//! operator starts: a cross join, once started, runs to its end (the 7 GB of
//! the integrity issue, item 8). The streaming engine reads no flag but the
//! process-wide SIGINT abort (`polars_error::abort`), which would stop every
//! query in the process, the stream's included.
//!
//! So the plan carries its own stop points: an identity map
//! ([`LazyFrame::map`], streamable, with predicate, projection and slice
//! pushdown allowed through it, so the optimizer plans as it would without
//! it) over every table the query reads and over the output of every join.
//! The streaming engine runs it on every morsel (about 100,000 rows) that
//! passes; once [`Stop::stop`] is called, the next morsel fails the query.
//! A failing node ends a streaming query: the engine destroys its other
//! tasks before `collect` returns (`polars_async::task_scope`), so when
//! [`collect`] returns, the query has stopped and its frames are freed.
//!
//! # Memory
//!
//! - The result: the plan is limited to `max_rows + 1` rows (the extra row
//!   says the limit was passed); the streaming engine stops reading its
//!   sources once the limit is reached.
//! - Working memory: the streaming engine passes morsels between operators,
//!   and a cross join keeps only its build side (a table the query reads,
//!   already in memory) and emits its output morsel by morsel, so
//!   `SELECT COUNT(*)` over the cross join of two big tables runs in the
//!   memory of its inputs. Operators that hold what they receive (a group
//!   by with many groups, a join's build side fed by a cross join, a sort
//!   or a distinct without LIMIT) grow with their input; for those the
//!   caller watches the process's resident memory ([`resident_bytes`])
//!   against the growth since [`Stop::started`] and calls [`Stop::stop`]
//!   past its budget.
//!
//! The bound that holds: the resident memory at the start of the query,
//! plus the budget, plus what the plan allocates between the watch's last
//! look and the next stop point (a few morsels through the operators
//! between two stop points, or one operator Polars runs in memory without
//! stop points inside, such as the final pass of a sort without LIMIT over
//! what it gathered under the budget). A single expression that allocates
//! without bound on one morsel (e.g. `LPAD(s, 1000000000)`) is not caught
//! between stop points.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use polars::prelude::*;

/// Why a query was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// It ran past its time limit.
    TimeLimit,
    /// The process's memory grew past the query's budget.
    MemoryLimit,
    /// Nobody waits for the answer any more (the client went away).
    ClientGone,
}

impl StopReason {
    const ALL: [StopReason; 3] = [
        StopReason::TimeLimit,
        StopReason::MemoryLimit,
        StopReason::ClientGone,
    ];

    fn code(self) -> u8 {
        match self {
            StopReason::TimeLimit => 1,
            StopReason::MemoryLimit => 2,
            StopReason::ClientGone => 3,
        }
    }

    /// As a metric label.
    pub fn label(self) -> &'static str {
        match self {
            StopReason::TimeLimit => "time_limit",
            StopReason::MemoryLimit => "memory_limit",
            StopReason::ClientGone => "client_gone",
        }
    }
}

/// The stop signal of one query, shared by the side that waits for it and
/// the engine's threads that run it.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    inner: Arc<StopState>,
}

#[derive(Debug, Default)]
struct StopState {
    /// 0 while the query may run, else a [`StopReason`] code.
    reason: AtomicU8,
    /// Resident bytes when the engine started, 0 before.
    started_at_bytes: AtomicU64,
}

impl Stop {
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Asks the query to stop; `false` when it was already asked (the first
    /// reason stays).
    pub fn stop(&self, reason: StopReason) -> bool {
        self.inner
            .reason
            .compare_exchange(0, reason.code(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    pub fn reason(&self) -> Option<StopReason> {
        let code = self.inner.reason.load(Ordering::Acquire);
        StopReason::ALL.into_iter().find(|r| r.code() == code)
    }

    /// Records the resident memory as the engine starts: the growth the
    /// budget is counted from (the tables it reads are loaded by then, and
    /// their cache has a bound of its own).
    pub fn started(&self, resident: u64) {
        self.inner
            .started_at_bytes
            .store(resident.max(1), Ordering::Release);
    }

    /// The resident bytes when the engine started, if it has.
    pub fn started_at(&self) -> Option<u64> {
        match self.inner.started_at_bytes.load(Ordering::Acquire) {
            0 => None,
            bytes => Some(bytes),
        }
    }

    fn check(&self) -> PolarsResult<()> {
        match self.reason() {
            None => Ok(()),
            Some(reason) => Err(polars_err!(
                ComputeError: "the query was stopped ({})", reason.label()
            )),
        }
    }
}

/// Optimizations the stop point lets through: it returns its input, so
/// filters, projections and slices may move across it, and it runs morsel
/// by morsel in the streaming engine.
fn stop_point_flags() -> AllowedOptimizations {
    OptFlags::PREDICATE_PUSHDOWN
        | OptFlags::PROJECTION_PUSHDOWN
        | OptFlags::SLICE_PUSHDOWN
        | OptFlags::STREAMING
}

/// `frame` with a stop point over it.
pub fn stop_point(frame: LazyFrame, stop: &Stop) -> LazyFrame {
    let stop = stop.clone();
    frame.map(
        move |df| stop.check().map(|()| df),
        stop_point_flags(),
        None,
        Some("stop_point"),
    )
}

/// `plan` with a stop point over the output of every join in it, keeping
/// its optimization flags.
pub fn with_stop_points(plan: LazyFrame, stop: &Stop) -> LazyFrame {
    let flags = plan.get_current_optimizations();
    LazyFrame::from(walk(plan.logical_plan, stop)).with_optimizations(flags)
}

fn walk(plan: DslPlan, stop: &Stop) -> DslPlan {
    let one = |input: Arc<DslPlan>| Arc::new(walk(Arc::unwrap_or_clone(input), stop));
    let all = |inputs: Vec<DslPlan>| -> Vec<DslPlan> {
        inputs.into_iter().map(|input| walk(input, stop)).collect()
    };
    match plan {
        DslPlan::Join {
            input_left,
            input_right,
            left_on,
            right_on,
            predicates,
            options,
        } => {
            let join = DslPlan::Join {
                input_left: one(input_left),
                input_right: one(input_right),
                left_on,
                right_on,
                predicates,
                options,
            };
            stop_point(LazyFrame::from(join), stop).logical_plan
        }
        DslPlan::Filter { input, predicate } => DslPlan::Filter {
            input: one(input),
            predicate,
        },
        DslPlan::Cache { input, id } => DslPlan::Cache {
            input: one(input),
            id,
        },
        DslPlan::Select {
            expr,
            input,
            options,
        } => DslPlan::Select {
            expr,
            input: one(input),
            options,
        },
        DslPlan::GroupBy {
            input,
            keys,
            predicates,
            aggs,
            maintain_order,
            options,
            apply,
        } => DslPlan::GroupBy {
            input: one(input),
            keys,
            predicates,
            aggs,
            maintain_order,
            options,
            apply,
        },
        DslPlan::Gather {
            input,
            idxs,
            null_on_oob,
        } => DslPlan::Gather {
            input: one(input),
            idxs: one(idxs),
            null_on_oob,
        },
        DslPlan::HStack {
            input,
            exprs,
            options,
        } => DslPlan::HStack {
            input: one(input),
            exprs,
            options,
        },
        DslPlan::MatchToSchema {
            input,
            match_schema,
            per_column,
            extra_columns,
        } => DslPlan::MatchToSchema {
            input: one(input),
            match_schema,
            per_column,
            extra_columns,
        },
        DslPlan::PipeWithSchema { input, callback } => DslPlan::PipeWithSchema {
            input: all(input.iter().cloned().collect()).into(),
            callback,
        },
        DslPlan::Distinct { input, options } => DslPlan::Distinct {
            input: one(input),
            options,
        },
        DslPlan::Sort {
            input,
            by_column,
            slice,
            sort_options,
        } => DslPlan::Sort {
            input: one(input),
            by_column,
            slice,
            sort_options,
        },
        DslPlan::Slice { input, offset, len } => DslPlan::Slice {
            input: one(input),
            offset,
            len,
        },
        DslPlan::MapFunction { input, function } => DslPlan::MapFunction {
            input: one(input),
            function,
        },
        DslPlan::Union { inputs, args } => DslPlan::Union {
            inputs: all(inputs),
            args,
        },
        DslPlan::HConcat { inputs, options } => DslPlan::HConcat {
            inputs: all(inputs),
            options,
        },
        DslPlan::ExtContext { input, contexts } => DslPlan::ExtContext {
            input: one(input),
            contexts: all(contexts),
        },
        DslPlan::Sink { input, payload } => DslPlan::Sink {
            input: one(input),
            payload,
        },
        DslPlan::SinkMultiple { inputs } => DslPlan::SinkMultiple {
            inputs: all(inputs),
        },
        // A plan already converted (to learn its schema): its conversion
        // lacks the stop points, so it is converted again from its DSL.
        DslPlan::IR { dsl, .. } => walk(Arc::unwrap_or_clone(dsl), stop),
        // Sources (their stop points are put over them where they are
        // registered, see `sql_result`) and nodes Polars SQL does not plan
        // (Python scans, pivots, sorted merges, behind features).
        other => other,
    }
}

/// Runs `plan` on the streaming engine, at most `max_rows + 1` rows; fails
/// once `stop` is asked (see the module's documentation).
pub fn collect(plan: LazyFrame, max_rows: usize, stop: &Stop) -> PolarsResult<DataFrame> {
    let limit = IdxSize::try_from(max_rows.saturating_add(1)).unwrap_or(IdxSize::MAX);
    stop.started(resident_bytes().unwrap_or(1));
    // One result: the root is the limit, and only a plan rooted in several
    // sinks gives several.
    with_stop_points(plan, stop)
        .limit(limit)
        .collect_with_engine(Engine::Streaming)
        .map(|result| result.unwrap_single())
}

/// This process's resident memory in bytes (`VmRSS` of
/// `/proc/self/status`), or `None` where there is no such file.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    vm_rss(&status)
}

fn vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(n: i64, name: &str) -> LazyFrame {
        df!(name => (0..n).collect::<Vec<_>>()).unwrap().lazy()
    }

    #[test]
    fn the_status_line_gives_the_resident_bytes() {
        let status = "Name:\tlake-serve\nVmPeak:\t  900 kB\nVmRSS:\t   12345 kB\nThreads:\t4\n";
        assert_eq!(vm_rss(status), Some(12345 * 1024));
        assert_eq!(vm_rss("Name:\tx\n"), None);
        assert!(resident_bytes().is_some_and(|b| b > 0));
    }

    #[test]
    fn stop_points_change_neither_the_result_nor_the_join_plan() {
        let stop = Stop::new();
        let left = stop_point(numbers(1000, "a"), &stop);
        let right = stop_point(numbers(1000, "b"), &stop);
        // A cross join with an equality filter becomes an inner join when
        // the filter reaches the join: the stop point over the join must
        // let it through.
        let plan = left
            .cross_join(right, None)
            .filter(col("a").eq(col("b")))
            .select([col("a").sum()]);
        let pointed = with_stop_points(plan.clone(), &stop);
        let explained = pointed.clone().explain(true).unwrap();
        assert!(explained.contains("INNER JOIN"), "{explained}");
        assert!(explained.contains("stop_point"), "{explained}");
        let expected = plan.collect().unwrap();
        let got = collect(pointed, 10, &stop).unwrap();
        assert_eq!(got, expected);
        assert_eq!(
            got.column("a").unwrap().i64().unwrap().get(0),
            Some(499_500)
        );
    }

    #[test]
    fn a_stopped_query_fails_at_its_next_morsel() {
        let stop = Stop::new();
        assert!(stop.stop(StopReason::TimeLimit));
        assert!(!stop.stop(StopReason::ClientGone));
        assert_eq!(stop.reason(), Some(StopReason::TimeLimit));
        let plan = stop_point(numbers(10, "a"), &stop);
        let err = collect(plan, 100, &stop).unwrap_err().to_string();
        assert!(err.contains("the query was stopped (time_limit)"), "{err}");
    }

    #[test]
    fn stopping_a_running_cross_join_ends_it() {
        use std::sync::atomic::AtomicUsize;
        use std::time::{Duration, Instant};
        // 40,000 x 40,000 = 1.6e9 rows summed, some 16,000 morsels: far
        // more than pass before the test stops it.
        let stop = Stop::new();
        let left = stop_point(numbers(40_000, "a"), &stop);
        let right = stop_point(numbers(40_000, "b"), &stop);
        // Counts the cross join's morsels, to stop it mid-way.
        let morsels = Arc::new(AtomicUsize::new(0));
        let counted = morsels.clone();
        let plan = left
            .cross_join(right, None)
            .map(
                move |df| {
                    counted.fetch_add(1, Ordering::Relaxed);
                    Ok(df)
                },
                stop_point_flags(),
                None,
                Some("count"),
            )
            .select([(col("a") * col("b")).sum().alias("s")]);
        let running = {
            let stop = stop.clone();
            std::thread::spawn(move || collect(plan, 10, &stop))
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while morsels.load(Ordering::Relaxed) < 3 {
            assert!(Instant::now() < deadline, "the cross join never ran");
            std::thread::yield_now();
        }
        let asked = Instant::now();
        stop.stop(StopReason::TimeLimit);
        let result = running.join().unwrap();
        let took = asked.elapsed();
        let err = result.unwrap_err().to_string();
        assert!(err.contains("stopped (time_limit)"), "{err}");
        assert!(took < Duration::from_secs(1), "stopped after {took:?}");
        let passed = morsels.load(Ordering::Relaxed);
        assert!(passed < 1000, "{passed} morsels passed");
    }

    #[test]
    fn the_result_holds_at_most_one_row_over_the_limit() {
        let stop = Stop::new();
        let plan = stop_point(numbers(3000, "a"), &stop)
            .cross_join(stop_point(numbers(3000, "b"), &stop), None);
        let got = collect(plan, 100, &stop).unwrap();
        assert_eq!(got.height(), 101);
    }
}
