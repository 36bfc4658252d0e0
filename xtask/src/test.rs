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
