//! The server's command-line settings, shared by `lake-serve` and
//! `cargo xtask serve`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use lake_core::config::LakeLocation;
use lake_stream::config::QueryName;

use crate::auth::ApiKeys;
use crate::catalog::Catalog;
use crate::live::LakeLive;
use crate::state::{AppState, SqlLimits};
use crate::tls::Tls;

#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub lake: LakeLocation,
    /// Address to listen on. Any address but a loopback one needs an API key.
    #[arg(long, env = "LAKE_SERVE_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: String,
    // The stream query whose live views and status are served.
    #[command(flatten)]
    pub query: QueryName,
    /// Most rows a SQL result may have.
    #[arg(long, default_value_t = 10_000)]
    pub sql_max_rows: usize,
    /// Longest a SQL query may run, in seconds; past it the query is
    /// stopped.
    #[arg(long, default_value_t = 10.0)]
    pub sql_timeout: f64,
    /// Most the server's resident memory may grow while a SQL query runs,
    /// in MiB; past it the query is stopped.
    #[arg(long, env = "LAKE_SQL_MEMORY_MB", default_value_t = 1024)]
    pub sql_memory_mb: u64,
    /// Most memory the frames read for SQL and the pages may take, in MiB
    /// (least recently used evicted first).
    #[arg(long, env = "LAKE_SQL_CACHE_MB", default_value_t = 256)]
    pub sql_cache_mb: u64,
    #[command(flatten)]
    pub access: AccessArgs,
}

/// Who may call the API and over what: the API keys and TLS of `lake-serve`
/// and of `lake-stream run --serve`, defined once for both.
#[derive(Args, Clone, Debug, Default)]
pub struct AccessArgs {
    /// A file of API keys, one a line (`#` comments); keys also come from
    /// LAKE_API_KEYS (comma-separated). With keys, /api/* and /metrics
    /// need `Authorization: Bearer <key>`.
    #[arg(long, env = "LAKE_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM, leaf first).
    #[arg(long, env = "LAKE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "LAKE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl AccessArgs {
    /// `state` with the keys (of the file and LAKE_API_KEYS) and the TLS
    /// of these flags and variables.
    pub fn apply(&self, mut state: AppState) -> Result<AppState> {
        if let Some(keys) = ApiKeys::from_env_and(self.api_key_file.as_deref())? {
            state = state.with_keys(keys);
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            state = state.with_tls(Tls::from_pem_files(cert, key)?);
        }
        Ok(state)
    }
}

impl ServeArgs {
    /// The handlers' state over the lake, with the live views read from
    /// the stream's gold snapshot (re-read at most twice a second: the
    /// stream rewrites it after each micro-batch), and the keys and TLS of
    /// the flags and variables.
    pub fn state(&self) -> Result<AppState> {
        let lake = self.lake.open()?;
        let catalog = Arc::new(Catalog::with_cache_limit(
            lake,
            self.sql_cache_mb.saturating_mul(1024 * 1024),
        ));
        let live = Arc::new(LakeLive::new(
            catalog.clone(),
            &self.query.name,
            Duration::from_millis(500),
        ));
        let limits = SqlLimits {
            max_rows: self.sql_max_rows,
            timeout: Duration::try_from_secs_f64(self.sql_timeout.max(0.001))
                .with_context(|| format!("--sql-timeout {} is not a duration", self.sql_timeout))?,
            memory_bytes: self.sql_memory_mb.max(1).saturating_mul(1024 * 1024),
            ..SqlLimits::default()
        };
        self.access
            .apply(AppState::new(catalog, live, &self.query.name, limits))
    }
}
