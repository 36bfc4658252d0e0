//! Delta's `RESTORE`: one commit that brings a table, or one date of it,
//! back to what an earlier version held.
//!
//! The commit adds the files the earlier version had and the latest has
//! not, removes the files the latest has and the earlier version had not
//! (both with `dataChange=true`: readers see the data change back), and
//! puts back the earlier version's metadata (schema, properties) when it
//! differs. Nothing is copied: the earlier files are still in storage,
//! since no commit deletes a data file, unless a vacuum deleted them, in
//! which case the restore is refused naming the missing file.
//!
//! Two callers: `cargo xtask lake restore TABLE --version N` (the whole
//! table, [`restore_version`]) and [`crate::all_or_none`], which undoes a
//! failed change one date at a time ([`restore_date`]).

use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result, anyhow, bail};
use chrono::NaiveDate;
use deltalake_core::kernel::Action;
use deltalake_core::protocol::DeltaOperation;
use serde_json::json;

use crate::commit::{Commit, CommitError, Plan};
use crate::fault;
use crate::snapshot::{At, Snapshot};
use crate::table::{PARTITION_COLUMN, Table, TableRef};

/// What a restore of a whole table committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub table: TableRef,
    /// The version the restore committed.
    pub version: i64,
    /// The version whose files and metadata it brought back.
    pub restored: i64,
    /// Files (and their rows and bytes) added back.
    pub added_files: usize,
    pub added_rows: u64,
    pub added_bytes: u64,
    /// Files (and their rows) removed.
    pub removed_files: usize,
    pub removed_rows: u64,
    /// Whether the restored version's metadata (schema, properties) was
    /// put back: it differed from the latest's.
    pub metadata_restored: bool,
}

/// Which files a restore touches.
#[derive(Debug, Clone, Copy)]
enum Scope {
    /// Every file of the table.
    Table,
    /// The files of one `run_date`.
    Date(NaiveDate),
}

impl Scope {
    fn holds_date(&self, date: NaiveDate) -> bool {
        match self {
            Scope::Table => true,
            Scope::Date(only) => *only == date,
        }
    }

    fn holds(&self, partition_values: &HashMap<String, Option<String>>) -> bool {
        match self {
            Scope::Table => true,
            Scope::Date(date) => {
                partition_values.get(PARTITION_COLUMN).cloned().flatten()
                    == Some(date.format("%Y-%m-%d").to_string())
            }
        }
    }
}

/// Brings `table` back to its version `version`: one commit whose data
/// files and metadata are that version's. Refused when the table is at
/// that version already, when it has no such version (the error names
/// the versions there are), and when a file that version needs was
/// deleted by a vacuum (the error names it).
pub fn restore_version(table: &Table, version: i64, run_id: &str) -> Result<Restored> {
    let name = table.table_ref().clone();
    let latest = table
        .latest()?
        .ok_or_else(|| anyhow!("{name} has no commit yet: there is no version to restore"))?;
    if version == latest.version() {
        bail!("{name} is at v{version} already: nothing to restore");
    }
    let target = table.at(At::Version(version))?;
    let (plan, counts) = plan(&latest, Some(&target), Scope::Table, run_id)?;
    fault::check("before_restore", &name.to_string())?;
    let committed = plan.commit(table, Some(&latest)).map_err(|err| match err {
        CommitError::Conflict(reason) => anyhow!(
            "{name}: another writer committed while v{version} was being restored ({reason}); \
             nothing was restored"
        ),
        CommitError::Other(err) => err.context(format!("restoring {name} to v{version}")),
    })?;
    Ok(Restored {
        table: name,
        version: committed,
        restored: version,
        added_files: counts.added_files,
        added_rows: counts.added_rows,
        added_bytes: counts.added_bytes,
        removed_files: counts.removed_files,
        removed_rows: counts.removed_rows,
        metadata_restored: counts.metadata_restored,
    })
}

/// Brings `date` of `table` back to what `before` held for it (nothing when
/// `before` is `None`): one commit that removes the date's current files
/// and adds `before`'s back, with `before`'s metadata. Refused unless the
/// table is still at version `expected`: a writer that committed since
/// would see its change discarded.
pub(crate) fn restore_date(
    table: &Table,
    date: NaiveDate,
    run_id: &str,
    before: Option<&Snapshot>,
    expected: i64,
) -> Result<Commit> {
    let name = table.table_ref().clone();
    let latest = table
        .latest()?
        .ok_or_else(|| anyhow!("{name} has no version to restore {date} in"))?;
    if latest.version() != expected {
        bail!(
            "{name} is at v{}, not v{expected}: another writer committed since, \
             so {date} is left as it is",
            latest.version()
        );
    }
    let (plan, counts) = plan(&latest, before, Scope::Date(date), run_id)?;
    fault::check("before_restore", &name.to_string())?;
    match plan.commit(table, Some(&latest)) {
        Ok(version) => Ok(Commit {
            table: name,
            version,
            date,
            rows: counts.added_rows,
            files: counts.added_files,
            bytes: counts.added_bytes,
            removed_rows: counts.removed_rows,
            removed_files: counts.removed_files,
        }),
        Err(CommitError::Conflict(reason)) => Err(anyhow!(
            "{name}: another writer committed while {date} was being restored ({reason}), \
             so it is left as that writer made it"
        )),
        Err(CommitError::Other(err)) => {
            Err(err).with_context(|| format!("restoring {name} {date}"))
        }
    }
}

/// What a restore's commit adds and removes.
#[derive(Default)]
struct Counts {
    added_files: usize,
    added_rows: u64,
    added_bytes: u64,
    removed_files: usize,
    removed_rows: u64,
    metadata_restored: bool,
}

/// The commit that makes `scope` of `latest` what it is in `target`
/// (empty when `target` is `None`).
fn plan(
    latest: &Snapshot,
    target: Option<&Snapshot>,
    scope: Scope,
    run_id: &str,
) -> Result<(Plan, Counts)> {
    let mut counts = Counts::default();
    let mut actions = Vec::new();
    if let Some(target) = target
        && target.state().metadata() != latest.state().metadata()
    {
        actions.push(Action::Metadata(target.state().metadata().clone()));
        counts.metadata_restored = true;
    }
    let in_target: HashSet<String> = target
        .map(|t| {
            t.files()
                .iter()
                .map(|f| f.path.clone())
                .collect::<HashSet<_>>()
        })
        .unwrap_or_default();
    let in_latest: HashSet<&str> = latest.files().iter().map(|f| f.path.as_str()).collect();
    for file in latest.state().log_data().iter() {
        let path = file.path().to_string();
        if scope.holds(&file.partition_values_map()) && !in_target.contains(&path) {
            counts.removed_rows += file.num_records().unwrap_or(0) as u64;
            counts.removed_files += 1;
            actions.push(Action::Remove(file.remove_action(true)));
        }
    }
    if let Some(target) = target {
        // The files to add back must still be in storage: a vacuum may
        // have deleted them since a later version removed them.
        for entry in target.files() {
            if in_latest.contains(entry.path.as_str()) || !scope.holds_date(entry.date) {
                continue;
            }
            let key = format!("{}/{}", target.table_ref().name, entry.path);
            if target
                .table()
                .lake()
                .head(target.table_ref().layer, &key)?
                .is_none()
            {
                return Err(target.vacuumed_error(entry).context(format!(
                    "{} cannot be restored to v{}",
                    target.table_ref(),
                    target.version()
                )));
            }
        }
        for file in target.state().log_data().iter() {
            let path = file.path().to_string();
            if scope.holds(&file.partition_values_map()) && !in_latest.contains(path.as_str()) {
                counts.added_rows += file.num_records().unwrap_or(0) as u64;
                counts.added_files += 1;
                counts.added_bytes += u64::try_from(file.size()).unwrap_or(0);
                // delta-rs deprecates this in favour of its Arrow arrays,
                // yet it is the one way to re-add a file with its statistics.
                #[allow(deprecated)]
                let add = file.add_action();
                actions.push(Action::Add(add));
            }
        }
    }
    let mut metadata = HashMap::from([
        ("runId".to_string(), json!(run_id)),
        ("lakeChange".to_string(), json!("restore")),
        (
            "operationMetrics".to_string(),
            json!({
                "numRestoredFiles": counts.added_files.to_string(),
                "restoredFilesSize": counts.added_bytes.to_string(),
                "numOutputRows": counts.added_rows.to_string(),
                "numRemovedFiles": counts.removed_files.to_string(),
                "numRemovedRows": counts.removed_rows.to_string(),
            }),
        ),
    ]);
    if let Scope::Date(date) = scope {
        metadata.insert(
            "lakeDate".to_string(),
            json!(date.format("%Y-%m-%d").to_string()),
        );
    }
    let plan = Plan {
        actions,
        operation: DeltaOperation::Restore {
            version: target.map(|t| t.version() as _),
            datetime: None,
        },
        metadata,
        txns: Vec::new(),
        rows: counts.added_rows,
        removed_rows: counts.removed_rows,
        removed_files: counts.removed_files,
    };
    Ok((plan, counts))
}
