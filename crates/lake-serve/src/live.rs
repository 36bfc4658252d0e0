//! The stream's live tables as the API serves them: from memory when the
//! stream processor runs in the same process ([`MemoryLive`], published
//! after each micro-batch), else from the latest snapshot the stream wrote
//! to gold ([`LakeLive`], re-read at most once per `max_age`).
//!
//! A snapshot carries its JSON bodies, encoded once when it is made, so a
//! request for a live table costs a pointer copy whatever the load.
//!
//! No source blocks the async worker that asks it for a snapshot:
//! [`LakeLive`] reads the lake on Tokio's blocking pool, and while it
//! re-reads it serves the snapshot it has; its lock is only held to copy a
//! pointer, never across I/O.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::body::Bytes;
use chrono::{DateTime, Utc};
use lake_stream::stream_status::StreamStatus;
use lake_table::{Lake, Layer};
use polars::prelude::*;
use serde_json::{Map, Value};

use crate::catalog::Catalog;
use crate::json;
use crate::minute_page::{self, PageQuery};

/// Gold tables the stream writes its live views to (data contract, section 6).
pub use lake_stream::config::{LIVE_BY_COUNTRY, LIVE_BY_MINUTE};

/// The live views at one moment.
#[derive(Debug, Clone)]
pub struct LiveSnapshot {
    pub by_country: DataFrame,
    pub by_minute: DataFrame,
    pub status: Option<StreamStatus>,
    /// Where it comes from: `memory` or `lake`.
    pub origin: &'static str,
    pub taken_at: DateTime<Utc>,
    pub by_country_json: Bytes,
    pub by_minute_json: Bytes,
}

impl LiveSnapshot {
    pub fn new(
        by_country: DataFrame,
        by_minute: DataFrame,
        status: Option<StreamStatus>,
        origin: &'static str,
    ) -> Result<Self> {
        let mut snapshot = LiveSnapshot {
            by_country,
            by_minute,
            status,
            origin,
            taken_at: Utc::now(),
            by_country_json: Bytes::new(),
            by_minute_json: Bytes::new(),
        };
        snapshot.by_country_json =
            snapshot.encode(LIVE_BY_COUNTRY, &snapshot.by_country, Map::new())?;
        snapshot.by_minute_json = snapshot.minute_page(&PageQuery::default())?;
        Ok(snapshot)
    }

    /// A page of the per-minute view as the API serves it (the first page
    /// with the default size is encoded once, in `by_minute_json`).
    pub fn minute_page(&self, query: &PageQuery) -> Result<Bytes> {
        let page = minute_page::page(&self.by_minute, query)?;
        let mut fields = Map::new();
        fields.insert(
            "next_since".into(),
            // With `Z`, not `+00:00`: the value goes back into a URL as
            // it is, where a `+` would read as a space.
            page.next_since.map_or(Value::Null, |since| {
                Value::from(since.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            }),
        );
        self.encode(LIVE_BY_MINUTE, &page.rows, fields)
    }

    /// `df` as the body of a live table: its rows, where and when they were
    /// taken, and how fresh the stream is.
    fn encode(&self, table: &str, df: &DataFrame, mut fields: Map<String, Value>) -> Result<Bytes> {
        fields.insert("table".into(), Value::from(table));
        fields.insert("origin".into(), Value::from(self.origin));
        fields.insert("taken_at".into(), Value::from(self.taken_at.to_rfc3339()));
        fields.insert("freshness".into(), freshness(self.status.as_ref()));
        let body = serde_json::to_vec(&json::frame(df, fields))
            .with_context(|| format!("encoding {table}"))?;
        Ok(Bytes::from(body))
    }

    /// No stream has run yet: the views with their columns and no rows.
    pub fn empty(origin: &'static str) -> Result<Self> {
        let utc = || DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC));
        let by_country = DataFrame::empty_with_schema(&Schema::from_iter([
            Field::new("pays".into(), DataType::String),
            Field::new("total_ventes_live".into(), DataType::Float64),
            Field::new("nb_transactions".into(), DataType::Int64),
            Field::new("last_event_time".into(), utc()),
        ]));
        let by_minute = DataFrame::empty_with_schema(&Schema::from_iter([
            Field::new("window_start".into(), utc()),
            Field::new("window_end".into(), utc()),
            Field::new("pays".into(), DataType::String),
            Field::new("total_ventes".into(), DataType::Float64),
            Field::new("nb_transactions".into(), DataType::Int64),
        ]));
        LiveSnapshot::new(by_country, by_minute, None, origin)
    }
}

/// Last event time, lag and age of the last checkpoint, for the dashboard.
pub fn freshness(status: Option<&StreamStatus>) -> Value {
    let Some(status) = status else {
        return Value::Null;
    };
    let now = Utc::now();
    let age = |t: Option<DateTime<Utc>>| t.map(|t| (now - t).num_milliseconds() as f64 / 1000.0);
    serde_json::json!({
        "last_event_time": status.last_event_time.map(|t| t.to_rfc3339()),
        "last_checkpoint_at": status.last_checkpoint_at.map(|t| t.to_rfc3339()),
        "last_checkpoint_age_seconds": age(status.last_checkpoint_at),
        "lag": status.lag,
        "events_consumed": status.events_consumed,
        "counted": status.counted,
        "dlq": status.dlq,
    })
}

/// A snapshot on its way.
pub type SnapshotFuture<'a> = Pin<Box<dyn Future<Output = Result<Arc<LiveSnapshot>>> + Send + 'a>>;

/// Where the API gets the live views from.
pub trait LiveSource: Send + Sync {
    /// Where the views come from: `memory` or `lake`.
    fn origin(&self) -> &'static str;

    /// The snapshot to serve. Polled on an async worker, it never blocks
    /// it: lake reads go to Tokio's blocking pool.
    fn snapshot(&self) -> SnapshotFuture<'_>;
}

/// Live views held in memory, replaced by the stream after each batch.
#[derive(Clone)]
pub struct MemoryLive {
    current: Arc<RwLock<Arc<LiveSnapshot>>>,
}

impl MemoryLive {
    pub fn new() -> Result<Self> {
        Ok(MemoryLive {
            current: Arc::new(RwLock::new(Arc::new(LiveSnapshot::empty("memory")?))),
        })
    }

    pub fn publish(&self, snapshot: LiveSnapshot) {
        let mut current = self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *current = Arc::new(snapshot);
    }
}

impl LiveSource for MemoryLive {
    fn origin(&self) -> &'static str {
        "memory"
    }

    fn snapshot(&self) -> SnapshotFuture<'_> {
        // The lock is held for a pointer copy.
        let current = self
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        Box::pin(std::future::ready(Ok(current)))
    }
}

/// Live views read from the lake: the latest dates of the gold live
/// tables and the query's `_status.json`, re-read at most once per
/// `max_age`. A request that finds the snapshot older than that gets it
/// all the same and starts one re-read in the background; only the first
/// request waits for a read.
pub struct LakeLive {
    inner: Arc<LakeInner>,
}

struct LakeInner {
    catalog: Arc<Catalog>,
    query: String,
    max_age: Duration,
    state: Mutex<LakeState>,
}

#[derive(Default)]
struct LakeState {
    /// The latest snapshot and when its read began.
    current: Option<(Instant, Arc<LiveSnapshot>)>,
    /// A re-read is under way.
    refreshing: bool,
}

/// What a request does with the state it found.
enum Next {
    Serve(Arc<LiveSnapshot>),
    ServeAndRefresh(Arc<LiveSnapshot>),
    Load,
}

impl LakeLive {
    pub fn new(catalog: Arc<Catalog>, query: &str, max_age: Duration) -> Self {
        LakeLive {
            inner: Arc::new(LakeInner {
                catalog,
                query: query.to_string(),
                max_age,
                state: Mutex::new(LakeState::default()),
            }),
        }
    }
}

impl LakeInner {
    fn lock(&self) -> std::sync::MutexGuard<'_, LakeState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn next(&self) -> Next {
        let mut state = self.lock();
        let refreshing = state.refreshing;
        match &state.current {
            Some((at, snapshot)) if at.elapsed() < self.max_age || refreshing => {
                Next::Serve(snapshot.clone())
            }
            Some((_, snapshot)) => {
                let snapshot = snapshot.clone();
                state.refreshing = true;
                Next::ServeAndRefresh(snapshot)
            }
            None => Next::Load,
        }
    }

    /// Reads the lake (blocking) and keeps what it read; the lock is not
    /// held meanwhile.
    fn refresh(&self) -> Result<Arc<LiveSnapshot>> {
        /// Ends the re-read whatever happens, a panic included.
        struct Done<'a>(&'a LakeInner);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.lock().refreshing = false;
            }
        }
        let _done = Done(self);
        let started = Instant::now();
        let snapshot = Arc::new(self.load()?);
        let mut state = self.lock();
        let newer = state.current.as_ref().is_none_or(|(at, _)| *at <= started);
        if newer {
            state.current = Some((started, snapshot.clone()));
        }
        Ok(snapshot)
    }

    fn load(&self) -> Result<LiveSnapshot> {
        let lake: &Lake = self.catalog.lake();
        // The live tables in gold are shared by every query that writes
        // them: without a status of the configured query, the freshest one
        // is the writer of what is there (e.g. the pipeline's embedded run).
        let status = match StreamStatus::load(lake, &self.query)? {
            Some(status) => Some(status),
            None => StreamStatus::latest(lake)?,
        };
        let by_country = self.catalog.read(Layer::Gold, LIVE_BY_COUNTRY, None)?;
        let by_minute = self.catalog.read(Layer::Gold, LIVE_BY_MINUTE, None)?;
        match (by_country, by_minute) {
            (Some(by_country), Some(by_minute)) => LiveSnapshot::new(
                by_country.frame.as_ref().clone(),
                by_minute.frame.as_ref().clone(),
                status,
                "lake",
            ),
            _ => {
                let mut empty = LiveSnapshot::empty("lake")?;
                empty.status = status;
                Ok(empty)
            }
        }
    }
}

impl LiveSource for LakeLive {
    fn origin(&self) -> &'static str {
        "lake"
    }

    fn snapshot(&self) -> SnapshotFuture<'_> {
        let inner = self.inner.clone();
        Box::pin(async move {
            match inner.next() {
                Next::Serve(snapshot) => Ok(snapshot),
                Next::ServeAndRefresh(snapshot) => {
                    tokio::task::spawn_blocking(move || {
                        if let Err(err) = inner.refresh() {
                            tracing::warn!("re-reading the live views from the lake: {err:#}");
                        }
                    });
                    Ok(snapshot)
                }
                Next::Load => tokio::task::spawn_blocking(move || inner.refresh())
                    .await
                    .context("reading the live views from the lake")?,
            }
        })
    }
}
