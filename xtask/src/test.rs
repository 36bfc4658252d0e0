//! `cargo xtask test`: every test of the workspace, in the release profile
//! the pipeline and benchmarks use (one Polars build serves all), after
//! [`crate::setup`] has made the tools they need available (tansu's first
//! install runs while the tests build).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cargo::cargo;
use crate::setup::seconds;

/// Sets the tools up, builds the tests (`cargo test --release --workspace
/// --no-run`), then runs them all, passing `args` to the test binaries, and
/// says how long each phase took.
pub fn run_tests(args: &[String]) -> Result<()> {
    let mut phases: Vec<(&str, Duration)> = Vec::new();
    let started = Instant::now();
    let prepared = crate::setup::prepare().context("setting up the tools the tests need")?;
    let mut env = prepared.env;
    phases.push(("setup", started.elapsed()));

    let started = Instant::now();
    let built = cargo()
        .envs(env.iter().cloned())
        .args(["test", "--release", "--workspace", "--no-run"])
        .status()
        .context("running cargo test --no-run")?;
    phases.push(("build", started.elapsed()));
    if !built.success() {
        report(&phases);
        bail!("building the tests failed ({built})");
    }
    if let Some(install) = prepared.tansu {
        let started = Instant::now();
        let tansu = install.wait()?;
        env.push(("LAKE_TANSU_BIN".into(), tansu.display().to_string()));
        phases.push(("waiting for tansu", started.elapsed()));
    }

    let started = Instant::now();
    let mut command = cargo();
    command
        .envs(env.iter().cloned())
        .args(["test", "--release", "--workspace", "--no-fail-fast"]);
    if !args.is_empty() {
        command.arg("--").args(args);
    }
    let status = command.status().context("running cargo test")?;
    phases.push(("tests", started.elapsed()));
    report(&phases);
    if !status.success() {
        bail!("tests failed ({status})");
    }
    Ok(())
}

/// "xtask test: setup 3 s, build 120 s, tests 300 s".
fn report(phases: &[(&str, Duration)]) {
    let parts: Vec<String> = phases
        .iter()
        .map(|(phase, duration)| format!("{phase} {}", seconds(*duration)))
        .collect();
    eprintln!("xtask test: {}", parts.join(", "));
}
