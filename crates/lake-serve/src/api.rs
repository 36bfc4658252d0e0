//! The HTTP API: routes and handlers.
//!
//! Handlers that read the lake run on Tokio's blocking pool; the live
//! endpoints answer from the current [`LiveSnapshot`]'s pre-encoded bodies.
//! Every error is `{"error": "...", "status": N}` ([`crate::error`]), the
//! ones axum answers by itself included ([`errors`]): 4xx for what the
//! client sent, 5xx for what went wrong here; the server stays up either
//! way. `POST /api/sql` is in
//! [`query`]. With API keys, every route but the dashboard's files and
//! `/health` needs one ([`crate::auth`]).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use chrono::{DateTime, NaiveDate, Utc};
use lake_core::run::RunManifest;
use lake_table::Layer;
use polars::prelude::*;
use serde_json::{Map, Value, json};

use crate::catalog::{DATA_LAYERS, valid_table_name};
use crate::error::{ApiError, ApiResult};
use crate::live::LiveSnapshot;
use crate::minute_page::{DEFAULT_PAGE_ROWS, MAX_PAGE_ROWS, PageQuery};
use crate::state::{AppState, EncodedPartition};
use crate::{auth, dashboard, json, metrics};

mod errors;
mod params;
mod query;

pub use query::SQL_BODY_LIMIT;

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    let guarded = state.shared_keys();
    Router::new()
        .route("/", get(dashboard::index))
        .route("/assets/{file}", get(dashboard::asset))
        .route("/health", get(health))
        .route("/metrics", get(prometheus))
        .route("/api/gold", get(gold_tables))
        .route("/api/gold/{*table}", get(gold_table))
        .route("/api/tables", get(all_tables))
        .route("/api/live/sales-by-country", get(live_by_country))
        .route("/api/live/sales-by-minute", get(live_by_minute))
        .route("/api/unified/sales-by-country", get(unified_by_country))
        .route(
            "/api/sql",
            post(query::run_sql).layer(DefaultBodyLimit::max(SQL_BODY_LIMIT)),
        )
        .route("/api/runs", get(runs))
        .route("/api/dates", get(batch_dates))
        .fallback(not_found)
        // Inside the key check: only a client with a key learns what an
        // endpoint takes.
        .layer(middleware::from_fn(params::only_accepted))
        .layer(middleware::from_fn_with_state(guarded, auth::require_key))
        // Outermost: what axum answers by itself (a rejected body or path, a
        // method a route does not take) is a JSON error too.
        .layer(middleware::from_fn(errors::json_errors))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no route {}: see GET /api/gold, /api/dates, /api/live/..., /api/sql, /api/runs",
            uri.path()
        ),
    )
}

/// Runs lake I/O on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(work).await.map_err(|err| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the request failed: {err}"),
        )
    })?
}

fn json_body(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The live snapshot, without blocking this worker (see [`crate::live::LiveSource`]).
async fn snapshot(state: &AppState) -> ApiResult<Arc<LiveSnapshot>> {
    state
        .inner
        .live
        .snapshot()
        .await
        .map_err(|err| ApiError::internal(&err))
}

/// Liveness: no I/O at all. Open to anyone (a probe has no key), so it
/// tells nothing about the lake (not where it is): only that the server
/// answers, where its live views come from, and whether the rest of the
/// API needs a key.
async fn health(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "live_source": state.inner.live.origin(),
        "api_key_required": state.keys().is_some(),
    }))
}

async fn prometheus(State(state): State<AppState>) -> ApiResult<Response> {
    let live = snapshot(&state).await?;
    // Labelled with the query the status is of (see `LakeLive`).
    let query = live
        .status
        .as_ref()
        .map_or(state.inner.query.as_str(), |s| s.query.as_str());
    let mut text = metrics::render(query, live.status.as_ref(), live.origin, Utc::now());
    let bodies = state
        .inner
        .gold_bodies
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .stats();
    metrics::render_caches(&mut text, state.inner.catalog.cache_stats(), bodies);
    metrics::render_sql(&mut text, &state.inner.sql_stats.counts());
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

async fn gold_tables(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    blocking(move || {
        let tables = state
            .inner
            .catalog
            .tables(Layer::Gold)
            .map_err(|err| ApiError::internal(&err))?;
        Ok(Json(
            json!({"lake": state.inner.catalog.lake().url(), "tables": tables}),
        ))
    })
    .await
}

async fn all_tables(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    blocking(move || {
        let mut tables = Vec::new();
        for layer in DATA_LAYERS {
            tables.extend(
                state
                    .inner
                    .catalog
                    .tables(layer)
                    .map_err(|err| ApiError::internal(&err))?,
            );
        }
        Ok(Json(
            json!({"lake": state.inner.catalog.lake().url(), "tables": tables}),
        ))
    })
    .await
}

fn parse_date(params: &HashMap<String, String>) -> ApiResult<Option<NaiveDate>> {
    match params.get("date") {
        None => Ok(None),
        Some(raw) => NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("date must be a day as YYYY-MM-DD: got {raw:?}"),
                )
            }),
    }
}

async fn gold_table(
    State(state): State<AppState>,
    Path(table): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    if !valid_table_name(&table) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{table:?} is not a table name (lowercase letters, digits and _)"),
        ));
    }
    let date = parse_date(&params)?;
    blocking(move || gold_body(&state, &table, date).map(json_body)).await
}

fn gold_body(state: &AppState, table: &str, date: Option<NaiveDate>) -> ApiResult<Bytes> {
    let catalog = &state.inner.catalog;
    let found = catalog
        .resolve(Layer::Gold, table, date)
        .map_err(|err| ApiError::internal(&err))?;
    let Some(resolved) = found else {
        let known = catalog
            .tables(Layer::Gold)
            .map_err(|err| ApiError::internal(&err))?;
        return Err(match known.iter().find(|t| t.table == table) {
            Some(info) => ApiError::new(
                StatusCode::NOT_FOUND,
                format!(
                    "gold/{table} holds no {}; it holds {}",
                    date.map_or("date".to_string(), |d| d.to_string()),
                    info.partitions
                        .iter()
                        .map(|p| p.date.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            None => ApiError::new(
                StatusCode::NOT_FOUND,
                format!(
                    "no gold table {table:?}; gold tables: {}",
                    known
                        .iter()
                        .map(|t| t.table.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        });
    };
    let version = resolved.snapshot.version();
    let key = (table.to_string(), resolved.date);
    {
        let mut bodies = state
            .inner
            .gold_bodies
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(cached) = bodies.get(&key)
            && cached.version == version
        {
            return Ok(cached.body);
        }
    }
    let data = catalog
        .frame(&resolved)
        .map_err(|err| ApiError::internal(&err))?;
    let mut fields = Map::new();
    fields.insert("layer".into(), json!("gold"));
    fields.insert("table".into(), json!(table));
    fields.insert("date".into(), json!(data.date.to_string()));
    fields.insert("version".into(), json!(data.version));
    fields.insert(
        "committed_at".into(),
        json!(resolved.snapshot.committed_at().map(|t| t.to_rfc3339())),
    );
    fields.insert("run_id".into(), json!(data.run_id));
    let body = Bytes::from(
        serde_json::to_vec(&json::frame(&data.frame, fields))
            .map_err(|err| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()))?,
    );
    state
        .inner
        .gold_bodies
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(
            key,
            EncodedPartition {
                version,
                body: body.clone(),
            },
            body.len() as u64,
        );
    Ok(body)
}

async fn live_by_country(State(state): State<AppState>) -> ApiResult<Response> {
    Ok(json_body(snapshot(&state).await?.by_country_json.clone()))
}

async fn live_by_minute(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let query = page_query(&params)?;
    let live = snapshot(&state).await?;
    if query == PageQuery::default() {
        return Ok(json_body(live.by_minute_json.clone()));
    }
    blocking(move || {
        live.minute_page(&query)
            .map(json_body)
            .map_err(|err| ApiError::internal(&err))
    })
    .await
}

/// `?since=RFC3339&pays=COUNTRY&limit=N` of the per-minute view.
fn page_query(params: &HashMap<String, String>) -> ApiResult<PageQuery> {
    let bad = |message: String| ApiError::new(StatusCode::BAD_REQUEST, message);
    let since = match params.get("since") {
        None => None,
        Some(raw) => Some(
            DateTime::parse_from_rfc3339(raw.trim())
                .map(|time| time.with_timezone(&Utc))
                .map_err(|_| {
                    bad(format!(
                        "since must be an RFC 3339 time, e.g. 2026-12-07T10:00:00Z: got {raw:?}"
                    ))
                })?,
        ),
    };
    let limit = match params.get("limit") {
        None => DEFAULT_PAGE_ROWS,
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE_ROWS).contains(&n) => n,
            _ => {
                return Err(bad(format!(
                    "limit must be a whole number from 1 to {MAX_PAGE_ROWS}: got {raw:?}"
                )));
            }
        },
    };
    Ok(PageQuery {
        since,
        pays: params.get("pays").cloned(),
        limit,
    })
}

async fn unified_by_country(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let date = parse_date(&params)?;
    let live = snapshot(&state).await?;
    blocking(move || {
        let batch = state
            .inner
            .catalog
            .read(Layer::Gold, "revenue_by_country", date)
            .map_err(|err| ApiError::internal(&err))?
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    match date {
                        Some(date) => format!("gold/revenue_by_country holds no {date}: see GET /api/dates"),
                        None => "gold/revenue_by_country has no committed version: run the batch pipeline first".to_string(),
                    },
                )
            })?;
        let unified = lake_gold::unified_sales_by_country::unified_sales_by_country(
            batch.frame.as_ref().clone().lazy(),
            live.by_country.clone().lazy(),
        )
        .collect()
        .map_err(|err| ApiError::internal(&anyhow::Error::from(err)))?;
        let mut fields = Map::new();
        fields.insert("table".into(), json!("unified_sales_by_country"));
        fields.insert("batch_date".into(), json!(batch.date.to_string()));
        fields.insert("batch_version".into(), json!(batch.version));
        fields.insert("batch_run_id".into(), json!(batch.run_id));
        fields.insert("live_origin".into(), json!(live.origin));
        fields.insert("freshness".into(), crate::live::freshness(live.status.as_ref()));
        Ok(Json(json::frame(&unified, fields)))
    })
    .await
}

async fn runs(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let limit = match params.get("limit") {
        None => 20,
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("limit must be a whole number from 1 to 1000: got {raw:?}"),
                ));
            }
        },
    };
    blocking(move || {
        let runs = RunManifest::recent(state.inner.catalog.lake(), limit)
            .map_err(|err| ApiError::internal(&err))?;
        Ok(Json(json!({ "runs": runs })))
    })
    .await
}

/// The dates that have a complete batch run, newest first, each with its
/// run (the one `/api/gold/{table}?date=` serves) and the silver figures
/// the dashboard's data-quality panel shows; `default` is the date served
/// without `?date=`.
async fn batch_dates(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    blocking(move || {
        let runs = state
            .inner
            .catalog
            .batch_runs()
            .map_err(|err| ApiError::internal(&err))?;
        let dates: Vec<Value> = runs
            .newest_first()
            .map(|run| {
                let silver = run.step(lake_silver::STEP);
                json!({
                    "date": run.date,
                    "run_id": run.run_id,
                    "source": run.source,
                    "started_at": run.started_at,
                    "finished_at": run.finished_at,
                    "order_lines": silver.map(|step| step.rows_in),
                    "rejects": silver.map(|step| &step.rejects),
                })
            })
            .collect();
        Ok(Json(json!({
            "default": runs.newest().map(|run| run.date),
            "dates": dates,
        })))
    })
    .await
}
