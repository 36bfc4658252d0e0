//! `cargo xtask`: the launcher. `cargo xtask test` sets up the tools the
//! tests need and runs every test; every other command (`pipeline`, `seed`,
//! `serve`, `bench`, `lake`, `up`, `down`) is `lake-tasks`'s, built and run
//! with `cargo run --release -p lake-tasks`.
//!
//! The launcher depends on nothing heavy, so on a fresh machine it runs in
//! seconds: the test setup starts tansu's half-hour install before the
//! workspace (Polars included) starts building, and the two overlap.

mod cargo;
mod setup;
mod tansu_install;
mod test;

use std::process::ExitCode;

use anyhow::{Context, Result};

const HELP: &str = "\
cargo xtask test [-- TEST ARGS]   set up the tools the tests need (installed into the
                                  cache folder, LAKE_CACHE_DIR), then run every test
cargo xtask COMMAND ...           pipeline, seed, serve, bench, lake, up, down: run by
                                  lake-tasks (`cargo xtask help` lists them; its first
                                  build compiles Polars, about 30 minutes on 2 cores)
";

/// Runs `lake-tasks` with `args`; its exit status.
fn lake_tasks(args: &[String]) -> Result<ExitCode> {
    eprintln!(
        "xtask: cargo run --release -p lake-tasks (the first build compiles Polars: about 30 minutes on 2 cores, with cargo's progress below)"
    );
    let status = cargo::cargo()
        .args([
            "run",
            "--release",
            "--package",
            "lake-tasks",
            "--bin",
            "lake-tasks",
            "--",
        ])
        .args(args)
        .status()
        .context("running cargo run -p lake-tasks")?;
    // A signal's death has no code: report it as a failure.
    Ok(ExitCode::from(
        status.code().map_or(1, |code| code.clamp(0, 255) as u8),
    ))
}

fn run(args: &[String]) -> Result<ExitCode> {
    match args.first().map(String::as_str) {
        Some("test") => {
            let rest = match args.get(1).map(String::as_str) {
                Some("--") => &args[2..],
                _ => &args[1..],
            };
            test::run_tests(rest)?;
            Ok(ExitCode::SUCCESS)
        }
        None | Some("-h") | Some("--help") => {
            print!("{HELP}");
            Ok(ExitCode::SUCCESS)
        }
        Some(_) => lake_tasks(args),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
