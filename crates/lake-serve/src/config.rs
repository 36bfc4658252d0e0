//! The server's command-line settings, shared by `lake-serve` and
//! `cargo xtask serve`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use lake_core::Lake;

use crate::api::{AppState, SqlLimits};
use crate::catalog::Catalog;
use crate::live::LakeLive;

#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    /// The lake: a folder path, file:// or s3:// URL.
    #[arg(long = "lake", env = "LAKE_URL", default_value = "./lake")]
    pub lake: String,
    /// Address to listen on.
    #[arg(long, env = "LAKE_SERVE_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// The stream query whose live views and status are served.
    #[arg(long, default_value = "ventes_temps_reel")]
    pub query: String,
    /// Most rows a SQL result may have.
    #[arg(long, default_value_t = 10_000)]
    pub sql_max_rows: usize,
    /// Longest a SQL query may run, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub sql_timeout: f64,
}

impl ServeArgs {
    /// The handlers' state over the lake, with the live views read from
    /// the stream's gold snapshot (re-read at most twice a second: the
    /// stream rewrites it after each micro-batch).
    pub fn state(&self) -> Result<AppState> {
        let lake = Lake::open(&self.lake)?;
        let catalog = Arc::new(Catalog::new(lake));
        let live = Arc::new(LakeLive::new(
            catalog.clone(),
            &self.query,
            Duration::from_millis(500),
        ));
        let limits = SqlLimits {
            max_rows: self.sql_max_rows,
            timeout: Duration::from_secs_f64(self.sql_timeout.max(0.001)),
            ..SqlLimits::default()
        };
        Ok(AppState::new(catalog, live, &self.query, limits))
    }
}
