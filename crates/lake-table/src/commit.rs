//! Commits: the actions of one change to one table, committed with
//! Delta's optimistic concurrency.
//!
//! The next log entry is created only if absent (a local file system's
//! atomic create, S3's conditional put). delta-rs checks a lost race for
//! conflicts against the winning commits and retries by itself when there
//! is none; on a real conflict (the winner removed files this commit read,
//! changed the schema, or committed the same application transaction),
//! the change is rebuilt on the new latest version and tried again.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use chrono::{NaiveDate, Utc};
use deltalake_core::DeltaTableError;
use deltalake_core::kernel::transaction::{CommitBuilder, CommitProperties, TransactionError};
use deltalake_core::kernel::{Action, Add, MetadataExt, Transaction};
use deltalake_core::protocol::{DeltaOperation, OutputMode, SaveMode};
use deltalake_core::table::config::TablePropertiesExt as _;
use polars::prelude::Schema;
use serde_json::{Value, json};

use crate::delta_types::{delta_schema, needs_timestamp_ntz, stored_schema};
use crate::fault;
use crate::snapshot::{FileEntry, Snapshot};
use crate::stats::FileStats;
use crate::storage::block_on;
use crate::table::{PARTITION_COLUMN, Table, TableRef, delta_error};

/// Attempts of a change that keeps meeting real conflicts.
const MAX_ATTEMPTS: u32 = 30;

/// Log entries of tables written by the stream (commits every second or
/// so) are kept this long; batch tables keep Delta's default (30 days).
pub const STREAM_LOG_RETENTION: &str = "interval 2 days";

/// Who commits: the run, and whether it is the stream (a table it creates
/// keeps its log [`STREAM_LOG_RETENTION`]).
pub(crate) struct CommitBy<'a> {
    pub run_id: &'a str,
    pub streaming: bool,
}

/// An application transaction: the stream's way to make a replayed
/// micro-batch a no-op (Delta's `txn` action: an application id per query
/// and source partition, and the micro-batch number as version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    pub app_id: String,
    pub version: i64,
}

/// A data file written and not yet committed.
#[derive(Clone)]
pub(crate) struct NewFile {
    /// Relative to the table root.
    pub path: String,
    pub bytes: u64,
    pub stats: FileStats,
    pub modified_ms: i64,
}

/// What a commit does to its date.
pub(crate) enum Change {
    /// Remove the date's files, add the new ones.
    Replace,
    /// Add the new files, with the stream's transactions.
    Append(Vec<Txn>),
    /// Rewrite files without changing the data (`dataChange=false`).
    Compact {
        removed: Vec<FileEntry>,
        target_size: u64,
    },
}

/// A committed change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub table: TableRef,
    pub version: i64,
    pub date: NaiveDate,
    /// Rows and files the commit added.
    pub rows: u64,
    pub files: usize,
    pub bytes: u64,
    /// Rows and files it removed.
    pub removed_rows: u64,
    pub removed_files: usize,
}

impl std::fmt::Display for Commit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@v{} ({})", self.table, self.version, self.date)
    }
}

/// What committing a change did.
pub(crate) enum Outcome {
    Committed(Commit),
    /// An append whose transactions (some of them) the table already holds
    /// at that version or later: nothing was committed.
    AlreadyApplied(Vec<Txn>),
}

/// Commits `files` to `date` of `table` as `change`, with `extra` in the
/// commit's info.
pub(crate) fn commit(
    table: &Table,
    date: NaiveDate,
    by: &CommitBy<'_>,
    schema: Option<&Schema>,
    files: Vec<NewFile>,
    change: Change,
    extra: &serde_json::Map<String, Value>,
) -> Result<Outcome> {
    let name = table.table_ref().clone();
    let stored = schema.map(stored_schema).transpose()?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let snapshot = table.latest()?;
        if let (Change::Append(txns), Some(snapshot)) = (&change, &snapshot) {
            let mut applied = Vec::new();
            for txn in txns {
                if snapshot
                    .txn_version(&txn.app_id)?
                    .is_some_and(|done| done >= txn.version)
                {
                    applied.push(txn.clone());
                }
            }
            if !applied.is_empty() {
                return Ok(Outcome::AlreadyApplied(applied));
            }
        }
        let mut plan = Plan::new(
            &name,
            date,
            by,
            stored.as_ref(),
            &files,
            &change,
            snapshot.as_ref(),
        )?;
        for (key, value) in extra {
            plan.metadata.insert(key.clone(), value.clone());
        }
        fault::check("before_commit", &name.to_string())?;
        match plan.commit(table, snapshot.as_ref()) {
            Ok(version) => {
                return Ok(Outcome::Committed(Commit {
                    table: name,
                    version,
                    date,
                    rows: plan.rows,
                    files: files.len(),
                    bytes: files.iter().map(|f| f.bytes).sum(),
                    removed_rows: plan.removed_rows,
                    removed_files: plan.removed_files,
                }));
            }
            Err(CommitError::Conflict(reason)) if attempt < MAX_ATTEMPTS => {
                tracing::debug!(
                    "{name}: commit conflict ({reason}), retrying on the latest version"
                );
                // Spread competing writers apart a little more each time.
                let jitter = u64::from(uuid::Uuid::new_v4().as_u128() as u16 % 20);
                std::thread::sleep(Duration::from_millis(
                    u64::from(attempt.min(10)) * 5 + jitter,
                ));
            }
            Err(CommitError::Conflict(reason)) => {
                bail!(
                    "{name}: gave up committing {date} after {attempt} conflicting attempts ({reason})"
                )
            }
            Err(CommitError::Other(err)) => {
                return Err(err).with_context(|| format!("committing {name} {date}"));
            }
        }
    }
}

/// The actions and operation of one attempt.
pub(crate) struct Plan {
    pub(crate) actions: Vec<Action>,
    pub(crate) operation: DeltaOperation,
    pub(crate) metadata: HashMap<String, Value>,
    pub(crate) txns: Vec<Transaction>,
    /// Rows added and removed, for the commit's metrics.
    pub(crate) rows: u64,
    pub(crate) removed_rows: u64,
    pub(crate) removed_files: usize,
}

pub(crate) enum CommitError {
    /// Lost to a concurrent commit that conflicts: rebuild and retry.
    Conflict(String),
    Other(anyhow::Error),
}

impl Plan {
    fn new(
        table: &TableRef,
        date: NaiveDate,
        by: &CommitBy<'_>,
        stored: Option<&Schema>,
        files: &[NewFile],
        change: &Change,
        snapshot: Option<&Snapshot>,
    ) -> Result<Plan> {
        let day = date.format("%Y-%m-%d").to_string();
        let mut actions = Vec::new();
        let removes_all = match (change, snapshot) {
            (Change::Replace, Some(s)) => s.dates().iter().all(|d| *d == date),
            (Change::Replace, None) => true,
            _ => false,
        };
        actions.extend(schema_actions(
            table,
            stored,
            snapshot,
            removes_all,
            by.streaming,
        )?);

        let (mut removed_rows, mut removed_files) = (0u64, 0usize);
        let removed: Vec<&str> = match change {
            Change::Replace => snapshot
                .map(|s| s.files_of(date).map(|f| f.path.as_str()).collect())
                .unwrap_or_default(),
            Change::Compact { removed, .. } => removed.iter().map(|f| f.path.as_str()).collect(),
            Change::Append(_) => Vec::new(),
        };
        let data_change = !matches!(change, Change::Compact { .. });
        if let Some(snapshot) = snapshot {
            let wanted: std::collections::HashSet<&str> = removed.iter().copied().collect();
            for file in snapshot.state().log_data().iter() {
                let path = file.path().to_string();
                if wanted.contains(path.as_str()) {
                    removed_rows += file.num_records().unwrap_or(0) as u64;
                    removed_files += 1;
                    let mut remove = file.remove_action(data_change);
                    remove.deletion_timestamp = Some(Utc::now().timestamp_millis());
                    actions.push(Action::Remove(remove));
                }
            }
            if removed_files != wanted.len() {
                return Err(anyhow!(
                    "{table} {date}: {} of the files to rewrite are no longer in the table",
                    wanted.len() - removed_files
                ));
            }
        }
        let rows: u64 = files.iter().map(|f| f.stats.rows()).sum();
        for file in files {
            actions.push(Action::Add(Add {
                path: file.path.clone(),
                partition_values: HashMap::from([(
                    PARTITION_COLUMN.to_string(),
                    Some(day.clone()),
                )]),
                size: file.bytes as i64,
                modification_time: file.modified_ms,
                data_change,
                stats: Some(file.stats.to_json()),
                ..Default::default()
            }));
        }
        let predicate = format!("{PARTITION_COLUMN} = '{day}'");
        let partition_by = Some(vec![PARTITION_COLUMN.to_string()]);
        let now = Utc::now().timestamp_millis();
        let (operation, txns, kind) = match change {
            Change::Replace => (
                DeltaOperation::Write {
                    mode: SaveMode::Overwrite,
                    partition_by,
                    predicate: Some(predicate),
                },
                Vec::new(),
                "replace",
            ),
            Change::Append(txns) if txns.is_empty() => (
                DeltaOperation::Write {
                    mode: SaveMode::Append,
                    partition_by,
                    predicate: None,
                },
                Vec::new(),
                "append",
            ),
            Change::Append(txns) => (
                DeltaOperation::StreamingUpdate {
                    output_mode: OutputMode::Append,
                    query_id: txns[0].app_id.clone(),
                    epoch_id: txns[0].version,
                },
                txns.iter()
                    .map(|t| Transaction::new_with_last_update(&t.app_id, t.version, Some(now)))
                    .collect(),
                "stream_append",
            ),
            Change::Compact { target_size, .. } => (
                DeltaOperation::Optimize {
                    predicate: Some(predicate),
                    target_size: *target_size as i64,
                },
                Vec::new(),
                "compact",
            ),
        };
        let bytes: u64 = files.iter().map(|f| f.bytes).sum();
        let metadata = HashMap::from([
            ("runId".to_string(), json!(by.run_id)),
            ("lakeChange".to_string(), json!(kind)),
            ("lakeDate".to_string(), json!(day)),
            (
                "operationMetrics".to_string(),
                json!({
                    "numAddedFiles": files.len().to_string(),
                    "numOutputRows": rows.to_string(),
                    "numOutputBytes": bytes.to_string(),
                    "numRemovedFiles": removed_files.to_string(),
                    "numRemovedRows": removed_rows.to_string(),
                }),
            ),
        ]);
        Ok(Plan {
            actions,
            operation,
            metadata,
            txns,
            rows,
            removed_rows,
            removed_files,
        })
    }

    pub(crate) fn commit(
        &self,
        table: &Table,
        snapshot: Option<&Snapshot>,
    ) -> Result<i64, CommitError> {
        // Checkpoints at delta-rs' interval (every 100 versions); expired
        // log entries are cleaned up below, only after a new checkpoint,
        // instead of listing the log on every commit.
        let mut properties = CommitProperties::default()
            .with_create_checkpoint(true)
            .with_cleanup_expired_logs(Some(false))
            .with_max_retries(10)
            .with_metadata(self.metadata.clone());
        if !self.txns.is_empty() {
            properties = properties.with_application_transactions(self.txns.clone());
        }
        let log_store = table.log_store().clone();
        let reference =
            snapshot.map(|s| s.state() as &dyn deltalake_core::kernel::transaction::TableReference);
        let result = block_on(async {
            CommitBuilder::from(properties)
                .with_actions(self.actions.clone())
                .build(reference, log_store.clone(), self.operation.clone())
                .await
        });
        match result {
            Ok(finalized) => {
                table.remember(&finalized.snapshot);
                if finalized.metrics.new_checkpoint_created {
                    cleanup_expired_logs(table, &finalized.snapshot, finalized.version())
                        .map_err(CommitError::Other)?;
                }
                Ok(finalized.version() as i64)
            }
            Err(err) => Err(classify(err)),
        }
    }
}

fn classify(err: DeltaTableError) -> CommitError {
    match err {
        DeltaTableError::Transaction { source } => match source {
            TransactionError::CommitConflict(conflict) => {
                CommitError::Conflict(conflict.to_string())
            }
            TransactionError::VersionAlreadyExists(version) => {
                CommitError::Conflict(format!("version {version} was taken"))
            }
            TransactionError::MaxCommitAttempts(n) => {
                CommitError::Conflict(format!("{n} attempts lost to concurrent commits"))
            }
            other => {
                CommitError::Other(delta_error(DeltaTableError::Transaction { source: other }))
            }
        },
        other => CommitError::Other(delta_error(other)),
    }
}

/// After a checkpoint: deletes log entries older than the table's log
/// retention that the checkpoint makes unnecessary.
fn cleanup_expired_logs(
    table: &Table,
    state: &deltalake_core::table::state::DeltaTableState,
    version: u64,
) -> Result<()> {
    let retention = state.table_config().log_retention_duration();
    let cutoff = Utc::now().timestamp_millis() - retention.as_millis() as i64;
    block_on(deltalake_core::checkpoints::cleanup_expired_logs_for(
        version,
        table.log_store().as_ref(),
        cutoff,
        None,
    ))
    .map_err(delta_error)
    .with_context(|| format!("cleaning up the log of {}", table.table_ref()))?;
    Ok(())
}

/// Protocol and metadata actions: a new table's, or a schema change's.
fn schema_actions(
    table: &TableRef,
    stored: Option<&Schema>,
    snapshot: Option<&Snapshot>,
    removes_all: bool,
    streaming: bool,
) -> Result<Vec<Action>> {
    let Some(stored) = stored else {
        if snapshot.is_none() {
            bail!("{table}: a table cannot be created without a schema");
        }
        return Ok(Vec::new());
    };
    let Some(snapshot) = snapshot else {
        let mut configuration = Vec::new();
        if streaming {
            configuration.push(("delta.logRetentionDuration", STREAM_LOG_RETENTION));
        }
        let metadata = deltalake_core::kernel::new_metadata(
            &delta_schema(stored)?,
            [PARTITION_COLUMN],
            configuration,
        )
        .map_err(|err| anyhow!("{table}: building its metadata: {err}"))?;
        return Ok(vec![
            Action::Protocol(protocol(needs_timestamp_ntz(stored))?),
            Action::Metadata(metadata),
        ]);
    };
    let current = snapshot.schema();
    let mut merged = (**current).clone();
    let mut changed = false;
    for (name, dtype) in stored.iter() {
        match current.get(name) {
            None => {
                merged.with_column(name.clone(), dtype.clone());
                changed = true;
            }
            Some(existing) if existing != dtype => {
                if !removes_all {
                    bail!(
                        "{table}.{name}: the table holds {existing} and the new data {dtype}; \
                         a column's type changes only when every date of the table is rewritten"
                    );
                }
                changed = true;
            }
            Some(_) => {}
        }
    }
    if removes_all && current.as_ref() != stored {
        // Every file goes: the new data's schema is the table's (Delta's
        // overwriteSchema).
        merged = stored.clone();
        changed = true;
    }
    if !changed {
        return Ok(Vec::new());
    }
    let metadata = snapshot
        .state()
        .metadata()
        .clone()
        .with_schema(&delta_schema(&merged)?)
        .map_err(|err| anyhow!("{table}: changing its schema: {err}"))?;
    let mut actions = Vec::new();
    let ntz = needs_timestamp_ntz(&merged);
    if ntz && !needs_timestamp_ntz(current) && snapshot.state().protocol().min_writer_version() < 7
    {
        actions.push(Action::Protocol(protocol(true)?));
    }
    actions.push(Action::Metadata(metadata));
    Ok(actions)
}

/// The lowest protocol the lake's tables need: reader 1 / writer 2, or
/// reader 3 / writer 7 with `timestampNtz` for time columns without a
/// time zone.
fn protocol(timestamp_ntz: bool) -> Result<deltalake_core::kernel::Protocol> {
    let value = if timestamp_ntz {
        json!({
            "minReaderVersion": 3,
            "minWriterVersion": 7,
            "readerFeatures": ["timestampNtz"],
            "writerFeatures": ["timestampNtz"],
        })
    } else {
        json!({"minReaderVersion": 1, "minWriterVersion": 2})
    };
    serde_json::from_value(value).context("building a Delta protocol action")
}
