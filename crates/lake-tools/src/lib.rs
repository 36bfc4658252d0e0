//! Where the tools the tests need are found: the cache folder `cargo xtask
//! test` installs them into, tansu, and the PostgreSQL server binaries.
//!
//! Shared by the `cargo xtask` launcher (which installs what is missing)
//! and `lake-testkit` (which starts the servers), with nothing but `std`
//! and `anyhow`, so the launcher builds in seconds on a fresh machine.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Result, anyhow, bail};

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
pub fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// The tansu binary: `LAKE_TANSU_BIN`, else `tansu` on the PATH, else the
/// copy setup installs under `cache_dir()/tools/bin`.
pub fn find_tansu() -> Result<PathBuf> {
    if let Ok(path) = std::env::var("LAKE_TANSU_BIN") {
        return Ok(PathBuf::from(path));
    }
    if let Ok(out) = Command::new("sh").args(["-c", "command -v tansu"]).output() {
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !path.is_empty() {
            return Ok(PathBuf::from(path));
        }
    }
    let cached = cache_dir().join("tools/bin/tansu");
    if cached.exists() {
        return Ok(cached);
    }
    bail!("no tansu binary found")
}

/// The folder of the PostgreSQL server binaries (`initdb`, `postgres`):
/// `LAKE_PG_BIN_DIR`, else `pg_config --bindir`, else the newest of
/// Debian's `/usr/lib/postgresql/*/bin`.
pub fn find_pg_bin_dir() -> Result<PathBuf> {
    if let Ok(dir) = std::env::var("LAKE_PG_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() && dir.join("postgres").exists() {
            return Ok(dir);
        }
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    candidates.sort();
    candidates
        .into_iter()
        .rev()
        .find(|dir| dir.join("initdb").exists())
        .ok_or_else(|| anyhow!("no PostgreSQL server binaries found (initdb, postgres)"))
}
