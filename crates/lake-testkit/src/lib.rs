//! Real services for integration tests.
//!
//! Each service comes, in order of preference, from an address in the
//! environment (`LAKE_TEST_PG_URL`, ...), from a container when a Docker
//! engine answers (testcontainers), or from a native binary started on a
//! free loopback port in a temporary directory. A started service is
//! stopped, and its directory removed, when the test process exits, however
//! it exits: a watchdog process waits for the end of a pipe the test process
//! holds. A service that cannot be had fails the test with a message saying
//! how to provide it; no test passes silently without its service.

pub mod browser;
pub mod docker;
pub mod kafka_server;
pub mod postgres_server;
pub mod process;
pub mod python;
pub mod s3_server;
pub mod unique;

pub use kafka_server::{KafkaServer, kafka_server};
pub use postgres_server::{PgServer, TestDb, pg_server};
pub use s3_server::{S3Server, own_s3_server, s3_server};
pub use unique::{free_port, unique_suffix};

/// Where the tools are (shared with the `cargo xtask` launcher).
pub use lake_tools::{cache_dir, resolve_cache_dir};
