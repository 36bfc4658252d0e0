//! `cargo xtask test`: every test of the workspace, in the release profile
//! the pipeline and benchmarks use (one Polars build serves all).

use std::process::Command;

use anyhow::{Context, Result, bail};

/// Runs `cargo test --release --workspace`, passing `args` to the test
/// binaries.
pub fn run_tests(args: &[String]) -> Result<()> {
    if std::env::var_os("LAKE_NORTHWIND_SQL").is_none() {
        eprintln!(
            "note: LAKE_NORTHWIND_SQL is not set; the standard-dump compatibility test will fail \
             until it points at the standard Northwind dump for PostgreSQL"
        );
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    // `cargo run` describes the xtask package to it through CARGO_PKG_*,
    // CARGO_MANIFEST_DIR... Build scripts that watch such variables would
    // see them change and rebuild half the dependency tree (Polars
    // included), so the nested cargo gets the caller's environment back.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || matches!(
                name.as_ref(),
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "OUT_DIR"
            )
        {
            command.env_remove(name.as_ref());
        }
    }
    command.args(["test", "--release", "--workspace", "--no-fail-fast"]);
    if !args.is_empty() {
        command.arg("--").args(args);
    }
    let status = command.status().context("running cargo test")?;
    if !status.success() {
        bail!("tests failed ({status})");
    }
    Ok(())
}
