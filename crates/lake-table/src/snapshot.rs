//! A table at one version: its files, schema and row counts per date, and
//! lazy Polars scans of exactly those files.
//!
//! A snapshot never changes: a writer committing meanwhile makes a new
//! version, and the files this one lists stay readable for the retention
//! period (no commit deletes a data file; vacuum does, much later).

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow};
use chrono::{DateTime, NaiveDate, Utc};
use deltalake_core::table::state::DeltaTableState;
use polars::prelude::*;

use crate::delta_types::polars_schema;
use crate::schema::ColumnSpec;
use crate::storage::block_on;
use crate::table::{PARTITION_COLUMN, Table, TableRef, delta_error};

/// One data file of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path relative to the table root, e.g. `2026-11-26/part-....parquet`.
    pub path: String,
    /// Its `run_date` partition value.
    pub date: NaiveDate,
    pub bytes: u64,
    /// Rows, from the file's statistics (every file this lake writes has them).
    pub rows: Option<u64>,
    /// When the file was written (milliseconds since the epoch).
    pub modified_ms: i64,
}

/// A table at one version.
#[derive(Clone)]
pub struct Snapshot {
    table: Table,
    state: DeltaTableState,
    files: Vec<FileEntry>,
    columns: Vec<ColumnSpec>,
    schema: SchemaRef,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Snapshot({}@{})", self.table.table_ref(), self.version())
    }
}

impl Snapshot {
    pub(crate) fn from_state(table: Table, state: DeltaTableState) -> Result<Snapshot> {
        let name = table.table_ref().to_string();
        let (columns, schema) = polars_schema(&state.schema())
            .with_context(|| format!("reading the schema of {name}"))?;
        let mut files = Vec::new();
        for file in state.log_data().iter() {
            let path = file.path().to_string();
            let values = file.partition_values_map();
            let date = values
                .get(PARTITION_COLUMN)
                .cloned()
                .flatten()
                .ok_or_else(|| anyhow!("{name}: file {path} has no {PARTITION_COLUMN} value"))?;
            let date = NaiveDate::parse_from_str(&date, "%Y-%m-%d").with_context(|| {
                format!("{name}: file {path} has {PARTITION_COLUMN} {date:?}, not a date")
            })?;
            files.push(FileEntry {
                bytes: u64::try_from(file.size()).unwrap_or(0),
                rows: file.num_records().map(|n| n as u64),
                modified_ms: file.modification_time(),
                path,
                date,
            });
        }
        // Newest first from the log: name order is stable across loads.
        files.sort_by(|a, b| (a.date, &a.path).cmp(&(b.date, &b.path)));
        Ok(Snapshot {
            table,
            state,
            files,
            columns,
            schema: Arc::new(schema),
        })
    }

    pub fn table(&self) -> &Table {
        &self.table
    }

    pub fn table_ref(&self) -> &TableRef {
        self.table.table_ref()
    }

    pub(crate) fn state(&self) -> &DeltaTableState {
        &self.state
    }

    pub fn version(&self) -> i64 {
        self.state.version() as i64
    }

    /// When this version was committed, when the log still lists it.
    pub fn committed_at(&self) -> Option<DateTime<Utc>> {
        self.state
            .version_timestamp(self.state.version())
            .and_then(DateTime::from_timestamp_millis)
    }

    /// The first data file of `date` (of every date when `None`) that is
    /// no longer in storage: a vacuum deleted it after a later version
    /// removed it. One HEAD per file: for reading an older version, or
    /// explaining a failed read.
    pub fn vacuumed_file(&self, date: Option<NaiveDate>) -> Result<Option<&FileEntry>> {
        let table = self.table_ref();
        for file in self
            .files
            .iter()
            .filter(|f| date.is_none_or(|d| f.date == d))
        {
            let key = format!("{}/{}", table.name, file.path);
            if self.table.lake().head(table.layer, &key)?.is_none() {
                return Ok(Some(file));
            }
        }
        Ok(None)
    }

    /// The error of reading `file` of this version after a vacuum deleted it.
    pub fn vacuumed_error(&self, file: &FileEntry) -> anyhow::Error {
        anyhow!(
            "{}@v{}: its data file {} was deleted by vacuum (vacuum deletes the files \
             removed longer ago than its retention, {} days by default for this table)",
            self.table_ref(),
            self.version(),
            file.path,
            self.deleted_file_retention().as_secs() / 86_400
        )
    }

    /// How long removed files stay before vacuum may delete them: the
    /// table's `delta.deletedFileRetentionDuration`, 7 days by default.
    pub fn deleted_file_retention(&self) -> std::time::Duration {
        use deltalake_core::table::config::TablePropertiesExt;
        self.state.table_config().deleted_file_retention_duration()
    }

    /// The data columns (the partition column aside), in table order.
    pub fn columns(&self) -> &[ColumnSpec] {
        &self.columns
    }

    /// The data columns as a Polars schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Every active file, by date then name.
    pub fn files(&self) -> &[FileEntry] {
        &self.files
    }

    /// The active files of one date.
    pub fn files_of(&self, date: NaiveDate) -> impl Iterator<Item = &FileEntry> {
        self.files.iter().filter(move |f| f.date == date)
    }

    /// The dates the table holds, oldest first.
    pub fn dates(&self) -> Vec<NaiveDate> {
        let mut dates: Vec<NaiveDate> = self.files.iter().map(|f| f.date).collect();
        dates.dedup();
        dates
    }

    /// Rows, files and bytes per date.
    pub fn date_summaries(&self) -> BTreeMap<NaiveDate, DateSummary> {
        let mut out: BTreeMap<NaiveDate, DateSummary> = BTreeMap::new();
        for file in &self.files {
            let entry = out.entry(file.date).or_default();
            entry.rows += file.rows.unwrap_or(0);
            entry.files += 1;
            entry.bytes += file.bytes;
        }
        out
    }

    /// Rows of one date, from the files' statistics; `None` when a file
    /// has none (a file another writer added without them).
    pub fn rows_of(&self, date: NaiveDate) -> Option<u64> {
        self.files_of(date).map(|f| f.rows).sum()
    }

    /// The date a run dated `date` reads: that date when the table holds
    /// it, else the latest one before it.
    pub fn resolve_date(&self, date: NaiveDate) -> Option<NaiveDate> {
        self.files
            .iter()
            .map(|f| f.date)
            .filter(|d| *d <= date)
            .max()
    }

    /// The latest date the table holds.
    pub fn latest_date(&self) -> Option<NaiveDate> {
        self.files.last().map(|f| f.date)
    }

    /// The rows of one date, lazily: exactly this snapshot's files of that
    /// date, with the data columns only (no `run_date`). A date with no
    /// file gives an empty frame with the table's schema.
    pub fn scan(&self, date: NaiveDate) -> Result<LazyFrame> {
        let files: Vec<&FileEntry> = self.files_of(date).collect();
        self.scan_files(&files)
    }

    /// Every row of the snapshot with its `run_date`, lazily.
    pub fn scan_all(&self) -> Result<LazyFrame> {
        let dates = self.dates();
        if dates.is_empty() {
            let mut schema = (*self.schema).clone();
            schema.with_column(PARTITION_COLUMN.into(), DataType::Date);
            return Ok(DataFrame::empty_with_schema(&schema).lazy());
        }
        let frames = dates
            .into_iter()
            .map(|date| {
                // Days since the epoch: Polars' literal of a NaiveDate is a datetime.
                let days = (date - DateTime::UNIX_EPOCH.date_naive()).num_days() as i32;
                Ok(self
                    .scan(date)?
                    .with_column(lit(days).cast(DataType::Date).alias(PARTITION_COLUMN)))
            })
            .collect::<Result<Vec<_>>>()?;
        concat(frames, UnionArgs::default())
            .map_err(anyhow::Error::from)
            .with_context(|| format!("scanning {}", self.table_ref()))
    }

    /// One file of the snapshot, lazily.
    pub(crate) fn scan_file(&self, file: &FileEntry) -> Result<LazyFrame> {
        self.scan_files(&[file])
    }

    fn scan_files(&self, files: &[&FileEntry]) -> Result<LazyFrame> {
        if files.is_empty() {
            return Ok(DataFrame::empty_with_schema(&self.schema).lazy());
        }
        let table = self.table_ref();
        let lake = self.table.lake();
        let paths: Vec<PlRefPath> = files
            .iter()
            .map(|f| {
                PlRefPath::new(
                    lake.scan_location(table.layer, &format!("{}/{}", table.name, f.path)),
                )
            })
            .collect();
        let args = ScanArgsParquet {
            // The table's schema: files written before a column was added
            // read it as nulls.
            schema: Some(self.schema.clone()),
            allow_missing_columns: true,
            cloud_options: cloud_options(lake),
            hive_options: polars::io::HiveOptions {
                enabled: Some(false),
                ..Default::default()
            },
            glob: false,
            ..Default::default()
        };
        LazyFrame::scan_parquet_files(paths.into(), args)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("scanning {}@{}", table, self.version()))
    }

    /// The version of the application transaction `app_id` this snapshot
    /// has committed (the stream's micro-batch of a source partition).
    pub fn txn_version(&self, app_id: &str) -> Result<Option<i64>> {
        block_on(
            self.state
                .transaction_version(self.table.log_store().as_ref(), app_id),
        )
        .map_err(delta_error)
        .with_context(|| format!("reading the transactions of {}", self.table_ref()))
    }
}

/// How Polars reaches a lake on S3: the lake's own endpoint and credentials.
fn cloud_options(lake: &crate::storage::Lake) -> Option<polars::io::cloud::CloudOptions> {
    let settings = lake.s3_settings()?;
    Some(polars::io::cloud::CloudOptions::default().with_aws(settings.config_keys()))
}

/// What one date of a table holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DateSummary {
    pub rows: u64,
    pub files: usize,
    pub bytes: u64,
}
