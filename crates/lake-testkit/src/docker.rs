//! The services in containers, for machines where a Docker engine answers
//! (users' machines; this project's CI has none and uses native binaries).
//! Each container lives as long as the test process's handle on it.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, anyhow};
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::SyncRunner;
use testcontainers::{Container, GenericImage, ImageExt};

/// True when `docker info` succeeds.
pub fn docker_answers() -> bool {
    Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// PostgreSQL 16 with `password` for user postgres; returns the container
/// and its host port.
pub fn postgres(password: &str) -> Result<(Container<GenericImage>, u16)> {
    let container = GenericImage::new("postgres", "16")
        .with_exposed_port(5432.tcp())
        .with_wait_for(WaitFor::message_on_stderr(
            "database system is ready to accept connections",
        ))
        .with_env_var("POSTGRES_PASSWORD", password)
        .start()
        .map_err(|err| anyhow!("starting a PostgreSQL container: {err}"))?;
    let port = container
        .get_host_port_ipv4(5432.tcp())
        .map_err(|err| anyhow!("PostgreSQL container port: {err}"))?;
    Ok((container, port))
}

/// Apache Kafka in KRaft mode, advertised on a fixed host port.
pub fn kafka() -> Result<(Container<GenericImage>, String)> {
    let port = crate::unique::free_port();
    let container = GenericImage::new("apache/kafka", "3.9.0")
        .with_wait_for(WaitFor::message_on_stdout("Kafka Server started"))
        .with_mapped_port(port, 9092.tcp())
        .with_env_var("KAFKA_NODE_ID", "1")
        .with_env_var("KAFKA_PROCESS_ROLES", "broker,controller")
        .with_env_var("KAFKA_LISTENERS", "PLAINTEXT://:9092,CONTROLLER://:9093")
        .with_env_var(
            "KAFKA_ADVERTISED_LISTENERS",
            format!("PLAINTEXT://127.0.0.1:{port}"),
        )
        .with_env_var("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER")
        .with_env_var(
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
            "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        )
        .with_env_var("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@localhost:9093")
        .with_env_var("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1")
        .with_env_var("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env_var("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        .with_env_var("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
        .start()
        .map_err(|err| anyhow!("starting a Kafka container: {err}"))?;
    Ok((container, format!("127.0.0.1:{port}")))
}

/// MinIO with `buckets` (names separated by commas); returns the
/// container and endpoint.
pub fn minio(
    access_key: &str,
    secret_key: &str,
    buckets: &str,
) -> Result<(Container<GenericImage>, String)> {
    let container = GenericImage::new("minio/minio", "RELEASE.2025-04-22T22-12-26Z")
        .with_exposed_port(9000.tcp())
        .with_wait_for(WaitFor::message_on_stdout("API:"))
        .with_env_var("MINIO_ROOT_USER", access_key)
        .with_env_var("MINIO_ROOT_PASSWORD", secret_key)
        .with_cmd(["server", "/data"])
        .start()
        .map_err(|err| anyhow!("starting a MinIO container: {err}"))?;
    let port = container
        .get_host_port_ipv4(9000.tcp())
        .map_err(|err| anyhow!("MinIO container port: {err}"))?;
    let endpoint = format!("http://127.0.0.1:{port}");
    for bucket in buckets.split(',') {
        let status = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-X", "PUT", "--aws-sigv4", "aws:amz:us-east-1:s3"])
            .arg("--user")
            .arg(format!("{access_key}:{secret_key}"))
            .args(["-H", "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"])
            .arg(format!("{endpoint}/{bucket}"))
            .status()
            .context("running curl to create a bucket")?;
        if !status.success() {
            return Err(anyhow!("creating bucket {bucket} in MinIO failed"));
        }
    }
    Ok((container, endpoint))
}
