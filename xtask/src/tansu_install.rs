//! tansu's `cargo install` in the background: the first `cargo xtask test`
//! on a machine builds the broker (about half an hour on 2 cores, most of
//! it one crate on one core) while it builds the workspace's tests, and
//! waits for it only before running them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How often progress is printed while the install runs.
const PROGRESS_EVERY: Duration = Duration::from_secs(60);

/// A running `cargo install tansu`.
pub struct TansuInstall {
    child: Child,
    log: PathBuf,
    target: PathBuf,
    bin: PathBuf,
    started: Instant,
    printing: Arc<AtomicBool>,
}

impl TansuInstall {
    /// Starts `cargo install tansu --version V --locked --features F --root
    /// {tools}` with its own target folder under `cache`, its output to
    /// `cache/tansu-install.log`.
    pub fn start(
        cache: &Path,
        tools: &Path,
        version: &str,
        features: &str,
    ) -> Result<TansuInstall> {
        let log = cache.join("tansu-install.log");
        let target = cache.join("tansu-target");
        let output =
            fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let errors = output.try_clone()?;
        let child = crate::cargo::cargo()
            .current_dir(cache)
            .env("CARGO_TARGET_DIR", &target)
            .args(["install", "tansu", "--version", version, "--locked"])
            .args(["--features", features, "--root"])
            .arg(tools)
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(errors)
            .spawn()
            .context("starting cargo install tansu")?;
        eprintln!(
            "setup: installing tansu {version} in the background (about half an hour on 2 cores \
             the first time; later runs reuse it); its log: {}",
            log.display()
        );
        let install = TansuInstall {
            child,
            bin: tools.join("bin/tansu"),
            log,
            target,
            started: Instant::now(),
            printing: Arc::new(AtomicBool::new(true)),
        };
        install.print_progress_meanwhile();
        Ok(install)
    }

    /// Prints the install's progress every minute until it is waited for.
    fn print_progress_meanwhile(&self) {
        let (log, printing, started) = (self.log.clone(), self.printing.clone(), self.started);
        std::thread::spawn(move || {
            let mut last = Instant::now();
            while printing.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(500));
                if last.elapsed() >= PROGRESS_EVERY && printing.load(Ordering::SeqCst) {
                    eprintln!(
                        "setup: tansu install: {}",
                        progress(&log, started.elapsed())
                    );
                    last = Instant::now();
                }
            }
        });
    }

    /// Waits for the install; the broker's path.
    pub fn wait(mut self) -> Result<PathBuf> {
        let status = self
            .child
            .wait()
            .context("waiting for cargo install tansu")?;
        self.printing.store(false, Ordering::SeqCst);
        if !status.success() {
            bail!(
                "cargo install tansu failed ({status}); the end of {}:\n{}",
                self.log.display(),
                tail(&self.log, 20)
            );
        }
        if !self.bin.exists() {
            bail!(
                "cargo install tansu succeeded but {} is missing",
                self.bin.display()
            );
        }
        // Its build tree is several GB the tests never need.
        if let Err(err) = fs::remove_dir_all(&self.target) {
            eprintln!("setup: could not remove {}: {err}", self.target.display());
        }
        eprintln!(
            "setup: tansu: {} (installed in {} s)",
            self.bin.display(),
            self.started.elapsed().as_secs()
        );
        Ok(self.bin.clone())
    }
}

/// "143 crates compiled in 612 s, now tansu-sans-io".
fn progress(log: &Path, elapsed: Duration) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let compiling: Vec<&str> = text
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("Compiling "))
        .collect();
    let current = compiling
        .last()
        .and_then(|c| c.split_whitespace().next())
        .unwrap_or("resolving dependencies");
    format!(
        "{} crates compiled in {} s, now {current}",
        compiling.len().saturating_sub(1),
        elapsed.as_secs()
    )
}

fn tail(log: &Path, lines: usize) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_names_the_crate_being_compiled() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        fs::write(
            &log,
            "    Updating crates.io index\n   Compiling libc v0.2.1\n   Compiling tansu-sans-io v0.6.0\n",
        )
        .unwrap();
        assert_eq!(
            progress(&log, Duration::from_secs(75)),
            "1 crates compiled in 75 s, now tansu-sans-io"
        );
        assert_eq!(
            progress(&dir.path().join("none"), Duration::ZERO),
            "0 crates compiled in 0 s, now resolving dependencies"
        );
    }
}
