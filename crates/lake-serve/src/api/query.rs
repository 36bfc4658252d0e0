//! `POST /api/sql`: the check, a slot, and a query that stops at its limits.
//!
//! A query runs on the blocking pool while its handler watches it: past the
//! time limit, or when the process's memory has grown more than the budget
//! since the engine started, the handler asks it to stop ([`exec::Stop`])
//! and answers at once (408, 422). The query's slot goes with its work and
//! is given back only when Polars has returned, so a query that was asked to
//! stop never runs beside the ones that take its slot after it; Polars
//! returns within a morsel of the stop (see [`exec`]), and the metric
//! `lake_serve_sql_queries_running` shows the queries whose work has not
//! ended. A client that goes away stops its query the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use lake_table::Layer;
use polars::prelude::*;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::catalog::{Catalog, DATA_LAYERS, sql_name};
use crate::error::{ApiError, ApiResult};
use crate::json;
use crate::sql::exec::{Stop, StopReason};
use crate::sql::stats::{Running, SqlStats};
use crate::sql::{self, exec};
use crate::state::{AppState, SqlLimits};

/// Most bytes of a `POST /api/sql` body (axum's default limit, named so
/// the 413 can say it): a query is at most [`sql::MAX_QUERY_BYTES`], and
/// JSON escapes at most six bytes for one.
pub const SQL_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// What a client told "too many queries" should wait before trying again,
/// in seconds: most queries end within a second, and none runs past its
/// time limit.
const RETRY_AFTER_SECONDS: u64 = 1;

/// How often the handler looks at its query's clock and memory: the most a
/// query runs past its limit before it is asked to stop.
const WATCH_EVERY: Duration = Duration::from_millis(20);

/// Stops the query when the handler is dropped before it answered (the
/// client closed the connection): nobody would read the result.
struct StopUnlessAnswered<'a> {
    stop: Stop,
    stats: &'a SqlStats,
    answered: bool,
}

impl Drop for StopUnlessAnswered<'_> {
    fn drop(&mut self) {
        if !self.answered && self.stop.stop(StopReason::ClientGone) {
            self.stats.count_stopped(StopReason::ClientGone);
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlRequest {
    query: String,
    max_rows: Option<usize>,
}

fn refused(refusal: sql::Refusal) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, refusal.to_string())
}

/// The body as bytes, or the JSON error of why not (413 past the limit).
fn body_bytes(body: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                format!(
                    "the body is larger than {} MiB: a query is at most {} KiB",
                    SQL_BODY_LIMIT / (1024 * 1024),
                    sql::MAX_QUERY_BYTES / 1024
                ),
            )
        } else {
            ApiError::new(status, rejection.body_text())
        }
    })
}

pub(super) async fn run_sql(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let body = body_bytes(body)?;
    let request: SqlRequest = serde_json::from_slice(&body).map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "the body must be JSON like {{\"query\": \"SELECT ...\", \"max_rows\": 100}}: {err}"
            ),
        )
    })?;
    // Refused before taking a slot when the statement alone says so (a
    // parse, no I/O); the whole check, which needs the lake's table names,
    // runs with the query.
    sql::check_shape(&request.query).map_err(refused)?;
    let limits = state.inner.sql_limits.clone();
    let stats = &state.inner.sql_stats;
    let max_rows = request
        .max_rows
        .unwrap_or(limits.max_rows)
        .min(limits.max_rows);
    let permit = state
        .inner
        .sql_slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            stats.count_refused_busy();
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "{} SQL queries are already running: try again when one ends",
                    limits.concurrent
                ),
            )
            .with_retry_after(RETRY_AFTER_SECONDS)
        })?;
    let started = Instant::now();
    let stop = Stop::new();
    let work = {
        let state = state.clone();
        let stop = stop.clone();
        // The permit goes with the work: the slot is given back when
        // Polars has returned, not when the handler answers.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _running = Running::enter(&state.inner.sql_stats);
            if let Some(hook) = &state.sql_hook {
                hook(&request.query);
            }
            sql_result(&state.inner.catalog, &request.query, max_rows, &stop)
        })
    };
    let mut guard = StopUnlessAnswered {
        stop: stop.clone(),
        stats,
        answered: false,
    };
    let outcome = watch(work, &stop, &limits, stats).await;
    guard.answered = true;
    let frame = outcome?;
    if frame.height() > max_rows {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the result has more than {max_rows} rows: add a LIMIT or aggregate"),
        ));
    }
    let mut fields = Map::new();
    fields.insert(
        "elapsed_ms".into(),
        json!(started.elapsed().as_millis() as u64),
    );
    Ok(Json(json::frame(&frame, fields)))
}

/// Waits for `work`, asking it to stop at the time limit or past the
/// memory budget, and answering then without waiting for it to end.
async fn watch(
    mut work: tokio::task::JoinHandle<ApiResult<DataFrame>>,
    stop: &Stop,
    limits: &SqlLimits,
    stats: &SqlStats,
) -> ApiResult<DataFrame> {
    let deadline = tokio::time::Instant::now() + limits.timeout;
    loop {
        let next = (tokio::time::Instant::now() + WATCH_EVERY).min(deadline);
        tokio::select! {
            joined = &mut work => return finished(joined),
            () = tokio::time::sleep_until(next) => {}
        }
        let reason = if tokio::time::Instant::now() >= deadline {
            Some(StopReason::TimeLimit)
        } else {
            over_budget(stop, limits.memory_bytes).then_some(StopReason::MemoryLimit)
        };
        if let Some(reason) = reason {
            if stop.stop(reason) {
                stats.count_stopped(reason);
            }
            return Err(stopped(reason, limits));
        }
    }
}

/// Whether the process has grown more than `budget` bytes since the
/// query's engine started (never before it started, nor where the resident
/// memory cannot be read).
fn over_budget(stop: &Stop, budget: u64) -> bool {
    match (stop.started_at(), exec::resident_bytes()) {
        (Some(start), Some(now)) => now.saturating_sub(start) > budget,
        _ => false,
    }
}

fn stopped(reason: StopReason, limits: &SqlLimits) -> ApiError {
    match reason {
        StopReason::TimeLimit => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the query ran past the time limit of {} s and was stopped: narrow it or aggregate",
                limits.timeout.as_secs_f64()
            ),
        ),
        StopReason::MemoryLimit => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "the query needed more than {} MiB of memory and was stopped: narrow it, filter or aggregate",
                limits.memory_bytes / (1024 * 1024)
            ),
        ),
        // Nobody reads this one.
        StopReason::ClientGone => ApiError::new(StatusCode::BAD_REQUEST, "the client went away"),
    }
}

fn finished(joined: Result<ApiResult<DataFrame>, tokio::task::JoinError>) -> ApiResult<DataFrame> {
    match joined {
        Ok(result) => result,
        Err(join_error) => {
            let message = match join_error.try_into_panic() {
                Ok(panic) => lake_core::error::panic_message(&*panic).to_string(),
                Err(other) => other.to_string(),
            };
            tracing::error!("a SQL query panicked: {message}");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "the SQL engine failed on this query (a fault here, not in the query): {message}"
                ),
            ))
        }
    }
}

/// Checks, plans and runs a query; at most `max_rows + 1` rows.
fn sql_result(
    catalog: &Catalog,
    query: &str,
    max_rows: usize,
    stop: &Stop,
) -> ApiResult<DataFrame> {
    // Names only: a table's log is read when the query names it.
    let mut known: BTreeMap<String, (Layer, String)> = BTreeMap::new();
    for layer in DATA_LAYERS {
        for table in catalog
            .table_names(layer)
            .map_err(|err| ApiError::internal(&err))?
        {
            known.insert(sql_name(layer, &table), (layer, table));
        }
    }
    let names: BTreeSet<String> = known.keys().cloned().collect();
    let prepared = sql::prepare(query, &names).map_err(refused)?;
    let tables = sql::reads::frames(catalog, &prepared, &known, stop)?;
    let sql_error =
        |err: PolarsError| ApiError::new(StatusCode::BAD_REQUEST, format!("SQL error: {err}"));
    let plan = sql::plan(&prepared, tables).map_err(sql_error)?;
    exec::collect(plan, max_rows, stop).map_err(|err| match stop.reason() {
        // Stopped: the handler has answered already.
        Some(reason) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the query was stopped ({})", reason.label()),
        ),
        None => sql_error(err),
    })
}
