//! Real services for integration tests.
//!
//! Each service comes, in order of preference, from an address in the
//! environment (`LAKE_TEST_PG_URL`, ...), from a container when a Docker
//! engine answers (testcontainers), or from a native binary started on a
//! free loopback port in a temporary directory. A started service is
//! stopped, and its directory removed, when the test process exits, however
//! it exits: a watchdog process waits for the end of a pipe the test process
//! holds. A service that cannot be had fails the test with a message saying
//! how to provide it; no test passes silently without its service.

pub mod browser;
pub mod docker;
pub mod kafka_server;
pub mod postgres_server;
pub mod process;
pub mod python;
pub mod s3_server;

pub use kafka_server::{KafkaServer, kafka_server};
pub use postgres_server::{PgServer, TestDb, pg_server};
pub use s3_server::{S3Server, own_s3_server, s3_server};

use std::net::TcpListener;
use std::path::PathBuf;

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

/// The folder `cargo xtask test` installs tools into and reuses across runs:
/// `LAKE_CACHE_DIR` when set; else `/var/cache/lake` for root; else
/// `$XDG_CACHE_HOME/lake` or `$HOME/.cache/lake`. The testkit's fallbacks
/// look there too, so tests find what setup installed.
pub fn cache_dir() -> PathBuf {
    resolve_cache_dir(|name| std::env::var_os(name), effective_uid() == Some(0))
}

/// [`cache_dir`] for a given environment and user (root or not).
pub fn resolve_cache_dir(var: impl Fn(&str) -> Option<std::ffi::OsString>, root: bool) -> PathBuf {
    let set = |name: &str| var(name).filter(|value| !value.is_empty());
    if let Some(dir) = set("LAKE_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if root {
        return PathBuf::from("/var/cache/lake");
    }
    // A relative XDG_CACHE_HOME is invalid by the specification: ignored.
    if let Some(dir) = set("XDG_CACHE_HOME").map(PathBuf::from)
        && dir.is_absolute()
    {
        return dir.join("lake");
    }
    match set("HOME") {
        Some(home) => PathBuf::from(home).join(".cache").join("lake"),
        None => std::env::temp_dir().join("lake-cache"),
    }
}

/// The process's effective user id, from the `Uid:` line of
/// `/proc/self/status` (real, effective, saved, filesystem).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}
