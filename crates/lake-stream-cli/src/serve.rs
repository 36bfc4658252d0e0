//! The stream and the serving layer in one process (`lake-stream run
//! --serve`): after each micro-batch the live views go to the server's
//! memory, so the API serves them without reading the lake.

use std::sync::Arc;

use anyhow::Result;
use lake_serve::{
    AccessArgs, AppState, Catalog, LiveSnapshot, MemoryLive, ServerHandle, SqlLimits,
};
use lake_table::Lake;

use lake_stream::processor::Processor;
use lake_stream::stream_status::StreamStatus;
use lake_stream::views::LiveTotals;

/// A server whose live views this process publishes.
pub struct LiveServer {
    pub live: MemoryLive,
    pub handle: ServerHandle,
}

/// Starts the API on `addr` over `lake`, with in-memory live views and the
/// keys and TLS of `access` (`--api-key-file`, `--tls-cert`, `--tls-key`
/// and their variables, as `lake-serve` takes them).
pub fn start(addr: &str, lake: &Lake, query: &str, access: &AccessArgs) -> Result<LiveServer> {
    start_with(addr, lake, query, |state| access.apply(state))
}

/// Starts the API as [`start`] does, with the keys and TLS `access` adds
/// to the handlers' state (tests give keys of their own). The live views
/// are those of `query`'s checkpoints from the first request on.
pub fn start_with(
    addr: &str,
    lake: &Lake,
    query: &str,
    access: impl FnOnce(AppState) -> Result<AppState>,
) -> Result<LiveServer> {
    let live = MemoryLive::new()?;
    // Before the first request: the views the query's checkpoints hold,
    // complete, until this process's first batch replaces them.
    live.publish(checkpointed(lake, query)?);
    let state = access(AppState::new(
        Arc::new(Catalog::new(lake.clone())),
        Arc::new(live.clone()),
        query,
        SqlLimits::default(),
    ))?;
    let handle = lake_serve::spawn(addr, state)?;
    Ok(LiveServer { live, handle })
}

/// The processor's live views and status as a snapshot.
pub fn snapshot(processor: &Processor) -> Result<LiveSnapshot> {
    snapshot_of(processor.live_totals(), Some(processor.status().clone()))
}

/// The live views and status `query`'s checkpoints hold, as a snapshot:
/// what the server shows before the stream's first batch (no status when
/// the query never ran).
pub fn checkpointed(lake: &Lake, query: &str) -> Result<LiveSnapshot> {
    let (totals, status) = lake_stream::live::checkpointed(lake, query)?;
    snapshot_of(&totals, status)
}

fn snapshot_of(totals: &LiveTotals, status: Option<StreamStatus>) -> Result<LiveSnapshot> {
    LiveSnapshot::new(
        totals.by_country_frame()?,
        totals.by_minute_frame()?,
        status,
        "memory",
    )
}
