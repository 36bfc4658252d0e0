//! Headless Chromium for browser tests, driven over WebDriver: ChromeDriver
//! (`LAKE_CHROMEDRIVER`, else `/usr/bin/chromedriver` from Debian's
//! `chromium-driver`) started on a free loopback port, and the capabilities
//! that run Chromium (`LAKE_CHROMIUM`, else `/usr/bin/chromium`) headless
//! with a fresh profile and no background networking.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

/// A running ChromeDriver, stopped on drop.
pub struct ChromeDriver {
    pub url: String,
    pub chromium: PathBuf,
    child: Child,
    _profile: tempfile::TempDir,
}

fn binary(variable: &str, default: &str, package: &str) -> Result<PathBuf> {
    let path = std::env::var(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(default));
    if !path.exists() {
        bail!(
            "{} not found: install Debian's {package} (`apt-get install chromium chromium-driver`) or set {variable}",
            path.display()
        );
    }
    Ok(path)
}

impl ChromeDriver {
    pub fn start() -> Result<ChromeDriver> {
        let driver = binary(
            "LAKE_CHROMEDRIVER",
            "/usr/bin/chromedriver",
            "chromium-driver",
        )?;
        let chromium = binary("LAKE_CHROMIUM", "/usr/bin/chromium", "chromium")?;
        let port = crate::unique::free_port();
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", driver.display()))?;
        let mut started = ChromeDriver {
            url: format!("http://127.0.0.1:{port}"),
            chromium,
            child,
            _profile: tempfile::Builder::new()
                .prefix("lake-test-chromium-")
                .tempdir()
                .context("creating a Chromium profile directory")?,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = started.child.try_wait() {
                bail!("ChromeDriver exited at start: {status}");
            }
            if Instant::now() > deadline {
                bail!("ChromeDriver did not listen on port {port} within 20 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(started)
    }

    /// WebDriver capabilities of a headless Chromium session.
    pub fn capabilities(&self) -> Map<String, Value> {
        let mut capabilities = Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": self.chromium.display().to_string(),
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--window-size=1280,1600",
                    format!("--user-data-dir={}", self._profile.path().display()),
                ],
            }),
        );
        capabilities
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
