//! The stream and the serving layer in one process (`lake-stream run
//! --serve`): after each micro-batch the live views go to the server's
//! memory, so the API serves them without reading the lake.

use std::sync::Arc;

use anyhow::Result;
use lake_serve::{ApiKeys, AppState, Catalog, LiveSnapshot, MemoryLive, ServerHandle, SqlLimits};
use lake_table::Lake;

use lake_stream::processor::Processor;

/// A server whose live views this process publishes.
pub struct LiveServer {
    pub live: MemoryLive,
    pub handle: ServerHandle,
}

/// Starts the API on `addr` over `lake`, with in-memory live views (keys
/// and TLS from the environment, as `lake-serve` takes them).
pub fn start(addr: &str, lake: &Lake, query: &str) -> Result<LiveServer> {
    start_with_keys(addr, lake, query, None)
}

/// [`start`], with these API keys rather than the environment's.
pub fn start_with_keys(
    addr: &str,
    lake: &Lake,
    query: &str,
    keys: Option<ApiKeys>,
) -> Result<LiveServer> {
    let live = MemoryLive::new()?;
    let mut state = AppState::new(
        Arc::new(Catalog::new(lake.clone())),
        Arc::new(live.clone()),
        query,
        SqlLimits::default(),
    );
    if let Some(keys) = keys {
        state = state.with_keys(keys);
    }
    let handle = lake_serve::spawn(addr, state)?;
    Ok(LiveServer { live, handle })
}

/// The processor's live views and status as a snapshot.
pub fn snapshot(processor: &Processor) -> Result<LiveSnapshot> {
    let totals = processor.live_totals();
    LiveSnapshot::new(
        totals.by_country_frame()?,
        totals.by_minute_frame()?,
        Some(processor.status().clone()),
        "memory",
    )
}
