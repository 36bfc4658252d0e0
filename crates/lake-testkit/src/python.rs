//! The Python with the Delta Lake readers the interop tests run: delta-rs'
//! `deltalake`, DuckDB and its delta extension (`duckdb-ext-delta`).
//! `LAKE_INTEROP_PYTHON` when set, else the virtualenv `cargo xtask test`
//! installs under `cache_dir()/tools/python`.

use std::path::PathBuf;

/// The interpreter; a test without it fails saying how to provide it.
pub fn interop_python() -> PathBuf {
    if let Some(path) = std::env::var_os("LAKE_INTEROP_PYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let cached = lake_tools::cache_dir().join("tools/python/bin/python");
    if cached.exists() {
        return cached;
    }
    panic!(
        "no Python with the Delta Lake readers: run the tests with `cargo xtask test` (it installs \
         them into {}), or set LAKE_INTEROP_PYTHON to a python with deltalake==1.6.6, duckdb==1.4.4 \
         and duckdb-ext-delta==1.4.4.20260205",
        cached.display()
    );
}
