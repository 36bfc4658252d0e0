//! Serving layer (data contract, section 7): an HTTP API over the lake's
//! tables, the stream's live views and the unified view, read-only SQL,
//! run history, metrics, and a dashboard.
//!
//! The server never writes to the lake. Live views come from a
//! [`live::LiveSource`]: in memory when the stream processor shares the
//! process (`lake-stream run --serve`), else from the stream's latest
//! snapshot in gold (`lake-serve`).
//!
//! It is safe to expose: SQL reads only the lake's registered tables
//! ([`sql`]), API keys protect everything but the dashboard's files and
//! `/health` ([`auth`]), an address other machines can reach needs a key,
//! TLS is built in ([`tls`]), no lake read blocks an async worker, the
//! frame cache is bounded by bytes ([`cache`]), and a SQL query is stopped
//! at its time limit or memory budget ([`sql::exec`]).

pub mod api;
pub mod auth;
pub mod batch_runs;
pub mod cache;
pub mod catalog;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod json;
pub mod live;
pub mod metrics;
pub mod minute_page;
pub mod server;
pub mod sql;
pub mod state;
pub mod tls;

pub use api::router;
pub use auth::ApiKeys;
pub use catalog::Catalog;
pub use config::{AccessArgs, ServeArgs};
pub use live::{LakeLive, LiveSnapshot, LiveSource, MemoryLive};
pub use server::{ServerHandle, serve, spawn};
pub use state::{AppState, SqlLimits};
pub use tls::Tls;
