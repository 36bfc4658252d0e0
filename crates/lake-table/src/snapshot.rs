//! A table at one version: loading it ([`Table::latest`], [`Table::at`],
//! through the lake handle's snapshot cache when it has one), its files,
//! schema and row counts per date, and lazy Polars scans of exactly those
//! files.
//!
//! A snapshot never changes: a writer committing meanwhile makes a new
//! version, and the files this one lists stay readable for the retention
//! period (no commit deletes a data file; vacuum does, much later).

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, NaiveDate, Utc};
use deltalake_core::table::state::DeltaTableState;
use deltalake_core::{DeltaTable, DeltaTableError};
use polars::prelude::*;

use crate::delta_types::polars_schema;
use crate::schema::ColumnSpec;
use crate::storage::block_on;
use crate::table::{PARTITION_COLUMN, Table, TableRef, delta_error};

/// Which version of a table to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    Latest,
    Version(i64),
    /// The latest version committed at or before this time.
    Timestamp(DateTime<Utc>),
}

/// Loading a version of a table.
impl Table {
    /// The latest snapshot, or `None` when the table has no commit yet.
    pub fn latest(&self) -> Result<Option<Snapshot>> {
        // On a local lake, a table without a log folder is not there yet:
        // say so without asking delta-rs, which logs the miss as an error.
        let log = format!("{}/_delta_log", self.table_ref().name);
        if let Some(path) = self.lake().local_path(self.table_ref().layer, &log)
            && !path.exists()
        {
            return Ok(None);
        }
        match self.load(At::Latest) {
            Ok(snapshot) => Ok(Some(snapshot)),
            Err(err) if is_not_a_table(&err) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The cached state of the table brought up to date, when the lake
    /// handle keeps one; `None` to load it in full.
    fn update_cached(&self) -> Result<Option<Snapshot>> {
        let Some(cache) = self.lake().snapshot_cache() else {
            return Ok(None);
        };
        let Some(mut state) = cache.get(self.table_ref()) else {
            return Ok(None);
        };
        let kept = state.version();
        block_on(state.update(self.log_store().as_ref(), None))
            .map_err(delta_error)
            .with_context(|| format!("bringing {} up to date", self.table_ref()))?;
        if state.version() != kept {
            cache.put(self.table_ref(), state.clone());
        }
        Snapshot::from_state(self.clone(), state).map(Some)
    }

    /// Keeps `state` as the latest seen, when the lake handle caches states.
    pub(crate) fn remember(&self, state: &DeltaTableState) {
        if let Some(cache) = self.lake().snapshot_cache() {
            cache.put(self.table_ref(), state.clone());
        }
    }

    /// The snapshot at `at`; an error naming the table when there is none:
    /// a time before its first commit is a [`NotYetCreated`] error (as
    /// Delta's readers answer, not version 0), a version past the latest
    /// names the versions there are.
    pub fn at(&self, at: At) -> Result<Snapshot> {
        if let At::Version(version) = at
            && version < 0
        {
            bail!(
                "{} has no version {version} (versions start at 0)",
                self.table_ref()
            );
        }
        let snapshot = match self.load(at) {
            Ok(snapshot) => snapshot,
            Err(err) => {
                if let At::Version(version) = at
                    && !is_not_a_table(&err)
                    && let Ok(Some(latest)) = self.latest()
                    && version > latest.version()
                {
                    bail!(
                        "{} has no version {version}: versions 0-{}",
                        self.table_ref(),
                        latest.version()
                    );
                }
                return Err(err);
            }
        };
        // delta-rs answers the first version for a time before it.
        if let At::Timestamp(asked) = at
            && snapshot.version() == 0
            && let Some(first_commit) = snapshot.committed_at()
            && asked < first_commit
        {
            return Err(anyhow!(NotYetCreated {
                table: self.table_ref().to_string(),
                asked,
                first_commit,
            }));
        }
        Ok(snapshot)
    }

    fn load(&self, at: At) -> Result<Snapshot> {
        if at == At::Latest
            && let Some(snapshot) = self.update_cached()?
        {
            return Ok(snapshot);
        }
        let mut table = DeltaTable::new(self.log_store().clone());
        let loaded = block_on(async {
            match at {
                At::Latest => table.load().await,
                At::Version(version) => {
                    let version = u64::try_from(version).map_err(|_| {
                        DeltaTableError::Generic(format!("invalid version {version}"))
                    })?;
                    table.load_version(version as _).await
                }
                At::Timestamp(time) => table.load_with_datetime(time).await,
            }
        });
        match loaded {
            Ok(()) => {}
            Err(err) if names_no_table(&err) => {
                return Err(anyhow!(NotATable(self.table_ref().to_string())));
            }
            Err(err) => {
                return Err(delta_error(err)).with_context(|| {
                    format!("opening {} ({})", self.table_ref(), describe_at(at))
                });
            }
        }
        let state = table
            .snapshot()
            .map_err(delta_error)
            .with_context(|| format!("opening {}", self.table_ref()))?
            .clone();
        if at == At::Latest {
            self.remember(&state);
        }
        Snapshot::from_state(self.clone(), state)
    }
}

/// True when delta-rs says there is no table there: no log entry, or (on
/// a local lake) no folder yet.
fn names_no_table(err: &DeltaTableError) -> bool {
    matches!(err, DeltaTableError::NotATable(_))
        || err
            .to_string()
            .contains("Invalid table location: Path does not exist")
}

fn describe_at(at: At) -> String {
    match at {
        At::Latest => "latest version".into(),
        At::Version(v) => format!("version {v}"),
        At::Timestamp(t) => format!("as of {}", t.to_rfc3339()),
    }
}

/// The error of a table that has no commit yet.
#[derive(Debug)]
pub struct NotATable(pub String);

impl fmt::Display for NotATable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is not a table yet (no commit in its _delta_log)",
            self.0
        )
    }
}

impl std::error::Error for NotATable {}

/// True when `err` says the table has no commit.
pub fn is_not_a_table(err: &anyhow::Error) -> bool {
    err.downcast_ref::<NotATable>().is_some()
}

/// The error of a time before a table's first commit.
#[derive(Debug, Clone)]
pub struct NotYetCreated {
    pub table: String,
    pub asked: DateTime<Utc>,
    pub first_commit: DateTime<Utc>,
}

impl fmt::Display for NotYetCreated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} did not exist yet at {}: its first commit (version 0) was at {}",
            self.table,
            self.asked
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            self.first_commit
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        )
    }
}

impl std::error::Error for NotYetCreated {}

/// One data file of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path relative to the table root, e.g. `2026-11-26/part-....parquet`
    /// (this lake's layout) or `run_date=2026-11-26/part-....parquet` (the
    /// layout of Spark and Sail, contract section 2), percent-decoded.
    pub path: String,
    /// Its `run_date` partition value, from the log's `partitionValues`:
    /// never from the path, so both layouts give a file its date alike.
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
    fn from_state(table: Table, state: DeltaTableState) -> Result<Snapshot> {
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

    /// The table as this version's log describes it: every field of its
    /// schema (the partition column too), its partition columns, its
    /// properties and protocol. Read through the actions' JSON form, as
    /// the log writes them, since delta-rs keeps their accessors private.
    pub fn description(&self) -> Result<TableDescription> {
        let name = self.table_ref();
        let context = || format!("describing {name}@v{}", self.version());
        let schema = serde_json::to_value(self.state.schema().as_ref()).with_context(context)?;
        let metadata = serde_json::to_value(self.state.metadata()).with_context(context)?;
        let protocol = serde_json::to_value(self.state.protocol()).with_context(context)?;
        let fields = schema
            .get("fields")
            .and_then(serde_json::Value::as_array)
            .ok_or_else(|| anyhow!("{name}: a Delta schema without fields"))?
            .iter()
            .map(|field| {
                let name = field
                    .get("name")
                    .and_then(serde_json::Value::as_str)
                    .ok_or_else(|| anyhow!("{name}: a Delta field without a name"))?;
                Ok(DeltaField {
                    name: name.to_string(),
                    // A nested type is shown as its JSON: the lake writes none.
                    delta_type: match field.get("type") {
                        Some(serde_json::Value::String(primitive)) => primitive.clone(),
                        other => other.map(ToString::to_string).unwrap_or_default(),
                    },
                    nullable: field
                        .get("nullable")
                        .and_then(serde_json::Value::as_bool)
                        .unwrap_or(true),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let strings = |value: Option<&serde_json::Value>| -> Vec<String> {
            value
                .and_then(serde_json::Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .map(|item| match item {
                            serde_json::Value::String(text) => text.clone(),
                            other => other.to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let properties = metadata
            .get("configuration")
            .and_then(serde_json::Value::as_object)
            .map(|map| {
                map.iter()
                    .map(|(key, value)| {
                        let value = match value {
                            serde_json::Value::String(text) => text.clone(),
                            other => other.to_string(),
                        };
                        (key.clone(), value)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let version = |key: &str| protocol.get(key).and_then(serde_json::Value::as_i64);
        use deltalake_core::table::config::TablePropertiesExt;
        let config = self.state.table_config();
        Ok(TableDescription {
            log_retention: config.log_retention_duration(),
            deleted_file_retention: config.deleted_file_retention_duration(),
            fields,
            partition_columns: strings(metadata.get("partitionColumns")),
            properties,
            min_reader_version: version("minReaderVersion").unwrap_or_default(),
            min_writer_version: version("minWriterVersion").unwrap_or_default(),
            reader_features: strings(protocol.get("readerFeatures")),
            writer_features: strings(protocol.get("writerFeatures")),
        })
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

    /// The date a reader asking for `asked` sees: one this snapshot holds
    /// files of, or `None`. Every reader of the lake asks here (step
    /// inputs, [`crate::read`], the serving catalog).
    pub fn date_seen(&self, asked: DateAsked) -> Option<NaiveDate> {
        match asked {
            DateAsked::Latest => self.latest_date(),
            DateAsked::Exactly(date) => self.files_of(date).next().map(|f| f.date),
            DateAsked::RunDate(date) => self
                .files
                .iter()
                .map(|f| f.date)
                .filter(|d| *d <= date)
                .max(),
        }
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

/// Which date of a table a reader asks for (see [`Snapshot::date_seen`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateAsked {
    /// The latest date the table holds.
    Latest,
    /// This date, and no other.
    Exactly(NaiveDate),
    /// The input of a run dated this date: that date when the table holds
    /// it, else the latest one before it.
    RunDate(NaiveDate),
}

/// One field of a table's Delta schema, as the log holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaField {
    pub name: String,
    /// Delta's name of its type: `short`, `long`, `string`, `timestamp`...
    pub delta_type: String,
    pub nullable: bool,
}

/// A table as one version's log describes it (see [`Snapshot::description`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDescription {
    /// Every field in table order, the partition column included.
    pub fields: Vec<DeltaField>,
    pub partition_columns: Vec<String>,
    /// The metadata's configuration (`delta.logRetentionDuration`...), by name.
    pub properties: BTreeMap<String, String>,
    /// How long the log keeps commits: `delta.logRetentionDuration`, or
    /// Delta's default (30 days) when the table does not set it.
    pub log_retention: std::time::Duration,
    /// How long removed files stay before vacuum may delete them:
    /// `delta.deletedFileRetentionDuration`, or Delta's default (7 days).
    pub deleted_file_retention: std::time::Duration,
    pub min_reader_version: i64,
    pub min_writer_version: i64,
    pub reader_features: Vec<String>,
    pub writer_features: Vec<String>,
}

/// What one date of a table holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DateSummary {
    pub rows: u64,
    pub files: usize,
    pub bytes: u64,
}
