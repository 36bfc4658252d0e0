//! Table maintenance: compaction of a date's small files, and vacuum of
//! the files no version needs any more.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use deltalake_core::DeltaTable;
use deltalake_core::operations::vacuum::VacuumMode;

use crate::commit::Commit;
use crate::snapshot::FileEntry;
use crate::storage::{Lake, block_on};
use crate::table::{Table, TableRef, delta_error};
use crate::writer::DateWriter;

/// Default size of the files compaction writes.
pub const DEFAULT_TARGET_FILE_BYTES: u64 = 128 * 1024 * 1024;

/// Rewrites the files of `date` smaller than `target_bytes` into files of
/// about that size, in one commit with `dataChange=false`: readers, and
/// the stream's transaction versions, see the same data. `None` when the
/// date has fewer than two such files.
pub fn compact(
    lake: &Lake,
    table: &TableRef,
    date: NaiveDate,
    target_bytes: u64,
    run_id: &str,
) -> Result<Option<Commit>> {
    let Some(snapshot) = Table::open(lake, table.clone())?.latest()? else {
        return Ok(None);
    };
    let small: Vec<FileEntry> = snapshot
        .files_of(date)
        .filter(|f| f.bytes < target_bytes)
        .cloned()
        .collect();
    if small.len() < 2 {
        return Ok(None);
    }
    let mut writer = DateWriter::new(lake, table.clone(), date, run_id)?;
    let mut output = None;
    for file in &small {
        // One small file in memory at a time.
        let mut frame = snapshot
            .scan_file(file)?
            .collect()
            .map_err(anyhow::Error::from)
            .with_context(|| format!("reading {table}/{} to compact it", file.path))?;
        let out = match &mut output {
            Some(out) => out,
            None => output.insert(writer.start_file(&frame.schema().clone())?),
        };
        out.write_batch(&mut frame)?;
        if out.bytes_written() >= target_bytes
            && let Some(full) = output.take()
        {
            writer.finish_file(full)?;
        }
    }
    if let Some(last) = output {
        writer.finish_file(last)?;
    }
    writer.compact(small, target_bytes).map(Some)
}

/// What a vacuum did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VacuumReport {
    pub table: TableRef,
    /// Files deleted (or that would be, in a dry run).
    pub files: Vec<String>,
    pub dry_run: bool,
}

/// Deletes the files of `table` that no version within `retain` needs:
/// files removed by a commit older than that, and files no commit ever
/// added (left by writers that crashed before committing) older than that.
///
/// A retention shorter than the table's (`delta.deletedFileRetentionDuration`,
/// 7 days by default) deletes files that readers of recent older versions
/// still need: refused unless `allow_short_retention` (Delta's
/// `retentionDurationCheck` turned off).
pub fn vacuum(
    lake: &Lake,
    table: &TableRef,
    retain: Duration,
    dry_run: bool,
    allow_short_retention: bool,
) -> Result<VacuumReport> {
    let handle = Table::open(lake, table.clone())?;
    let Some(latest) = handle.latest()? else {
        return Ok(VacuumReport {
            table: table.clone(),
            files: Vec::new(),
            dry_run,
        });
    };
    let table_retention = latest.deleted_file_retention();
    if retain < table_retention && !allow_short_retention {
        bail!(
            "refusing to vacuum {table} with a retention of {} shorter than the table's {} \
             (delta.deletedFileRetentionDuration): readers of versions from that time would \
             lose their files; pass --allow-short-retention to do it anyway",
            describe_duration(retain),
            describe_duration(table_retention)
        );
    }
    let retain = chrono::Duration::from_std(retain).context("retention period out of range")?;
    let (_, metrics) = block_on(async {
        let mut delta = DeltaTable::new(handle.log_store().clone());
        delta.load().await?;
        delta
            .vacuum()
            .with_retention_period(retain)
            .with_enforce_retention_duration(false)
            .with_mode(VacuumMode::Full)
            .with_dry_run(dry_run)
            .await
    })
    .map_err(delta_error)
    .with_context(|| format!("vacuuming {table}"))?;
    let mut files = metrics.files_deleted;
    files.sort();
    Ok(VacuumReport {
        table: table.clone(),
        files,
        dry_run,
    })
}

/// `604800s` as `7d`, `90s` as `90s`: the largest unit that divides it.
pub fn describe_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0 => "0s".into(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Parses a retention such as `7d`, `12h`, `30m`, `90s` or `0s`.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("{text:?} is not a duration (e.g. 7d, 12h, 30m, 90s)"))?;
    let seconds = match unit {
        "d" => number * 86_400,
        "h" => number * 3_600,
        "m" => number * 60,
        "s" | "" => number,
        other => anyhow::bail!("unknown duration unit {other:?} in {text:?} (use d, h, m or s)"),
    };
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        assert_eq!(parse_duration("12h").unwrap(), Duration::from_secs(43_200));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("d").is_err());
    }
}
