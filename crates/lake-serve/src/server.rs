//! Running the server: in the caller's runtime ([`serve`]) or on a thread
//! of its own beside synchronous code such as the stream loop ([`spawn`]).
//!
//! Both first [`secure`] the state: keys and TLS not set in code come
//! from the environment (`LAKE_API_KEYS`, `LAKE_API_KEY_FILE`,
//! `LAKE_TLS_CERT`, `LAKE_TLS_KEY`), so `lake-stream run --serve` takes
//! them too; and an address other machines can reach is refused without a
//! key. TLS is in [`crate::tls`].

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use axum::serve::ListenerExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::api::router;
use crate::auth::{ApiKeys, KEY_FILE_VARIABLE, KEYS_VARIABLE};
use crate::state::AppState;
use crate::tls::Tls;

/// Longest a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds `addr` (a `host:port`), so a taken port fails here, before any work.
pub async fn bind(addr: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

/// Whether only this machine can reach `addr`.
pub fn is_loopback(addr: SocketAddr) -> bool {
    addr.ip().to_canonical().is_loopback()
}

/// The state as it will serve on `local`: keys and TLS the state lacks
/// from the environment; refused when `local` is reachable from other
/// machines and there is no key.
pub fn secure(mut state: AppState, local: SocketAddr) -> Result<AppState> {
    if state.keys().is_none()
        && let Some(keys) = ApiKeys::from_env_and(None)?
    {
        state = state.with_keys(keys);
    }
    if state.tls().is_none()
        && let Some(tls) = Tls::from_env()?
    {
        state = state.with_tls(tls);
    }
    if state.keys().is_none() && !is_loopback(local) {
        bail!(
            "refusing to serve on {local} without an API key: other machines can reach that address \
             and would read the whole lake. Set one or more keys in {KEYS_VARIABLE} \
             (e.g. `export {KEYS_VARIABLE}=$(openssl rand -hex 32)`, several separated by commas) \
             or in a file (`--api-key-file PATH` or {KEY_FILE_VARIABLE}, one key a line), \
             or listen on 127.0.0.1"
        );
    }
    Ok(state)
}

/// Serves until `shutdown` completes (after [`secure`]).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let local = listener.local_addr().context("reading the bound address")?;
    let state = secure(state, local)?;
    run(listener, state, shutdown).await
}

async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    match state.tls().cloned() {
        None => {
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, router(state))
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(tls) => {
            let listener = TlsListener::new(listener, &tls)?;
            axum::serve(listener, router(state))
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
    .context("serving HTTP")
}

/// Connections that finished their TLS handshake. Handshakes run in tasks
/// of their own, so a slow client never holds up the others.
struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    fn new(listener: TcpListener, tls: &Tls) -> Result<TlsListener> {
        let local = listener.local_addr().context("reading the bound address")?;
        let acceptor = TlsAcceptor::from(tls.config.clone());
        let (sender, ready) = tokio::sync::mpsc::channel(64);
        let accepting = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Out of file descriptors and the like: wait, retry.
                        tracing::warn!("accepting a connection: {err}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let sender = sender.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = sender.send((stream, peer)).await;
                        }
                        Ok(Err(err)) => tracing::debug!("TLS handshake with {peer}: {err}"),
                        Err(_) => tracing::debug!("TLS handshake with {peer}: timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            ready,
            local,
            accepting,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accepting task ended: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// A server running on its own thread; dropping it stops the server.
pub struct ServerHandle {
    pub addr: SocketAddr,
    /// `http` or `https`.
    pub scheme: &'static str,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerHandle {
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
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
/// API does not compete with the caller for every core), after
/// [`secure`].
pub fn spawn(addr: &str, state: AppState) -> Result<ServerHandle> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("lake-serve")
        .enable_all()
        .build()
        .context("starting the server's runtime")?;
    let listener = runtime.block_on(bind(addr))?;
    let local = listener.local_addr().context("reading the bound address")?;
    let state = secure(state, local)?;
    let scheme = if state.tls().is_some() {
        "https"
    } else {
        "http"
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("lake-serve".into())
        .spawn(move || {
            let result = runtime.block_on(run(listener, state, async {
                let _ = stopped.await;
            }));
            if let Err(err) = result {
                tracing::error!("the HTTP server stopped: {err:#}");
            }
        })
        .context("starting the server's thread")?;
    Ok(ServerHandle {
        addr: local,
        scheme,
        stop: Some(stop),
        thread: Some(thread),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses() {
        for addr in [
            "127.0.0.1:80",
            "127.8.9.1:80",
            "[::1]:80",
            "[::ffff:127.0.0.1]:80",
        ] {
            assert!(is_loopback(addr.parse().unwrap()), "{addr}");
        }
        for addr in [
            "0.0.0.0:80",
            "[::]:80",
            "10.0.0.1:80",
            "[::ffff:10.0.0.1]:80",
        ] {
            assert!(!is_loopback(addr.parse().unwrap()), "{addr}");
        }
    }
}
