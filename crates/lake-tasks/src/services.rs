//! `cargo xtask up` / `cargo xtask down`: the real stack for local work.
//!
//! Where a Docker engine answers, `compose/docker-compose.yml` (PostgreSQL
//! with Northwind, Kafka, MinIO). Otherwise the same three as native
//! processes, as CI runs them: a private PostgreSQL cluster, the tansu
//! broker and SeaweedFS, each in `.lake-services/` with its log, started in
//! their own process group so they outlive this command; `down` stops them
//! by the PIDs `up` recorded.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

const STATE_DIR: &str = ".lake-services";
const PG_PASSWORD: &str = "lake";
use lake_stream::config::TOPIC;

fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// `preferred` when free, else any free port.
fn choose_port(preferred: u16) -> u16 {
    if port_free(preferred) {
        preferred
    } else {
        lake_testkit::free_port()
    }
}

fn spawn_detached(mut command: Command, log: &Path) -> Result<u32> {
    let out = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone()?;
    let child = command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {:?}", command.get_program()))?;
    Ok(child.id())
}

/// The variables that point the binaries at the stack.
fn exports(
    pg_port: u16,
    kafka_port: u16,
    s3_port: u16,
    access: &str,
    secret: &str,
) -> Vec<(String, String)> {
    vec![
        (
            "LAKE_PG_URL".into(),
            format!("postgresql://lake:{PG_PASSWORD}@127.0.0.1:{pg_port}/northwind"),
        ),
        (
            "LAKE_KAFKA_BROKERS".into(),
            format!("127.0.0.1:{kafka_port}"),
        ),
        ("LAKE_KAFKA_TOPIC".into(), TOPIC.into()),
        ("LAKE_URL".into(), "s3://".into()),
        (
            "AWS_ENDPOINT_URL".into(),
            format!("http://127.0.0.1:{s3_port}"),
        ),
        ("AWS_ACCESS_KEY_ID".into(), access.into()),
        ("AWS_SECRET_ACCESS_KEY".into(), secret.into()),
        ("AWS_REGION".into(), "us-east-1".into()),
    ]
}

/// `header`, then one `export NAME=VALUE` line per variable.
fn exports_text(header: &str, env: &[(String, String)]) -> String {
    let mut text = format!("# {header}; point the lake at it with:\n");
    for (name, value) in env {
        text.push_str(&format!("export {name}={value}\n"));
    }
    text
}

/// Records the stack `up` started, with its exports, so that `down` can
/// stop it and a second `up` can print them again.
fn save_state(
    state: &Path,
    mut record: serde_json::Value,
    env: Option<&[(String, String)]>,
) -> Result<()> {
    if let Some(env) = env {
        record["env"] = json!(env);
    }
    let path = state.join("state.json");
    std::fs::write(&path, record.to_string()).with_context(|| format!("writing {}", path.display()))
}

fn process_alive(pid: u64) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The exports of the stack already running from `state`, when there is
/// one: a second `up` prints them again rather than refusing. A stack that
/// stopped (its processes gone) or never came up is refused with the way
/// out.
fn running_stack(state: &Path) -> Result<Option<String>> {
    let path = state.join("state.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    };
    let parsed: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    let env: Option<Vec<(String, String)>> = serde_json::from_value(parsed["env"].clone()).ok();
    let Some(env) = env else {
        // Written by an `up` that failed before the stack answered (or
        // by a build that did not record the exports).
        bail!(
            "a stack is recorded in {} without its exports (its `up` failed, or an older \
             build started it); run `cargo xtask down` first",
            state.display()
        );
    };
    if let Some(gone) = parsed["pids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_u64())
        .find(|pid| !process_alive(*pid))
    {
        bail!(
            "the stack recorded in {} is not running (process {gone} has stopped); \
             run `cargo xtask down`, then `cargo xtask up`",
            state.display()
        );
    }
    Ok(Some(exports_text(
        &format!("the stack is already running ({})", state.display()),
        &env,
    )))
}

pub fn up(repo: &Path) -> Result<()> {
    let state = repo.join(STATE_DIR);
    if let Some(exports) = running_stack(&state)? {
        print!("{exports}");
        return Ok(());
    }
    if lake_testkit::docker::docker_answers() {
        let status = Command::new("docker")
            .args(["compose", "-f"])
            .arg(repo.join("compose/docker-compose.yml"))
            .args(["up", "-d", "--wait"])
            .status()
            .context("running docker compose")?;
        if !status.success() {
            bail!("docker compose up failed");
        }
        std::fs::create_dir_all(&state)?;
        let env = exports(5433, 29092, 9000, "lakeadmin", "lakeadmin-secret");
        save_state(&state, json!({"mode": "compose"}), Some(&env))?;
        print!("{}", exports_text("the stack is up", &env));
        return Ok(());
    }
    std::fs::create_dir_all(&state)?;
    let mut pids = Vec::new();
    let result = start_native(&state, &mut pids);
    // The PIDs are recorded even when a service failed to start: `down`
    // stops the ones that did. The exports only with a stack that answers.
    let env = result.as_ref().ok().map(Vec::as_slice);
    save_state(&state, json!({"mode": "native", "pids": pids}), env)?;
    let env = result?;
    print!("{}", exports_text("the stack is up", &env));
    Ok(())
}

fn start_native(state: &Path, pids: &mut Vec<u32>) -> Result<Vec<(String, String)>> {
    // PostgreSQL with Northwind.
    let pg_dir = state.join("postgres");
    let pg_port = choose_port(5433);
    let bin = lake_testkit::postgres_server::find_bin_dir()?;
    let as_postgres = lake_testkit::postgres_server::running_as_root();
    let ids = if as_postgres {
        Some(lake_testkit::postgres_server::postgres_ids()?)
    } else {
        None
    };
    let command = |program: &str| {
        let mut cmd = Command::new(bin.join(program));
        if let Some((uid, gid)) = ids {
            cmd.uid(uid).gid(gid);
        }
        cmd
    };
    if !pg_dir.join("data").exists() {
        std::fs::create_dir_all(&pg_dir)?;
        std::fs::write(pg_dir.join("pwfile"), PG_PASSWORD)?;
        if let Some((uid, gid)) = ids {
            lake_testkit::postgres_server::chown_recursive(&pg_dir, uid, gid)?;
        }
        let out = command("initdb")
            .arg("-D")
            .arg(pg_dir.join("data"))
            .args([
                "-U",
                "lake",
                "-E",
                "UTF8",
                "--locale=C",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .arg(format!("--pwfile={}", pg_dir.join("pwfile").display()))
            .output()
            .context("running initdb")?;
        if !out.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    let mut postgres = command("postgres");
    postgres
        .arg("-D")
        .arg(pg_dir.join("data"))
        .args(["-p", &pg_port.to_string(), "-k"])
        .arg(&pg_dir)
        .args(["-c", "listen_addresses=127.0.0.1"]);
    pids.push(spawn_detached(postgres, &state.join("postgres.log"))?);
    let admin: lake_pg::url::PgUrl =
        format!("postgresql://lake:{PG_PASSWORD}@127.0.0.1:{pg_port}/postgres?sslmode=disable")
            .parse()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut client = loop {
        match admin.connect() {
            Ok(client) => break client,
            Err(err) if Instant::now() > deadline => bail!("PostgreSQL did not start: {err}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = 'northwind'", &[])
        .context("listing databases")?
        .is_some();
    if !exists {
        client.batch_execute("CREATE DATABASE northwind")?;
        let url = format!("postgresql://lake:{PG_PASSWORD}@127.0.0.1:{pg_port}/northwind");
        crate::seed::seed(
            &url.parse()?,
            1,
            lake_core::config::DEFAULT_GENERATOR_SEED,
            false,
        )?;
    }

    // Kafka (tansu) with the topic.
    let kafka_dir = state.join("kafka");
    std::fs::create_dir_all(&kafka_dir)?;
    let kafka_port = choose_port(9092);
    let tansu = lake_testkit::kafka_server::tansu_broker(
        &lake_testkit::kafka_server::find_tansu()?,
        &kafka_dir,
        kafka_port,
    );
    pids.push(spawn_detached(tansu, &state.join("kafka.log"))?);
    let kafka = lake_testkit::KafkaServer::attach(&format!("127.0.0.1:{kafka_port}"));
    kafka.wait_ready(Duration::from_secs(30))?;
    if let Err(err) = kafka.create_named_topic(TOPIC, 4) {
        // Restarted on an existing data directory: the topic is there.
        tracing::info!("topic {TOPIC}: {err:#}");
    }

    // S3 (SeaweedFS) with the layer buckets.
    let s3_dir = state.join("s3");
    std::fs::create_dir_all(&s3_dir)?;
    let (access, secret) = (
        lake_testkit::s3_server::ACCESS_KEY,
        lake_testkit::s3_server::SECRET_KEY,
    );
    std::fs::write(
        s3_dir.join("s3.json"),
        json!({"identities": [{"name": access, "credentials": [{"accessKey": access, "secretKey": secret}],
               "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]})
        .to_string(),
    )?;
    let [s3, master, filer, volume, admin_port] = lake_testkit::s3_server::free_ports()?;
    let weed = lake_testkit::s3_server::weed_mini(
        &lake_testkit::s3_server::find_weed()?,
        &s3_dir,
        [s3, master, filer, volume, admin_port],
    );
    pids.push(spawn_detached(weed, &state.join("s3.log"))?);
    lake_testkit::S3Server::attach(&format!("http://127.0.0.1:{s3}"), access, secret)
        .wait_ready(Duration::from_secs(60))?;
    Ok(exports(pg_port, kafka_port, s3, access, secret))
}

pub fn down(repo: &Path) -> Result<()> {
    let state: PathBuf = repo.join(STATE_DIR);
    let Ok(text) = std::fs::read_to_string(state.join("state.json")) else {
        println!("no stack is up");
        return Ok(());
    };
    let parsed: serde_json::Value =
        serde_json::from_str(&text).context("reading the stack's state")?;
    let compose = parsed["mode"] == "compose";
    println!("{}", what_down_deletes(&state, compose));
    if compose {
        let status = Command::new("docker")
            .args(["compose", "-f"])
            .arg(repo.join("compose/docker-compose.yml"))
            .arg("down")
            .status()
            .context("running docker compose")?;
        if !status.success() {
            bail!("docker compose down failed");
        }
    } else {
        for pid in parsed["pids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p.as_u64())
        {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline && process_alive(pid) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    std::fs::remove_dir_all(&state).with_context(|| format!("removing {}", state.display()))?;
    println!("the stack is down");
    Ok(())
}

/// What `down` deletes, said before it deletes it: the native stack's data
/// lives in its state folder, the S3 lake included; compose keeps its
/// named volumes.
fn what_down_deletes(state: &Path, compose: bool) -> String {
    if compose {
        format!(
            "stopping the compose stack and removing its containers; its named volumes \
             (postgres-data, kafka-data, minio-data: the Northwind database, the topic's events \
             and the S3 lake) are kept, `docker compose -f compose/docker-compose.yml down -v` \
             deletes them; deleting {}",
            state.display()
        )
    } else {
        format!(
            "stopping PostgreSQL, tansu and SeaweedFS and deleting {} with all their data: \
             the Northwind database, the topic's events and the S3 lake (every layer's bucket)",
            state.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        exports(5433, 9092, 8333, "access", "secret")
    }

    #[test]
    fn a_second_up_prints_the_running_stacks_exports_again() {
        let repo = tempfile::tempdir().unwrap();
        let state = repo.path().join(STATE_DIR);
        std::fs::create_dir_all(&state).unwrap();
        // This test's process stands for the stack's: it is running.
        let pids = json!([std::process::id()]);
        save_state(
            &state,
            json!({"mode": "native", "pids": pids}),
            Some(&env()),
        )
        .unwrap();
        let text = running_stack(&state).unwrap().unwrap();
        assert!(
            text.starts_with("# the stack is already running ("),
            "{text}"
        );
        assert!(
            text.contains("export LAKE_KAFKA_BROKERS=127.0.0.1:9092\n"),
            "{text}"
        );
        assert_eq!(
            text.lines().filter(|l| l.starts_with("export ")).count(),
            env().len()
        );
        // up itself prints them and succeeds, starting nothing.
        up(repo.path()).unwrap();
    }

    #[test]
    fn a_stopped_or_half_started_stack_is_refused_with_the_way_out() {
        let repo = tempfile::tempdir().unwrap();
        let state = repo.path().join(STATE_DIR);
        std::fs::create_dir_all(&state).unwrap();
        assert_eq!(running_stack(&state).unwrap(), None);
        // A process that has ended: its PID is gone.
        let mut child = Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        save_state(
            &state,
            json!({"mode": "native", "pids": [gone]}),
            Some(&env()),
        )
        .unwrap();
        let err = running_stack(&state).unwrap_err().to_string();
        assert!(
            err.contains(&format!("process {gone} has stopped")),
            "{err}"
        );
        assert!(err.contains("cargo xtask down"), "{err}");
        // An up that failed before the stack answered recorded no exports.
        save_state(&state, json!({"mode": "native", "pids": []}), None).unwrap();
        let err = running_stack(&state).unwrap_err().to_string();
        assert!(err.contains("without its exports"), "{err}");
    }

    #[test]
    fn down_says_it_deletes_the_lake() {
        let state = Path::new("/repo/.lake-services");
        let native = what_down_deletes(state, false);
        assert!(native.contains("deleting /repo/.lake-services"), "{native}");
        assert!(native.contains("the S3 lake"), "{native}");
        let compose = what_down_deletes(state, true);
        assert!(compose.contains("down -v"), "{compose}");
    }
}
