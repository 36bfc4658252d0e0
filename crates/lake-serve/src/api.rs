//! The HTTP API: routes, handlers and their JSON errors.
//!
//! Handlers that read the lake run on Tokio's blocking pool; the live
//! endpoints answer from the current [`LiveSnapshot`]'s pre-encoded bodies.
//! Every error is `{"error": "...", "status": N}`: 4xx for what the client
//! sent, 5xx for what went wrong here; the server stays up either way.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use lake_core::Layer;
use lake_core::error::one_line;
use lake_core::run::RunManifest;
use polars::prelude::*;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::catalog::{Catalog, DATA_LAYERS, sql_name, valid_table_name};
use crate::live::{LiveSnapshot, LiveSource};
use crate::{dashboard, json, metrics, sql};

/// Limits of `POST /api/sql`.
#[derive(Debug, Clone)]
pub struct SqlLimits {
    /// Most rows a result may have (a client may ask for fewer).
    pub max_rows: usize,
    /// Longest a query may run.
    pub timeout: Duration,
    /// Queries running at once; more are refused until one ends.
    pub concurrent: usize,
}

impl Default for SqlLimits {
    fn default() -> Self {
        SqlLimits {
            max_rows: 10_000,
            timeout: Duration::from_secs(10),
            concurrent: 2,
        }
    }
}

/// An error as the API returns it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn internal(err: &anyhow::Error) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, one_line(err))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": self.message, "status": self.status.as_u16()}));
        (self.status, body).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Cached JSON body of a gold partition, valid while its manifest is.
struct EncodedPartition {
    run_id: String,
    written_at: DateTime<Utc>,
    body: Bytes,
}

struct Inner {
    catalog: Arc<Catalog>,
    live: Arc<dyn LiveSource>,
    query: String,
    sql_limits: SqlLimits,
    sql_slots: Arc<tokio::sync::Semaphore>,
    gold_bodies: Mutex<HashMap<(String, NaiveDate), EncodedPartition>>,
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl AppState {
    /// `query` names the stream query whose status `/metrics` reports.
    pub fn new(
        catalog: Arc<Catalog>,
        live: Arc<dyn LiveSource>,
        query: &str,
        sql_limits: SqlLimits,
    ) -> Self {
        AppState(Arc::new(Inner {
            catalog,
            live,
            query: query.to_string(),
            sql_slots: Arc::new(tokio::sync::Semaphore::new(sql_limits.concurrent.max(1))),
            sql_limits,
            gold_bodies: Mutex::new(HashMap::new()),
        }))
    }
}

/// Every route of the server.
pub fn router(state: AppState) -> Router {
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
        .route("/api/sql", post(run_sql))
        .route("/api/runs", get(runs))
        .fallback(not_found)
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

fn snapshot(state: &AppState) -> ApiResult<Arc<LiveSnapshot>> {
    state
        .0
        .live
        .snapshot()
        .map_err(|err| ApiError::internal(&err))
}

async fn health(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let live = snapshot(&state)?;
    Ok(Json(json!({
        "status": "ok",
        "lake": state.0.catalog.lake().url(),
        "live_source": live.origin,
    })))
}

async fn prometheus(State(state): State<AppState>) -> ApiResult<Response> {
    let live = snapshot(&state)?;
    // Labelled with the query the status is of (see `LakeLive`).
    let query = live
        .status
        .as_ref()
        .map_or(state.0.query.as_str(), |s| s.query.as_str());
    let text = metrics::render(query, live.status.as_ref(), live.origin, Utc::now());
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

async fn gold_tables(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    blocking(move || {
        let tables = state
            .0
            .catalog
            .tables(Layer::Gold)
            .map_err(|err| ApiError::internal(&err))?;
        Ok(Json(
            json!({"lake": state.0.catalog.lake().url(), "tables": tables}),
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
                    .0
                    .catalog
                    .tables(layer)
                    .map_err(|err| ApiError::internal(&err))?,
            );
        }
        Ok(Json(
            json!({"lake": state.0.catalog.lake().url(), "tables": tables}),
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
    let catalog = &state.0.catalog;
    let found = catalog
        .manifest(Layer::Gold, table, date)
        .map_err(|err| ApiError::internal(&err))?;
    let Some((partition, manifest)) = found else {
        let known = catalog
            .tables(Layer::Gold)
            .map_err(|err| ApiError::internal(&err))?;
        return Err(match known.iter().find(|t| t.table == table) {
            Some(info) => ApiError::new(
                StatusCode::NOT_FOUND,
                format!(
                    "gold/{table} has no committed partition for {}; it has {}",
                    date.map_or("any date".to_string(), |d| d.to_string()),
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
    let key = (table.to_string(), partition.date);
    {
        let bodies = state
            .0
            .gold_bodies
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(cached) = bodies.get(&key)
            && cached.run_id == manifest.run_id
            && cached.written_at == manifest.written_at
        {
            return Ok(cached.body.clone());
        }
    }
    let data = catalog
        .frame(partition.clone(), manifest)
        .map_err(|err| ApiError::internal(&err))?;
    let mut fields = Map::new();
    fields.insert("layer".into(), json!("gold"));
    fields.insert("table".into(), json!(table));
    fields.insert("date".into(), json!(partition.date.to_string()));
    fields.insert(
        "written_at".into(),
        json!(data.manifest.written_at.to_rfc3339()),
    );
    fields.insert("run_id".into(), json!(data.manifest.run_id));
    let body = Bytes::from(
        serde_json::to_vec(&json::frame(&data.frame, fields))
            .map_err(|err| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()))?,
    );
    state
        .0
        .gold_bodies
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(
            key,
            EncodedPartition {
                run_id: data.manifest.run_id.clone(),
                written_at: data.manifest.written_at,
                body: body.clone(),
            },
        );
    Ok(body)
}

async fn live_by_country(State(state): State<AppState>) -> ApiResult<Response> {
    Ok(json_body(snapshot(&state)?.by_country_json.clone()))
}

async fn live_by_minute(State(state): State<AppState>) -> ApiResult<Response> {
    Ok(json_body(snapshot(&state)?.by_minute_json.clone()))
}

async fn unified_by_country(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let live = snapshot(&state)?;
    blocking(move || {
        let batch = state
            .0
            .catalog
            .read(Layer::Gold, "revenue_by_country", None)
            .map_err(|err| ApiError::internal(&err))?
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "gold/revenue_by_country has no committed partition: run the batch pipeline first",
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
        fields.insert("batch_date".into(), json!(batch.partition.date.to_string()));
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
        let runs = RunManifest::recent(state.0.catalog.lake(), limit)
            .map_err(|err| ApiError::internal(&err))?;
        Ok(Json(json!({ "runs": runs })))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlRequest {
    query: String,
    max_rows: Option<usize>,
}

async fn run_sql(State(state): State<AppState>, body: Bytes) -> ApiResult<Json<Value>> {
    let request: SqlRequest = serde_json::from_slice(&body).map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "the body must be JSON like {{\"query\": \"SELECT ...\", \"max_rows\": 100}}: {err}"
            ),
        )
    })?;
    sql::check_read_only(&request.query)
        .map_err(|refusal| ApiError::new(StatusCode::BAD_REQUEST, refusal.to_string()))?;
    let limits = state.0.sql_limits.clone();
    let max_rows = request
        .max_rows
        .unwrap_or(limits.max_rows)
        .min(limits.max_rows);
    let permit = state.0.sql_slots.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "{} SQL queries are already running: try again when one ends",
                limits.concurrent
            ),
        )
    })?;
    let started = Instant::now();
    let catalog = state.0.catalog.clone();
    // The permit goes with the work: a query past its time limit still
    // holds its slot until Polars is done with it.
    let work = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        sql_result(&catalog, &request.query, max_rows)
    });
    let frame = match tokio::time::timeout(limits.timeout, work).await {
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the query ran past the time limit of {} s: narrow it or aggregate",
                    limits.timeout.as_secs_f64()
                ),
            ));
        }
        Ok(Err(panic)) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the query could not be run: {panic}"),
            ));
        }
        Ok(Ok(result)) => result?,
    };
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

/// Binds, plans and runs a checked query; at most `max_rows + 1` rows.
fn sql_result(catalog: &Catalog, query: &str, max_rows: usize) -> ApiResult<DataFrame> {
    // Names only: a table's manifest is read when the query names it.
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
    let (bound, used) = sql::bind_tables(query, &names)
        .map_err(|refusal| ApiError::new(StatusCode::BAD_REQUEST, refusal.to_string()))?;
    let mut tables = Vec::new();
    for name in used {
        let (layer, table) = &known[&name];
        let data = catalog
            .read(*layer, table, None)
            .map_err(|err| ApiError::internal(&err))?
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("{name} has no committed partition yet"),
                )
            })?;
        tables.push((name, data.frame.as_ref().clone().lazy()));
    }
    let sql_error = |err: PolarsError| {
        let mut message = format!("SQL error: {err}");
        if message.contains("not found") {
            message.push_str(&format!(
                " (tables are named layer.table: {})",
                known.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        ApiError::new(StatusCode::BAD_REQUEST, message)
    };
    let plan = sql::plan(&bound, tables).map_err(sql_error)?;
    plan.limit(max_rows as IdxSize + 1)
        .collect()
        .map_err(sql_error)
}
