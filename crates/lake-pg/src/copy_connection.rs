//! Bulk reads of `COPY ... TO STDOUT`.
//!
//! PostgreSQL sends a COPY as one CopyData message per row, and the
//! blocking `postgres` client enters its runtime once per message: at scale
//! 1000 (3.1M rows) that took about a fifth of bronze's client CPU, on a
//! machine where bronze shares two cores with the server. A
//! [`CopyConnection`] drives tokio-postgres on a runtime of its own, and
//! its [`CopyOutRead`] fills the whole buffer it is given, with as many
//! messages as fit, per entry into the runtime.

use std::io::Read;
use std::pin::Pin;

use anyhow::{Context, Result};
use bytes::{Buf, Bytes};
use futures::StreamExt;
use tokio::runtime::Runtime;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, CopyOutStream, Row};

/// A connection for bulk reads, usable from blocking code.
pub struct CopyConnection {
    // Dropped first: a dropped client ends its connection task.
    client: Client,
    runtime: Runtime,
}

impl CopyConnection {
    /// `client` must have been connected inside `runtime`, with its
    /// connection task spawned there.
    pub(crate) fn new(client: Client, runtime: Runtime) -> CopyConnection {
        CopyConnection { client, runtime }
    }

    /// Runs statements without results.
    pub fn batch_execute(&self, sql: &str) -> Result<(), postgres::Error> {
        self.runtime.block_on(self.client.batch_execute(sql))
    }

    /// Runs a query and returns all its rows.
    pub fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        self.runtime.block_on(self.client.query(sql, params))
    }

    /// Starts `COPY ... TO STDOUT`; its bytes are read through the result.
    pub fn copy_out(&self, sql: &str) -> Result<CopyOutRead<'_>, postgres::Error> {
        let stream = self.runtime.block_on(self.client.copy_out(sql))?;
        Ok(CopyOutRead {
            runtime: &self.runtime,
            stream: Box::pin(stream),
            pending: Bytes::new(),
            ended: false,
        })
    }
}

/// The bytes of a running COPY.
pub struct CopyOutRead<'a> {
    runtime: &'a Runtime,
    stream: Pin<Box<CopyOutStream>>,
    /// What is left of the last message taken.
    pending: Bytes,
    ended: bool,
}

impl Read for CopyOutRead<'_> {
    /// Fills `out` unless the COPY ends first: once in the runtime, every
    /// message taken costs a channel receive, not a runtime entry.
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let CopyOutRead {
            runtime,
            stream,
            pending,
            ended,
        } = self;
        runtime.block_on(async {
            let mut filled = 0;
            while filled < out.len() {
                if !pending.has_remaining() {
                    if *ended {
                        break;
                    }
                    match stream.next().await {
                        Some(Ok(message)) => *pending = message,
                        Some(Err(err)) => return Err(std::io::Error::other(err)),
                        None => {
                            *ended = true;
                            break;
                        }
                    }
                }
                let taken = pending.len().min(out.len() - filled);
                out[filled..filled + taken].copy_from_slice(&pending[..taken]);
                pending.advance(taken);
                filled += taken;
            }
            Ok(filled)
        })
    }
}

/// A current-thread runtime for one [`CopyConnection`].
pub(crate) fn copy_runtime() -> Result<Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime of a PostgreSQL COPY connection")
}
