//! Partitions and the `_SUCCESS` commit protocol (data contract, section 2).
//!
//! A partition is `{layer}/{table}/{date}/`. Writers put data files under
//! fresh names, then write the `_SUCCESS` manifest listing them (one atomic
//! put), then delete every other object of the folder. Readers read the
//! manifest and exactly the files it lists, so a crash at any point leaves
//! the old complete partition or the new one visible, never a mix.

use std::collections::BTreeSet;

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::fault;
use crate::layer::Layer;
use crate::parquet;
use crate::schema::{ColumnSpec, column_specs};
use crate::storage::{Lake, ObjectWriter};

/// Name of the commit manifest of a partition.
pub const SUCCESS: &str = "_SUCCESS";

/// A partition's address: layer, table (may hold a `/`, e.g.
/// `_rejects/sales_master`) and date.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartitionRef {
    pub layer: Layer,
    pub table: String,
    pub date: NaiveDate,
}

impl PartitionRef {
    pub fn new(layer: Layer, table: impl Into<String>, date: NaiveDate) -> Self {
        PartitionRef {
            layer,
            table: table.into(),
            date,
        }
    }

    /// Folder key inside the layer root.
    pub fn dir(&self) -> String {
        format!("{}/{}", self.table, self.date.format("%Y-%m-%d"))
    }

    fn key(&self, name: &str) -> String {
        format!("{}/{name}", self.dir())
    }
}

impl std::fmt::Display for PartitionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.layer, self.dir())
    }
}

/// One data file of a committed partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFile {
    /// File name inside the partition folder.
    pub name: String,
    pub rows: u64,
    pub bytes: u64,
    /// The stream batch that wrote the file, for files appended by a stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<FileOrigin>,
}

/// Which stream batch wrote a file: a replayed batch supersedes the files
/// of the same source partition from that batch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileOrigin {
    /// Source partition (a Kafka partition).
    pub partition: i32,
    /// Batch number within that source partition.
    pub batch: u64,
}

/// A lock older than this is taken to belong to a writer that died.
const STALE_LOCK: std::time::Duration = std::time::Duration::from_secs(30);
/// How long a writer waits for the lock before giving up.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(120);
const LOCK: &str = "_LOCK";
/// Unlisted files older than this are leftovers of crashed writers.
const STALE_FILE: std::time::Duration = std::time::Duration::from_secs(600);

/// Exclusive right to change one partition's manifest, among several
/// writer processes (an atomic create of `_LOCK`, released on drop).
struct PartitionLock {
    lake: Lake,
    layer: Layer,
    key: String,
}

impl PartitionLock {
    fn acquire(lake: &Lake, partition: &PartitionRef) -> Result<PartitionLock> {
        let key = partition.key(LOCK);
        let started = std::time::Instant::now();
        let owner = format!("{}@{}", std::process::id(), Utc::now().to_rfc3339());
        loop {
            if lake.create(partition.layer, &key, Bytes::from(owner.clone()))? {
                return Ok(PartitionLock {
                    lake: lake.clone(),
                    layer: partition.layer,
                    key,
                });
            }
            if let Some(lock) = lake.head(partition.layer, &key)? {
                let age = (Utc::now() - lock.last_modified)
                    .to_std()
                    .unwrap_or_default();
                if age > STALE_LOCK {
                    lake.delete(partition.layer, &key)?;
                    continue;
                }
            }
            if started.elapsed() > LOCK_WAIT {
                return Err(anyhow!(
                    "{partition}: could not take {LOCK} within {} s (another writer holds it; \
                     delete {} if no writer is running)",
                    LOCK_WAIT.as_secs(),
                    lake.describe(partition.layer, &key)
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

impl Drop for PartitionLock {
    fn drop(&mut self) {
        let _ = self.lake.delete(self.layer, &self.key);
    }
}

/// The `_SUCCESS` manifest: what a committed partition holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub layer: Layer,
    pub table: String,
    pub date: NaiveDate,
    pub run_id: String,
    pub written_at: DateTime<Utc>,
    pub row_count: u64,
    pub files: Vec<DataFile>,
    pub schema: Vec<ColumnSpec>,
}

/// Writes the data files of one partition, then commits them.
pub struct PartitionWriter {
    lake: Lake,
    partition: PartitionRef,
    run_id: String,
    files: Vec<DataFile>,
    schema: Option<Vec<ColumnSpec>>,
    origin: Option<FileOrigin>,
}

impl PartitionWriter {
    pub fn new(lake: &Lake, partition: PartitionRef, run_id: &str) -> Self {
        PartitionWriter {
            lake: lake.clone(),
            partition,
            run_id: run_id.to_string(),
            files: Vec::new(),
            schema: None,
            origin: None,
        }
    }

    /// Marks the files this writer writes as coming from a stream batch.
    pub fn with_origin(mut self, origin: FileOrigin) -> Self {
        self.origin = Some(origin);
        self
    }

    pub fn partition(&self) -> &PartitionRef {
        &self.partition
    }

    fn next_file_name(&self) -> String {
        // Run id + a process-wide sequence: unique per write, so a rewrite
        // (or a replayed stream batch) never overwrites a file a manifest
        // lists.
        static SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let sequence = SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let origin = self
            .origin
            .map(|o| format!("-p{}-b{}", o.partition, o.batch))
            .unwrap_or_default();
        format!("part-{}{origin}-{sequence:06}.snappy.parquet", self.run_id)
    }

    fn check_schema(&mut self, schema: &Schema) -> Result<()> {
        let specs = column_specs(schema);
        match &self.schema {
            None => self.schema = Some(specs),
            Some(existing) if *existing != specs => {
                return Err(anyhow!(
                    "{}: a data file's schema differs from the partition's first file",
                    self.partition
                ));
            }
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
        let name = self.next_file_name();
        let key = self.partition.key(&name);
        let sink = self.lake.writer(self.partition.layer, &key)?;
        let batched = parquet::parquet_writer(sink.clone())
            .batched(schema)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "starting Parquet file {}",
                    self.lake.describe(self.partition.layer, &key)
                )
            })?;
        Ok(ParquetFileWriter {
            batched,
            sink,
            name,
            rows: 0,
            description: self.lake.describe(self.partition.layer, &key),
        })
    }

    /// Closes a file started with [`PartitionWriter::start_file`].
    pub fn finish_file(&mut self, file: ParquetFileWriter) -> Result<()> {
        let ParquetFileWriter {
            batched,
            sink,
            name,
            rows,
            description,
        } = file;
        batched
            .finish()
            .map_err(anyhow::Error::from)
            .with_context(|| format!("closing Parquet file {description}"))?;
        drop(batched);
        let bytes = sink.finish()?;
        self.files.push(DataFile {
            name,
            rows,
            bytes,
            origin: self.origin,
        });
        Ok(())
    }

    /// Makes the partition visible: writes `_SUCCESS`, then deletes every
    /// object of the folder it does not list (the previous version's files
    /// and leftovers of crashed writes).
    pub fn commit(mut self) -> Result<Manifest> {
        let schema = self.schema.take().ok_or_else(|| {
            anyhow!(
                "{}: nothing was written, refusing to commit",
                self.partition
            )
        })?;
        let files = std::mem::take(&mut self.files);
        let manifest = self.publish(files, schema)?;
        remove_unlisted(&self.lake, &self.partition, &manifest)?;
        Ok(manifest)
    }

    /// Writes the `_SUCCESS` manifest listing `files`: the commit point of
    /// every commit, between the fault points crash tests use.
    fn publish(&self, files: Vec<DataFile>, schema: Vec<ColumnSpec>) -> Result<Manifest> {
        let manifest = Manifest {
            layer: self.partition.layer,
            table: self.partition.table.clone(),
            date: self.partition.date,
            run_id: self.run_id.clone(),
            written_at: Utc::now(),
            row_count: files.iter().map(|f| f.rows).sum(),
            files,
            schema,
        };
        let target = format!("{}/{}", self.partition.layer, self.partition.table);
        fault::check("before_commit", &target)?;
        let json =
            serde_json::to_vec_pretty(&manifest).context("encoding the _SUCCESS manifest")?;
        self.lake.put(
            self.partition.layer,
            &self.partition.key(SUCCESS),
            Bytes::from(json),
        )?;
        fault::check("before_cleanup", &target)?;
        Ok(manifest)
    }
}

impl PartitionWriter {
    /// Adds this writer's files to the partition, for writers that share a
    /// partition (stream processes): under the partition lock, the current
    /// manifest's files are kept except those this writer's batch
    /// supersedes (same source partition, same or later batch: the outputs
    /// of a batch replayed after a crash), and the new manifest is written.
    /// Only superseded files and stale leftovers are deleted, never the
    /// in-flight files of another writer.
    ///
    /// A writer that wrote nothing still supersedes (a replayed batch may
    /// have less to say than its first attempt); it returns `None` when
    /// the partition does not exist, as there is nothing to change.
    pub fn commit_append(self) -> Result<Option<Manifest>> {
        let origin = self.origin;
        if self.files.is_empty() && read_manifest(&self.lake, &self.partition)?.is_none() {
            return Ok(None);
        }
        self.commit_locked(
            |file| match (origin, file.origin) {
                (Some(mine), Some(theirs)) => {
                    theirs.partition == mine.partition && theirs.batch >= mine.batch
                }
                _ => false,
            },
            false,
        )
        .map(Some)
    }

    /// Replaces the partition (like [`PartitionWriter::commit`]) for writers
    /// that share a partition: under the partition lock, deleting only the
    /// files of the replaced manifest and stale leftovers.
    pub fn commit_replace(self) -> Result<Manifest> {
        self.commit_locked(|_| true, true)
    }

    fn commit_locked(
        self,
        superseded: impl Fn(&DataFile) -> bool,
        sweep: bool,
    ) -> Result<Manifest> {
        let _lock = PartitionLock::acquire(&self.lake, &self.partition)?;
        let previous = read_manifest(&self.lake, &self.partition)?;
        // A writer with no file of its own keeps the partition's schema.
        let schema = self
            .schema
            .clone()
            .or_else(|| previous.as_ref().map(|m| m.schema.clone()))
            .ok_or_else(|| {
                anyhow!(
                    "{}: nothing was written, refusing to commit",
                    self.partition
                )
            })?;
        let (kept, dropped): (Vec<DataFile>, Vec<DataFile>) = previous
            .as_ref()
            .map(|m| m.files.clone())
            .unwrap_or_default()
            .into_iter()
            .partition(|file| !superseded(file));
        if let Some(previous) = &previous
            && !kept.is_empty()
            && previous.schema != schema
        {
            return Err(anyhow!(
                "{}: new files do not have the partition's schema (it has {} columns, they have {})",
                self.partition,
                previous.schema.len(),
                schema.len()
            ));
        }
        let mut files = kept;
        files.extend(self.files.iter().cloned());
        let manifest = self.publish(files, schema)?;
        let listed: BTreeSet<&str> = manifest.files.iter().map(|f| f.name.as_str()).collect();
        for file in dropped.iter().filter(|f| !listed.contains(f.name.as_str())) {
            self.lake
                .delete(self.partition.layer, &self.partition.key(&file.name))?;
        }
        // Sweeping leftovers lists the folder: worth it when replacing (rare),
        // not on every append of a stream.
        if sweep {
            remove_stale_leftovers(&self.lake, &self.partition, &manifest)?;
        }
        Ok(manifest)
    }
}

/// Deletes unlisted data files old enough to be leftovers of crashed
/// writers (recent ones may belong to a writer about to commit).
fn remove_stale_leftovers(
    lake: &Lake,
    partition: &PartitionRef,
    manifest: &Manifest,
) -> Result<()> {
    let listed: BTreeSet<String> = manifest
        .files
        .iter()
        .map(|f| partition.key(&f.name))
        .collect();
    let now = Utc::now();
    for object in lake.list(partition.layer, &partition.dir())? {
        let name = object.key.rsplit('/').next().unwrap_or_default();
        let age = (now - object.last_modified).to_std().unwrap_or_default();
        if name != SUCCESS && name != LOCK && !listed.contains(&object.key) && age > STALE_FILE {
            lake.delete(partition.layer, &object.key)?;
        }
    }
    Ok(())
}

/// Deletes the objects of a partition folder that its manifest does not list.
fn remove_unlisted(lake: &Lake, partition: &PartitionRef, manifest: &Manifest) -> Result<()> {
    let keep: BTreeSet<String> = manifest
        .files
        .iter()
        .map(|f| partition.key(&f.name))
        .chain([partition.key(SUCCESS)])
        .collect();
    for object in lake.list(partition.layer, &partition.dir())? {
        if !keep.contains(&object.key) {
            lake.delete(partition.layer, &object.key)?;
        }
    }
    Ok(())
}

/// A data file being written in batches.
pub struct ParquetFileWriter {
    batched: polars::io::parquet::write::BatchedWriter<ObjectWriter>,
    sink: ObjectWriter,
    name: String,
    rows: u64,
    description: String,
}

impl ParquetFileWriter {
    /// Writes a batch as one or more row groups (its chunks are aligned
    /// first, as Parquet row groups need).
    pub fn write_batch(&mut self, df: &mut DataFrame) -> Result<()> {
        let height = df.height() as u64;
        let chunked = polars::frame::chunk_df_for_writing(df, parquet::ROW_GROUP_ROWS)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("preparing a batch for {}", self.description))?;
        self.batched
            .write_batch(&chunked)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("writing Parquet file {}", self.description))?;
        self.rows += height;
        Ok(())
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }
}

/// Reads the manifest of a partition; `None` when it is not committed.
pub fn read_manifest(lake: &Lake, partition: &PartitionRef) -> Result<Option<Manifest>> {
    let Some(bytes) = lake.get(partition.layer, &partition.key(SUCCESS))? else {
        return Ok(None);
    };
    let manifest = serde_json::from_slice(&bytes)
        .with_context(|| format!("{partition}/{SUCCESS} is not a valid manifest"))?;
    Ok(Some(manifest))
}

/// Tables of a layer: its folders (one level down for `_rejects/` and
/// `_dlq/`), whether or not they hold a committed partition yet.
pub fn tables(lake: &Lake, layer: Layer) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for dir in lake.list_dirs(layer, "")? {
        if dir.starts_with('_') {
            for sub in lake.list_dirs(layer, &dir)? {
                out.push(format!("{dir}/{sub}"));
            }
        } else {
            out.push(dir);
        }
    }
    Ok(out)
}

/// Dates of the committed partitions of a table, oldest first.
pub fn committed_dates(lake: &Lake, layer: Layer, table: &str) -> Result<Vec<NaiveDate>> {
    let mut dates = Vec::new();
    for dir in lake.list_dirs(layer, table)? {
        let Ok(date) = NaiveDate::parse_from_str(&dir, "%Y-%m-%d") else {
            continue;
        };
        let partition = PartitionRef::new(layer, table, date);
        if lake.get(layer, &partition.key(SUCCESS))?.is_some() {
            dates.push(date);
        }
    }
    dates.sort();
    Ok(dates)
}

/// The partition a run dated `date` reads: the one of that date when it is
/// committed, else the latest committed one before it.
pub fn resolve_input(
    lake: &Lake,
    layer: Layer,
    table: &str,
    date: NaiveDate,
) -> Result<(PartitionRef, Manifest)> {
    let dates = committed_dates(lake, layer, table)?;
    let chosen = dates
        .into_iter()
        .rev()
        .find(|d| *d <= date)
        .ok_or_else(|| {
            anyhow!(
                "no committed partition of {layer}/{table} on or before {date} in {}",
                lake.url()
            )
        })?;
    let partition = PartitionRef::new(layer, table, chosen);
    let manifest = read_manifest(lake, &partition)?
        .ok_or_else(|| anyhow!("{partition} lost its {SUCCESS} while being read"))?;
    Ok((partition, manifest))
}

/// Reads the files a manifest lists, only `columns` when given, as one frame.
pub fn read_partition(
    lake: &Lake,
    partition: &PartitionRef,
    manifest: &Manifest,
    columns: Option<&[String]>,
) -> Result<DataFrame> {
    let mut frames = Vec::with_capacity(manifest.files.len());
    for file in &manifest.files {
        let key = partition.key(&file.name);
        let missing = || {
            anyhow!(
                "{} is listed in {partition}/{SUCCESS} but missing (rewritten concurrently?)",
                lake.describe(partition.layer, &key)
            )
        };
        let df = match columns {
            // Only some columns: never fetch the others.
            Some(columns) => match lake.local_path(partition.layer, &key) {
                Some(path) if path.exists() => {
                    parquet::read_columns(parquet::ParquetSource::Local(&path), columns)
                }
                Some(_) => Err(missing()),
                None => parquet::read_columns(
                    parquet::ParquetSource::Ranged {
                        len: file.bytes,
                        fetch: &|ranges| lake.get_ranges(partition.layer, &key, ranges),
                    },
                    columns,
                ),
            },
            None => {
                let bytes = lake.get(partition.layer, &key)?.ok_or_else(missing)?;
                parquet::decode(bytes, None)
            }
        }
        .with_context(|| format!("reading {}", lake.describe(partition.layer, &key)))?;
        frames.push(df);
    }
    let mut frames = frames.into_iter();
    let mut out = frames
        .next()
        .ok_or_else(|| anyhow!("{partition}: the manifest lists no data file"))?;
    for df in frames {
        out.vstack_mut_owned(df)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{partition}: data files with different schemas"))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
    }

    fn lake() -> (tempfile::TempDir, Lake) {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        (dir, lake)
    }

    fn write(lake: &Lake, date: NaiveDate, run: &str, values: &[i64]) -> Manifest {
        let mut writer = PartitionWriter::new(lake, PartitionRef::new(Layer::Gold, "t", date), run);
        let mut df = df!("x" => values).unwrap();
        writer.write_frame(&mut df).unwrap();
        writer.commit().unwrap()
    }

    fn read_x(lake: &Lake, date: NaiveDate) -> Vec<i64> {
        let partition = PartitionRef::new(Layer::Gold, "t", date);
        let manifest = read_manifest(lake, &partition).unwrap().unwrap();
        let df = read_partition(lake, &partition, &manifest, None).unwrap();
        df.column("x")
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect()
    }

    #[test]
    fn a_rewrite_replaces_the_partition_and_deletes_the_old_files() {
        let (_dir, lake) = lake();
        let first = write(&lake, day(1), "r1", &[1, 2, 3]);
        assert_eq!(
            (first.row_count, first.schema[0].dtype.as_str()),
            (3, "Int64")
        );
        let second = write(&lake, day(1), "r2", &[4, 5]);
        assert_eq!(read_x(&lake, day(1)), vec![4, 5]);
        let objects: Vec<String> = lake
            .list(Layer::Gold, "t/2026-03-01")
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        let mut expected = vec![
            format!("t/2026-03-01/{}", second.files[0].name),
            "t/2026-03-01/_SUCCESS".to_string(),
        ];
        expected.sort();
        assert_eq!(objects, expected);
    }

    #[test]
    fn uncommitted_files_are_invisible() {
        let (_dir, lake) = lake();
        let mut writer =
            PartitionWriter::new(&lake, PartitionRef::new(Layer::Gold, "t", day(2)), "r1");
        writer
            .write_frame(&mut df!("x" => [1i64]).unwrap())
            .unwrap();
        drop(writer);
        assert!(
            read_manifest(&lake, &PartitionRef::new(Layer::Gold, "t", day(2)))
                .unwrap()
                .is_none()
        );
        assert!(committed_dates(&lake, Layer::Gold, "t").unwrap().is_empty());
        let err = resolve_input(&lake, Layer::Gold, "t", day(2))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("no committed partition of gold/t on or before 2026-03-02"),
            "{err}"
        );
    }

    #[test]
    fn inputs_resolve_to_the_date_or_the_latest_before_it() {
        let (_dir, lake) = lake();
        write(&lake, day(1), "r1", &[1]);
        write(&lake, day(3), "r3", &[3]);
        let date_of = |d| {
            resolve_input(&lake, Layer::Gold, "t", day(d))
                .unwrap()
                .0
                .date
        };
        assert_eq!(date_of(1), day(1));
        assert_eq!(date_of(2), day(1));
        assert_eq!(date_of(3), day(3));
        assert_eq!(date_of(9), day(3));
    }

    #[test]
    fn frames_with_misaligned_chunks_are_written_whole() {
        let (_dir, lake) = lake();
        // One chunk in `x`, two in `y` (as a join can leave them): Parquet
        // row groups need the chunks aligned.
        let x = Series::new("x".into(), [1i64, 2, 3]);
        let mut y = Series::new("y".into(), [10i64, 20]);
        y.append(&Series::new("y".into(), [30i64])).unwrap();
        let mut df = DataFrame::new(3, vec![x.into_column(), y.into_column()]).unwrap();
        let mut writer =
            PartitionWriter::new(&lake, PartitionRef::new(Layer::Gold, "t", day(4)), "r1");
        writer.write_frame(&mut df).unwrap();
        let manifest = writer.commit().unwrap();
        assert_eq!(manifest.row_count, 3);
        assert_eq!(read_x(&lake, day(4)), vec![1, 2, 3]);
    }

    fn append(lake: &Lake, source_partition: i32, batch: u64, values: &[i64]) -> Manifest {
        let writer =
            PartitionWriter::new(lake, PartitionRef::new(Layer::Bronze, "s", day(6)), "run")
                .with_origin(FileOrigin {
                    partition: source_partition,
                    batch,
                });
        let mut writer = writer;
        if !values.is_empty() {
            writer
                .write_frame(&mut df!("x" => values).unwrap())
                .unwrap();
        }
        writer.commit_append().unwrap().unwrap()
    }

    fn read_s(lake: &Lake) -> Vec<i64> {
        let partition = PartitionRef::new(Layer::Bronze, "s", day(6));
        let manifest = read_manifest(lake, &partition).unwrap().unwrap();
        let df = read_partition(lake, &partition, &manifest, None).unwrap();
        let mut values: Vec<i64> = df
            .column("x")
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        values.sort();
        values
    }

    #[test]
    fn appends_accumulate_and_a_replayed_batch_supersedes_its_earlier_output() {
        let (_dir, lake) = lake();
        append(&lake, 0, 1, &[1, 2]);
        append(&lake, 1, 1, &[10]);
        append(&lake, 0, 2, &[3]);
        assert_eq!(read_s(&lake), vec![1, 2, 3, 10]);
        // Partition 0 replays batch 2 (a crash before its checkpoint): the
        // first attempt's file goes, partition 1's files stay.
        let manifest = append(&lake, 0, 2, &[3, 4]);
        assert_eq!(read_s(&lake), vec![1, 2, 3, 4, 10]);
        assert_eq!(manifest.files.len(), 3);
        let on_disk = lake.list(Layer::Bronze, "s/2026-03-06").unwrap();
        assert_eq!(
            on_disk.len(),
            4,
            "three data files and _SUCCESS: {on_disk:?}"
        );
        // Replayed once more with nothing to write: the batch's files go.
        append(&lake, 0, 2, &[]);
        assert_eq!(read_s(&lake), vec![1, 2, 10]);
        // Nothing to write to a partition that does not exist: no partition.
        let writer =
            PartitionWriter::new(&lake, PartitionRef::new(Layer::Bronze, "s", day(7)), "run")
                .with_origin(FileOrigin {
                    partition: 0,
                    batch: 1,
                });
        assert!(writer.commit_append().unwrap().is_none());
        assert!(
            read_manifest(&lake, &PartitionRef::new(Layer::Bronze, "s", day(7)))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn concurrent_appends_lose_nothing() {
        let (_dir, lake) = lake();
        append(&lake, 9, 1, &[900]);
        std::thread::scope(|scope| {
            for writer in 0..6i32 {
                let lake = lake.clone();
                scope.spawn(move || {
                    for batch in 1..=5u64 {
                        append(&lake, writer, batch, &[writer as i64 * 100 + batch as i64]);
                        // Batches with nothing to write still commit.
                        append(&lake, writer, batch + 100, &[]);
                    }
                });
            }
        });
        let mut expected: Vec<i64> = (0..6)
            .flat_map(|w| (1..=5).map(move |b| w * 100 + b))
            .chain([900])
            .collect();
        expected.sort();
        assert_eq!(read_s(&lake), expected);
        assert!(
            lake.head(Layer::Bronze, "s/2026-03-06/_LOCK")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_locked_replace_keeps_only_the_new_files() {
        let (_dir, lake) = lake();
        append(&lake, 0, 1, &[1]);
        let mut writer =
            PartitionWriter::new(&lake, PartitionRef::new(Layer::Bronze, "s", day(6)), "snap");
        writer
            .write_frame(&mut df!("x" => [7i64, 8]).unwrap())
            .unwrap();
        writer.commit_replace().unwrap();
        assert_eq!(read_s(&lake), vec![7, 8]);
        assert_eq!(lake.list(Layer::Bronze, "s/2026-03-06").unwrap().len(), 2);
    }

    #[test]
    fn files_of_one_partition_must_share_a_schema() {
        let (_dir, lake) = lake();
        let mut writer =
            PartitionWriter::new(&lake, PartitionRef::new(Layer::Gold, "t", day(5)), "r1");
        writer
            .write_frame(&mut df!("x" => [1i64]).unwrap())
            .unwrap();
        let err = writer
            .write_frame(&mut df!("x" => ["a"]).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("schema differs"), "{err}");
    }
}
