//! The HTTP API: routes, handlers and their JSON errors.
//!
//! Handlers that read the lake run on Tokio's blocking pool; the live
//! endpoints answer from the current [`LiveSnapshot`]'s pre-encoded bodies.
//! Every error is `{"error": "...", "status": N}`, the ones axum answers by
//! itself included ([`errors`]): 4xx for what the client sent, 5xx for what
//! went wrong here; the server stays up either way. `POST /api/sql` is in
//! [`query`]. With API keys, every route but the dashboard's files and
//! `/health` needs one ([`crate::auth`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use chrono::{NaiveDate, Utc};
use lake_core::error::one_line;
use lake_core::run::RunManifest;
use lake_table::Layer;
use polars::prelude::*;
use serde_json::{Map, Value, json};

use crate::auth::{self, ApiKeys};
use crate::cache::ByteLru;
use crate::catalog::{Catalog, DATA_LAYERS, valid_table_name};
use crate::live::{LiveSnapshot, LiveSource};
use crate::server::Tls;
use crate::{dashboard, json, metrics};

mod errors;
mod query;

use query::SqlStats;
pub use query::{RETRY_AFTER_SECONDS, SQL_BODY_LIMIT, SqlCounts};

/// Bound of the cache of encoded gold pages.
const GOLD_BODY_CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// Limits of `POST /api/sql`.
#[derive(Debug, Clone)]
pub struct SqlLimits {
    /// Most rows a result may have (a client may ask for fewer).
    pub max_rows: usize,
    /// Longest a query may run; past it, it is stopped.
    pub timeout: Duration,
    /// Queries running at once; more are refused until one ends.
    pub concurrent: usize,
    /// Most the process's resident memory may grow while a query runs
    /// before it is stopped (see [`crate::sql::exec`]).
    pub memory_bytes: u64,
}

impl Default for SqlLimits {
    fn default() -> Self {
        SqlLimits {
            max_rows: 10_000,
            timeout: Duration::from_secs(10),
            concurrent: 2,
            memory_bytes: 1024 * 1024 * 1024,
        }
    }
}

/// An error as the API returns it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds to wait before trying again (`Retry-After`).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    fn internal(err: &anyhow::Error) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, one_line(err))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": self.message, "status": self.status.as_u16()}));
        let mut response = (self.status, body).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Cached JSON body of one date of a gold table, valid for its version.
#[derive(Clone)]
struct EncodedPartition {
    version: i64,
    body: Bytes,
}

struct Inner {
    catalog: Arc<Catalog>,
    live: Arc<dyn LiveSource>,
    query: String,
    sql_limits: SqlLimits,
    sql_slots: Arc<tokio::sync::Semaphore>,
    sql_stats: SqlStats,
    gold_bodies: Mutex<ByteLru<(String, NaiveDate), EncodedPartition>>,
}

/// A test seam: called with the query text on the blocking thread that
/// runs each SQL query, before anything else (see
/// [`AppState::with_sql_hook_for_tests`]).
pub type SqlHook = Arc<dyn Fn(&str) + Send + Sync>;

/// What the handlers share, and how the server is exposed (keys, TLS).
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
    keys: Option<Arc<ApiKeys>>,
    tls: Option<Tls>,
    sql_hook: Option<SqlHook>,
}

impl AppState {
    /// `query` names the stream query whose status `/metrics` reports.
    /// No keys and no TLS: [`crate::server::serve`] and
    /// [`crate::server::spawn`] take them from the environment
    /// (`LAKE_API_KEYS`, ...) unless `with_keys`/`with_tls` set them.
    pub fn new(
        catalog: Arc<Catalog>,
        live: Arc<dyn LiveSource>,
        query: &str,
        sql_limits: SqlLimits,
    ) -> Self {
        AppState {
            inner: Arc::new(Inner {
                catalog,
                live,
                query: query.to_string(),
                sql_slots: Arc::new(tokio::sync::Semaphore::new(sql_limits.concurrent.max(1))),
                sql_limits,
                sql_stats: SqlStats::default(),
                gold_bodies: Mutex::new(ByteLru::new(GOLD_BODY_CACHE_BYTES)),
            }),
            keys: None,
            tls: None,
            sql_hook: None,
        }
    }

    /// Requests need one of `keys` (all but the dashboard's files and
    /// `/health`).
    pub fn with_keys(mut self, keys: ApiKeys) -> Self {
        self.keys = Some(Arc::new(keys));
        self
    }

    /// Serve HTTPS.
    pub fn with_tls(mut self, tls: Tls) -> Self {
        self.tls = Some(tls);
        self
    }

    pub fn keys(&self) -> Option<&ApiKeys> {
        self.keys.as_deref()
    }

    pub fn tls(&self) -> Option<&Tls> {
        self.tls.as_ref()
    }

    /// Test seam, for tests only: `hook` runs at the start of every SQL
    /// query's work, on its blocking thread, so a test can hold a query
    /// (past its time limit, keeping its slot) or make it panic.
    #[doc(hidden)]
    pub fn with_sql_hook_for_tests(mut self, hook: SqlHook) -> Self {
        self.sql_hook = Some(hook);
        self
    }
}

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    let guarded = state.clone();
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
        .fallback(not_found)
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
            "no route {}: see GET /api/gold, /api/live/..., /api/sql, /api/runs",
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

/// The live snapshot, without blocking this worker (see [`LiveSource`]).
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
        "api_key_required": state.keys.is_some(),
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

async fn live_by_minute(State(state): State<AppState>) -> ApiResult<Response> {
    Ok(json_body(snapshot(&state).await?.by_minute_json.clone()))
}

async fn unified_by_country(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let live = snapshot(&state).await?;
    blocking(move || {
        let batch = state
            .inner
            .catalog
            .read(Layer::Gold, "revenue_by_country", None)
            .map_err(|err| ApiError::internal(&err))?
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "gold/revenue_by_country has no committed version: run the batch pipeline first",
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
