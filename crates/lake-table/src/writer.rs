//! Writing one date of a table: Parquet data files under
//! `{table}/{YYYY-MM-DD}/`, then one Delta commit that makes them visible.
//!
//! Until the commit, the files are invisible to every reader (no snapshot
//! lists them). A writer dropped or crashed before its commit leaves files
//! that no version references; `vacuum` deletes them once they are older
//! than the retention period.

use anyhow::{Context, Result, anyhow, bail};
use chrono::{NaiveDate, Utc};
use polars::prelude::*;

use crate::commit::{self, Change, Commit, NewFile, Outcome, Txn};
use crate::delta_types::stored_schema;
use crate::parquet;
use crate::snapshot::FileEntry;
use crate::stats::FileStats;
use crate::storage::{Lake, ObjectWriter};
use crate::table::{PARTITION_COLUMN, Table, TableRef};

/// Writes the data files of one date of a table, then commits them. A
/// clone commits the same files (a commit step retried after a transient
/// failure commits again what it was handed).
#[derive(Clone)]
pub struct DateWriter {
    table: Table,
    date: NaiveDate,
    run_id: String,
    files: Vec<NewFile>,
    /// The schema of the frames given (before storage casts).
    schema: Option<Schema>,
    /// Extra entries of the commit's info.
    metadata: serde_json::Map<String, serde_json::Value>,
    /// The stream writes the table ([`DateWriter::for_stream`]).
    streaming: bool,
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    Committed(Commit),
    /// The table already holds these transactions at their version (or a
    /// later one): nothing was committed.
    AlreadyApplied(Vec<Txn>),
    /// Nothing to commit: no file and no transaction.
    Empty,
}

impl DateWriter {
    pub fn new(lake: &Lake, table: TableRef, date: NaiveDate, run_id: &str) -> Result<DateWriter> {
        Ok(DateWriter {
            table: Table::open(lake, table)?,
            date,
            run_id: run_id.to_string(),
            files: Vec::new(),
            schema: None,
            metadata: Default::default(),
            streaming: false,
        })
    }

    /// The stream writes this table: created by this writer, it keeps its
    /// log [`crate::STREAM_LOG_RETENTION`] (the stream commits every
    /// second or so), not Delta's default.
    pub fn for_stream(mut self) -> Self {
        self.streaming = true;
        self
    }

    /// Adds an entry to the commit's info (`commitInfo` in the log).
    pub fn with_commit_info(mut self, key: &str, value: serde_json::Value) -> Self {
        self.metadata.insert(key.to_string(), value);
        self
    }

    pub fn table_ref(&self) -> &TableRef {
        self.table.table_ref()
    }

    pub(crate) fn table(&self) -> &Table {
        &self.table
    }

    /// The date this writer replaces or appends to.
    pub fn date(&self) -> NaiveDate {
        self.date
    }

    pub(crate) fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Rows in the data files finished so far (from their statistics).
    pub fn rows(&self) -> u64 {
        self.files.iter().map(|f| f.stats.rows()).sum()
    }

    fn check_schema(&mut self, schema: &Schema) -> Result<()> {
        if schema.contains(PARTITION_COLUMN) {
            bail!(
                "{}: {PARTITION_COLUMN} is the partition column of every table; a frame cannot hold it",
                self.table_ref()
            );
        }
        match &self.schema {
            None => self.schema = Some(schema.clone()),
            Some(existing) if existing != schema => bail!(
                "{} {}: a data file's schema differs from the first file's",
                self.table_ref(),
                self.date
            ),
            Some(_) => {}
        }
        Ok(())
    }

    /// Writes a whole frame as one data file.
    pub fn write_frame(&mut self, df: &mut DataFrame) -> Result<()> {
        let mut file = self.start_file(&df.schema().clone())?;
        file.write_batch(df)?;
        self.finish_file(file)
    }

    /// Starts a data file written in batches (bounded memory for big tables).
    pub fn start_file(&mut self, schema: &Schema) -> Result<ParquetFileWriter> {
        self.check_schema(schema)?;
        let stored =
            stored_schema(schema).with_context(|| format!("writing {}", self.table_ref()))?;
        let path = format!(
            "{}/part-{:05}-{}.snappy.parquet",
            self.date.format("%Y-%m-%d"),
            self.files.len(),
            uuid::Uuid::new_v4()
        );
        let table = self.table_ref().clone();
        let key = format!("{}/{path}", table.name);
        let lake = self.table.lake();
        let description = lake.describe(table.layer, &key);
        let sink = lake.writer(table.layer, &key)?;
        let parquet = parquet::ParquetFile::new(sink.clone(), &stored)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("starting Parquet file {description}"))?;
        Ok(ParquetFileWriter {
            parquet,
            sink,
            stats: FileStats::new(&stored),
            stored: Arc::new(stored),
            path,
            description,
        })
    }

    /// Closes a file started with [`DateWriter::start_file`].
    pub fn finish_file(&mut self, file: ParquetFileWriter) -> Result<()> {
        let ParquetFileWriter {
            mut parquet,
            sink,
            stats,
            path,
            description,
            ..
        } = file;
        parquet
            .finish()
            .map_err(anyhow::Error::from)
            .with_context(|| format!("closing Parquet file {description}"))?;
        drop(parquet);
        let bytes = sink.finish()?;
        self.files.push(NewFile {
            path,
            bytes,
            stats,
            modified_ms: Utc::now().timestamp_millis(),
        });
        Ok(())
    }

    /// Replaces the date: one commit removing every file the table holds
    /// for it and adding this writer's (Delta's `replaceWhere`). The other
    /// dates are untouched; a date written for the first time is added.
    pub fn replace(self) -> Result<Commit> {
        if self.schema.is_none() {
            return Err(anyhow!(
                "{} {}: nothing was written, refusing to commit",
                self.table_ref(),
                self.date
            ));
        }
        match self.commit(Change::Replace)? {
            Outcome::Committed(commit) => Ok(commit),
            Outcome::AlreadyApplied(_) => Err(anyhow!("a replace carries no transaction")),
        }
    }

    /// Adds this writer's files to the date, with `txns` (the stream's
    /// micro-batches). When the table already holds one of them, nothing
    /// is committed: a replayed micro-batch, or another process writing
    /// the same source partition. A writer with no file still commits its
    /// transactions.
    pub fn append(self, txns: Vec<Txn>) -> Result<AppendOutcome> {
        if self.files.is_empty() && txns.is_empty() {
            return Ok(AppendOutcome::Empty);
        }
        Ok(match self.commit(Change::Append(txns))? {
            Outcome::Committed(commit) => AppendOutcome::Committed(commit),
            Outcome::AlreadyApplied(txns) => AppendOutcome::AlreadyApplied(txns),
        })
    }

    fn commit(self, change: Change) -> Result<Outcome> {
        let DateWriter {
            table,
            date,
            run_id,
            files,
            metadata,
            schema,
            streaming,
        } = self;
        let by = commit::CommitBy {
            run_id: &run_id,
            streaming,
        };
        commit::commit(&table, date, &by, schema.as_ref(), files, change, &metadata)
    }
}

impl DateWriter {
    /// Commits a compaction: this writer's files take the place of
    /// `removed` (files of the same date) with the same rows.
    pub(crate) fn compact(self, removed: Vec<FileEntry>, target_size: u64) -> Result<Commit> {
        let change = Change::Compact {
            removed,
            target_size,
        };
        match self.commit(change)? {
            Outcome::Committed(commit) => Ok(commit),
            Outcome::AlreadyApplied(_) => Err(anyhow!("a compaction carries no transaction")),
        }
    }
}

/// A data file being written in batches.
pub struct ParquetFileWriter {
    parquet: parquet::ParquetFile<ObjectWriter>,
    sink: ObjectWriter,
    stats: FileStats,
    /// The schema the file is written with.
    stored: SchemaRef,
    path: String,
    description: String,
}

impl ParquetFileWriter {
    /// Writes a batch as one or more row groups (its columns cast to the
    /// types stored).
    pub fn write_batch(&mut self, df: &mut DataFrame) -> Result<()> {
        let mut stored = cast_to(df, &self.stored)
            .with_context(|| format!("preparing a batch for {}", self.description))?;
        self.stats.add(&stored)?;
        self.parquet
            .write(&mut stored)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("writing Parquet file {}", self.description))?;
        Ok(())
    }

    /// Bytes handed to storage so far (Parquet buffers a row group first).
    pub fn bytes_written(&self) -> u64 {
        self.sink.written()
    }
}

/// `df` as a scan of the table would give it back once written: each
/// column cast to the type the table stores it as. A step that hands its
/// written frames on in memory gives the reader what the lake holds.
pub fn as_stored(df: &DataFrame) -> Result<DataFrame> {
    cast_to(df, &stored_schema(df.schema())?)
}

/// The frame with each column cast to the stored type (a no-op for the
/// columns already of it).
fn cast_to(df: &DataFrame, schema: &Schema) -> Result<DataFrame> {
    if df.schema().as_ref() == schema {
        return Ok(df.clone());
    }
    let columns = schema
        .iter()
        .map(|(name, dtype)| {
            let column = df.column(name)?;
            if column.dtype() == dtype {
                Ok(column.clone())
            } else {
                column
                    .cast(dtype)
                    .map_err(anyhow::Error::from)
                    .with_context(|| format!("casting column {name} to {dtype}"))
            }
        })
        .collect::<Result<Vec<_>>>()?;
    DataFrame::new(df.height(), columns).map_err(anyhow::Error::from)
}
