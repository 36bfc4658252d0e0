//! PostgreSQL for tests: `LAKE_TEST_PG_URL`, else a private cluster started
//! from the native binaries (`LAKE_PG_BIN_DIR`, `pg_config --bindir`, or
//! `/usr/lib/postgresql/*/bin`), with password authentication over TCP and
//! TLS enabled, so wrong-password and TLS tests mean something.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::process::{Watchdog, stop_by_pid_file};
use crate::{free_port, unique_suffix};

/// Password of the `postgres` role of a private cluster.
pub const TEST_PASSWORD: &str = "lake-test-secret";

/// A PostgreSQL server the tests may create databases on.
pub struct PgServer {
    /// `postgresql://user:password@host:port` (no database).
    base_url: String,
    /// Root certificate that verifies the server's TLS certificate (private
    /// clusters only).
    pub root_cert: Option<PathBuf>,
    /// Host and port, for building URLs with other credentials.
    pub host: String,
    pub port: u16,
    _watchdog: Option<Watchdog>,
    _container: Option<testcontainers::Container<testcontainers::GenericImage>>,
}

/// A database created for one test, dropped when the value is dropped.
pub struct TestDb {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.admin_url, postgres::NoTls) {
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ));
        }
    }
}

static SERVER: OnceLock<std::result::Result<PgServer, String>> = OnceLock::new();

/// The test process's PostgreSQL server, started on first use.
pub fn pg_server() -> &'static PgServer {
    let server = SERVER.get_or_init(|| PgServer::obtain().map_err(|err| format!("{err:#}")));
    match server {
        Ok(server) => server,
        Err(err) => panic!(
            "PostgreSQL is needed by this test and could not be had: {err}\n\
             Provide one with LAKE_TEST_PG_URL=postgresql://user:password@host:port (a role allowed to \
             create databases), or install the server binaries (apt-get install postgresql) so the test \
             can start a private one, or point LAKE_PG_BIN_DIR at them."
        ),
    }
}

impl PgServer {
    fn obtain() -> Result<PgServer> {
        if let Ok(url) = std::env::var("LAKE_TEST_PG_URL") {
            return Self::external(url.trim_end_matches('/'));
        }
        if crate::docker::docker_answers() {
            let (container, port) = crate::docker::postgres(TEST_PASSWORD)?;
            let base_url = format!("postgresql://postgres:{TEST_PASSWORD}@127.0.0.1:{port}");
            let deadline = Instant::now() + Duration::from_secs(60);
            while postgres::Client::connect(&format!("{base_url}/postgres"), postgres::NoTls)
                .is_err()
            {
                if Instant::now() > deadline {
                    bail!("the PostgreSQL container did not accept connections");
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            return Ok(PgServer {
                base_url,
                root_cert: None,
                host: "127.0.0.1".into(),
                port,
                _watchdog: None,
                _container: Some(container),
            });
        }
        Self::start_native()
    }

    fn external(url: &str) -> Result<PgServer> {
        let parsed: postgres::Config = url
            .parse()
            .context("LAKE_TEST_PG_URL is not a PostgreSQL URL")?;
        let host = match parsed.get_hosts().first() {
            Some(postgres::config::Host::Tcp(host)) => host.clone(),
            _ => "127.0.0.1".into(),
        };
        let port = parsed.get_ports().first().copied().unwrap_or(5432);
        // Keep only scheme, credentials and address.
        let base = match url.find('?') {
            Some(i) => &url[..i],
            None => url,
        };
        let base = match base.rfind('/') {
            Some(i) if i > "postgresql://".len() => &base[..i],
            _ => base,
        };
        Ok(PgServer {
            base_url: base.to_string(),
            root_cert: None,
            host,
            port,
            _watchdog: None,
            _container: None,
        })
    }

    fn start_native() -> Result<PgServer> {
        let bin = find_bin_dir()?;
        let dir = tempfile::Builder::new()
            .prefix("lake-test-pg-")
            .tempdir()
            .context("creating the cluster directory")?
            .keep();
        let data = dir.join("data");
        let port = free_port();
        let as_postgres = running_as_root();
        let (uid, gid) = if as_postgres { postgres_ids()? } else { (0, 0) };
        if as_postgres {
            chown_recursive(&dir, uid, gid)?;
        }
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, TEST_PASSWORD).context("writing the password file")?;
        make_certificate(&dir)?;
        if as_postgres {
            chown_recursive(&dir, uid, gid)?;
        }
        let command = |program: &str| {
            let mut cmd = Command::new(bin.join(program));
            if as_postgres {
                cmd.uid(uid).gid(gid);
            }
            cmd
        };
        let output = command("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .context("running initdb")?;
        if !output.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        let log =
            std::fs::File::create(dir.join("postgres.log")).context("creating the server log")?;
        let log_err = log.try_clone().context("opening the server log")?;
        let mut server = command("postgres");
        server
            .arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(&dir)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ])
            .args(["-c", "ssl=on"])
            .arg("-c")
            .arg(format!(
                "ssl_cert_file={}",
                dir.join("server.crt").display()
            ))
            .arg("-c")
            .arg(format!("ssl_key_file={}", dir.join("server.key").display()))
            .args(["-c", "max_connections=200"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let child = server.spawn().context("starting postgres")?;
        let pid_file = data.join("postmaster.pid");
        let watchdog = Watchdog::spawn(&stop_by_pid_file(&pid_file, &dir))?;
        let base_url = format!("postgresql://postgres:{TEST_PASSWORD}@127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match postgres::Client::connect(&format!("{base_url}/postgres"), postgres::NoTls) {
                Ok(_) => break,
                Err(err) if Instant::now() > deadline => {
                    let log = std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default();
                    bail!("postgres did not become ready on port {port}: {err}\n{log}");
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        drop(child);
        Ok(PgServer {
            base_url,
            root_cert: Some(dir.join("server.crt")),
            host: "127.0.0.1".into(),
            port,
            _watchdog: Some(watchdog),
            _container: None,
        })
    }

    /// URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!("{}/{db}", self.base_url)
    }

    /// Creates an empty database for one test.
    pub fn create_db(&self, prefix: &str) -> TestDb {
        let name = format!("{prefix}_{}", unique_suffix());
        let admin_url = self.url("postgres");
        let mut client = postgres::Client::connect(&admin_url, postgres::NoTls)
            .unwrap_or_else(|err| panic!("connecting to the test PostgreSQL: {err}"));
        client
            .batch_execute(&format!(
                "CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'"
            ))
            .unwrap_or_else(|err| panic!("creating database {name}: {err}"));
        TestDb {
            url: self.url(&name),
            name,
            admin_url,
        }
    }
}

pub fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

/// PostgreSQL refuses to run as root: a root test process runs it as the
/// `postgres` user the server package creates.
pub fn postgres_ids() -> Result<(u32, u32)> {
    let id = |flag: &str| -> Result<u32> {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .context("running id")?;
        if !out.status.success() {
            bail!("running as root and there is no postgres user to run the server as");
        }
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| anyhow!("unexpected output of id {flag} postgres"))
    };
    Ok((id("-u")?, id("-g")?))
}

pub fn chown_recursive(dir: &Path, uid: u32, gid: u32) -> Result<()> {
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(dir)
        .status()
        .context("running chown")?;
    if !status.success() {
        bail!("chown of {} failed", dir.display());
    }
    Ok(())
}

/// A self-signed certificate for `localhost`, so TLS tests can verify it.
fn make_certificate(dir: &Path) -> Result<()> {
    let output = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=DNS:localhost"])
        .arg("-keyout")
        .arg(dir.join("server.key"))
        .arg("-out")
        .arg(dir.join("server.crt"))
        .output()
        .context("running openssl to make the test certificate")?;
    if !output.status.success() {
        bail!(
            "openssl failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    std::fs::set_permissions(
        dir.join("server.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .context("restricting the key's permissions")?;
    Ok(())
}

pub use lake_tools::find_pg_bin_dir as find_bin_dir;
