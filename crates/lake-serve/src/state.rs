//! What the handlers share ([`AppState`]: the catalog, the live source, the
//! SQL limits, slots and counters, the cache of gold pages) and how the
//! server is exposed (keys, TLS).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use chrono::NaiveDate;

use crate::auth::ApiKeys;
use crate::cache::ByteLru;
use crate::catalog::Catalog;
use crate::live::LiveSource;
use crate::sql::stats::SqlStats;
use crate::tls::Tls;

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

/// Cached JSON body of one date of a gold table, valid for its version.
#[derive(Clone)]
pub(crate) struct EncodedPartition {
    pub(crate) version: i64,
    pub(crate) body: Bytes,
}

pub(crate) struct Inner {
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) live: Arc<dyn LiveSource>,
    pub(crate) query: String,
    pub(crate) sql_limits: SqlLimits,
    pub(crate) sql_slots: Arc<tokio::sync::Semaphore>,
    pub(crate) sql_stats: SqlStats,
    pub(crate) gold_bodies: Mutex<ByteLru<(String, NaiveDate), EncodedPartition>>,
}

/// A test seam: called with the query text on the blocking thread that
/// runs each SQL query, before anything else (see
/// [`AppState::with_sql_hook_for_tests`]).
pub type SqlHook = Arc<dyn Fn(&str) + Send + Sync>;

/// What the handlers share, and how the server is exposed (keys, TLS).
#[derive(Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
    keys: Option<Arc<ApiKeys>>,
    tls: Option<Tls>,
    pub(crate) sql_hook: Option<SqlHook>,
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

    /// The keys as the key check holds them (see [`crate::auth::require_key`]).
    pub(crate) fn shared_keys(&self) -> Option<Arc<ApiKeys>> {
        self.keys.clone()
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
