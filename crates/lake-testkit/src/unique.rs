//! What each test needs its own of: a free loopback port, a suffix for the
//! names of its databases, topics and folders.

use std::net::TcpListener;

/// A free TCP port on 127.0.0.1 (bound and released: a small race remains,
/// which the start-up checks catch).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|err| panic!("no free loopback port: {err}"))
}

/// A process-unique suffix for names of databases, topics, folders.
pub fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}
