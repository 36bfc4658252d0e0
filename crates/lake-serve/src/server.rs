//! Running the server: in the caller's runtime ([`serve`]) or on a thread
//! of its own beside synchronous code such as the stream loop ([`spawn`]).

use std::net::SocketAddr;

use anyhow::{Context, Result};
use tokio::net::TcpListener;

use crate::api::{AppState, router};

/// Binds `addr` (a `host:port`), so a taken port fails here, before any work.
pub async fn bind(addr: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP")
}

/// A server running on its own thread; dropping it stops the server.
pub struct ServerHandle {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerHandle {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts the server on a thread with its own runtime (two workers, so the
/// API does not compete with the caller for every core).
pub fn spawn(addr: &str, state: AppState) -> Result<ServerHandle> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("lake-serve")
        .enable_all()
        .build()
        .context("starting the server's runtime")?;
    let listener = runtime.block_on(bind(addr))?;
    let local = listener.local_addr().context("reading the bound address")?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("lake-serve".into())
        .spawn(move || {
            let result = runtime.block_on(serve(listener, state, async {
                let _ = stopped.await;
            }));
            if let Err(err) = result {
                tracing::error!("the HTTP server stopped: {err:#}");
            }
        })
        .context("starting the server's thread")?;
    Ok(ServerHandle {
        addr: local,
        stop: Some(stop),
        thread: Some(thread),
    })
}
