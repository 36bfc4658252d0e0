//! A table's commits, newest first, as its log records them: version,
//! time, operation, run id, rows and files added and removed.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::snapshot::Snapshot;
use crate::storage::block_on;
use crate::table::{Table, delta_error};

/// One commit of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    pub version: i64,
    pub timestamp: Option<DateTime<Utc>>,
    /// Delta's operation name: `WRITE`, `STREAMING UPDATE`, `OPTIMIZE`...
    pub operation: String,
    /// This lake's kind of change: `replace`, `append`, `stream_append`, `compact`, `restore` (`lake restore`, or a failed change undone).
    pub change: Option<String>,
    pub run_id: Option<String>,
    pub files_added: u64,
    pub files_removed: u64,
    /// From the added files' statistics.
    pub rows_added: u64,
    /// From the commit's metrics (other writers may not record them).
    pub rows_removed: Option<u64>,
}

/// The last `limit` commits of a table, newest first (fewer when the log
/// was cleaned up or the table is younger).
pub fn history(table: &Table, limit: usize) -> Result<Vec<HistoryEntry>> {
    let Some(latest) = table.latest()? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut version = latest.version();
    while version >= 0 && out.len() < limit {
        let Some(text) = commit_entry(table, version)? else {
            break; // cleaned up: older versions live only in a checkpoint
        };
        out.push(
            parse_entry(version, &text)
                .with_context(|| format!("reading version {version} of {}", table.table_ref()))?,
        );
        version -= 1;
    }
    Ok(out)
}

/// The text of commit `version`, `None` when the log no longer holds it.
fn commit_entry(table: &Table, version: i64) -> Result<Option<String>> {
    let entry = block_on(table.log_store().read_commit_entry(version as u64))
        .map_err(delta_error)
        .with_context(|| format!("reading version {version} of {}", table.table_ref()))?;
    entry
        .map(|bytes| {
            String::from_utf8(bytes.to_vec())
                .with_context(|| format!("version {version} of {} is not UTF-8", table.table_ref()))
        })
        .transpose()
}

/// The actions of the newest commit, among the last `limit` up to
/// `snapshot`, holding a `txn` action of `app_id` at `version`, with that
/// commit's version.
pub fn find_transaction(
    snapshot: &Snapshot,
    app_id: &str,
    version: i64,
    limit: usize,
) -> Result<Option<(i64, Vec<Value>)>> {
    let table = snapshot.table();
    let mut at = snapshot.version();
    let mut seen = 0;
    while at >= 0 && seen < limit {
        let Some(text) = commit_entry(table, at)? else {
            break;
        };
        let actions: Vec<Value> = text
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect();
        let holds = actions.iter().any(|action| {
            action.get("txn").is_some_and(|txn| {
                txn.get("appId").and_then(Value::as_str) == Some(app_id)
                    && txn.get("version").and_then(Value::as_i64) == Some(version)
            })
        });
        if holds {
            return Ok(Some((at, actions)));
        }
        at -= 1;
        seen += 1;
    }
    Ok(None)
}

fn parse_entry(version: i64, text: &str) -> Result<HistoryEntry> {
    let mut entry = HistoryEntry {
        version,
        timestamp: None,
        operation: String::new(),
        change: None,
        run_id: None,
        files_added: 0,
        files_removed: 0,
        rows_added: 0,
        rows_removed: None,
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let action: Value = serde_json::from_str(line).context("a log line that is not JSON")?;
        if let Some(info) = action.get("commitInfo") {
            entry.timestamp = info
                .get("timestamp")
                .and_then(Value::as_i64)
                .and_then(DateTime::from_timestamp_millis);
            entry.operation = text_of(info.get("operation")).unwrap_or_default();
            entry.change = text_of(info.get("lakeChange"));
            entry.run_id = text_of(info.get("runId"));
            entry.rows_removed = info
                .get("operationMetrics")
                .and_then(|m| m.get("numRemovedRows"))
                .and_then(|v| text_of(Some(v)))
                .and_then(|v| v.parse().ok());
        } else if let Some(add) = action.get("add") {
            entry.files_added += 1;
            let stats = add
                .get("stats")
                .and_then(Value::as_str)
                .and_then(|s| serde_json::from_str::<Value>(s).ok());
            entry.rows_added += stats
                .and_then(|s| s.get("numRecords").and_then(Value::as_u64))
                .unwrap_or(0);
        } else if action.get("remove").is_some() {
            entry.files_removed += 1;
        }
    }
    Ok(entry)
}

fn text_of(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_counts_its_actions() {
        let text = concat!(
            r#"{"commitInfo":{"timestamp":1764547200000,"operation":"WRITE","runId":"r1","lakeChange":"replace","operationMetrics":{"numRemovedRows":"7"}}}"#,
            "\n",
            r#"{"remove":{"path":"2026-12-01/a.parquet","dataChange":true}}"#,
            "\n",
            r#"{"add":{"path":"2026-12-01/b.parquet","stats":"{\"numRecords\":5}"}}"#,
            "\n",
            r#"{"add":{"path":"2026-12-01/c.parquet","stats":"{\"numRecords\":6}"}}"#,
        );
        let entry = parse_entry(3, text).unwrap();
        assert_eq!(
            (
                entry.version,
                entry.files_added,
                entry.files_removed,
                entry.rows_added
            ),
            (3, 2, 1, 11)
        );
        assert_eq!(entry.rows_removed, Some(7));
        assert_eq!(entry.run_id.as_deref(), Some("r1"));
        assert_eq!(entry.operation, "WRITE");
        assert_eq!(
            entry.timestamp.unwrap().to_rfc3339(),
            "2025-12-01T00:00:00+00:00"
        );
    }
}
