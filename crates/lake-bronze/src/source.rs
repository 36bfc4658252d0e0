//! Batch sources of bronze: PostgreSQL or the built-in generator.

use std::sync::Mutex;
use std::sync::mpsc::sync_channel;

use anyhow::{Context, Result, anyhow, bail};
use chrono::{NaiveDate, Utc};
use lake_core::config::SourceArgs;
use lake_northwind::Northwind;
use lake_pg::catalog::table_columns;
use lake_pg::copy_decoder::CopyDecoder;
use lake_pg::error::query_error;
use lake_pg::snapshot::ExportedSnapshot;
use lake_pg::url::PgUrl;
use lake_table::{Commit, DateWriter, Lake};
use polars::prelude::*;

use crate::metadata::add_metadata;

/// Rows per batch streamed from PostgreSQL: bounds memory whatever the table size.
pub const COPY_BATCH_ROWS: usize = 128 * 1024;

/// Schema the Northwind tables live in.
pub const PG_SCHEMA: &str = "public";

/// Where bronze copies tables from.
pub enum BatchSource {
    /// Boxed: a parsed URL is much larger than the generator's handle.
    Postgres(Box<PgSource>),
    /// The built-in generator, generated once per run.
    Generated(Northwind),
}

/// A PostgreSQL database, and the one snapshot every table of a run is
/// copied at: the first copy exports it from a connection held open until
/// the source is dropped, and each copy, on its own connection, imports it
/// (`pg_export_snapshot()` and `SET TRANSACTION SNAPSHOT`, as `pg_dump -j`
/// does). So copies may run in parallel and the six tables still agree
/// with each other when writes land between two copies (else a new order's
/// lines without the order would be spurious `orphan_order` rejects).
pub struct PgSource {
    url: PgUrl,
    snapshot: Mutex<Option<ExportedSnapshot>>,
    /// Rows per decoded batch ([`COPY_BATCH_ROWS`] unless set).
    batch_rows: usize,
}

impl PgSource {
    pub fn new(url: PgUrl) -> PgSource {
        PgSource {
            url,
            snapshot: Mutex::new(None),
            batch_rows: COPY_BATCH_ROWS,
        }
    }

    /// Decodes the copies in batches of `rows` rows (at least one): tests
    /// use small ones to copy a table in several batches.
    pub fn with_batch_rows(mut self, rows: usize) -> PgSource {
        self.batch_rows = rows.max(1);
        self
    }

    /// The run's snapshot id, exported on first use.
    pub fn snapshot_id(&self) -> Result<String> {
        let mut shared = self
            .snapshot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(snapshot) = shared.as_ref() {
            return Ok(snapshot.id().to_string());
        }
        let snapshot = ExportedSnapshot::export(&self.url)?;
        let id = snapshot.id().to_string();
        *shared = Some(snapshot);
        Ok(id)
    }
}

/// One table copied into data files that no version of its bronze table
/// references yet: the run's copies are committed together once every one
/// of them is complete ([`crate::commit_copies`]), so a failed copy
/// replaces nothing.
pub struct StagedCopy {
    pub writer: DateWriter,
    pub rows: u64,
    /// The `_source` value written.
    pub source: String,
}

impl StagedCopy {
    /// Commits this copy alone, replacing its table's date.
    pub fn commit(self) -> Result<Commit> {
        self.writer.replace()
    }
}

/// The PostgreSQL URL of `args`, parsed, when one is configured.
fn pg_url(args: &SourceArgs) -> Result<Option<PgUrl>> {
    match args.pg.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(raw) => Ok(Some(raw.parse()?)),
    }
}

impl BatchSource {
    /// PostgreSQL when a URL is configured, else the generator.
    pub fn from_args(args: &SourceArgs) -> Result<BatchSource> {
        match pg_url(args)? {
            Some(url) => Ok(BatchSource::Postgres(Box::new(PgSource::new(url)))),
            None => Ok(BatchSource::Generated(
                lake_northwind::generate(args.generator.scale, args.generator.seed)
                    .context("generating Northwind")?,
            )),
        }
    }

    /// The source as shown in run manifests (never a password).
    pub fn describe(&self) -> String {
        match self {
            BatchSource::Postgres(pg) => pg.url.location().to_string(),
            BatchSource::Generated(nw) => generator_location(nw),
        }
    }

    /// Copies `table` into data files for its bronze table's `date`,
    /// committing nothing: only a copy that read its source to the end is
    /// returned.
    pub fn copy(
        &self,
        lake: &Lake,
        table: &str,
        date: NaiveDate,
        run_id: &str,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<StagedCopy> {
        let writer = DateWriter::new(lake, crate::table_ref(table), date, run_id)?;
        match self {
            BatchSource::Postgres(pg) => copy_postgres(pg, table, writer, progress),
            BatchSource::Generated(nw) => copy_generated(nw, table, writer, progress),
        }
    }
}

fn generator_location(nw: &Northwind) -> String {
    format!("generator://northwind?scale={}&seed={}", nw.scale, nw.seed)
}

fn copy_generated(
    nw: &Northwind,
    table: &str,
    mut writer: DateWriter,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<StagedCopy> {
    let mut df = nw
        .table(table)
        .ok_or_else(|| anyhow!("the generator has no table {table}"))?
        .clone();
    let source = format!(
        "generator://northwind/{PG_SCHEMA}.{table}?scale={}&seed={}",
        nw.scale, nw.seed
    );
    // The generator's table is one batch: its rows are numbered from 0.
    add_metadata(&mut df, Utc::now(), &source, 0)?;
    let rows = df.height() as u64;
    writer.write_frame(&mut df)?;
    progress(rows);
    Ok(StagedCopy {
        writer,
        rows,
        source,
    })
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// What the decoding side sends the Parquet writer: the end is said
/// explicitly, so a decoder that stops early (a read error, the server
/// gone mid-COPY) can never look like a complete copy to the writer.
enum CopyBatch {
    Rows(DataFrame),
    End,
}

fn copy_postgres(
    pg: &PgSource,
    table: &str,
    writer: DateWriter,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<StagedCopy> {
    let qualified = format!("{PG_SCHEMA}.{table}");
    let source = format!("{}/{qualified}", pg.url.location());
    let snapshot = pg.snapshot_id()?;
    let client = pg.url.connect_for_copy()?;
    // The run's snapshot for the catalog query and the copy: the columns
    // read are the columns decoded, and every table is read as of one
    // moment.
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{}'",
            snapshot.replace('\'', "''")
        ))
        .map_err(|err| {
            query_error(
                err,
                &format!("reading {qualified} at the run's snapshot {snapshot} (its exporting connection must stay open)"),
            )
        })?;
    let columns = table_columns(&client, PG_SCHEMA, table)?;
    let ingested_at = Utc::now();
    let copy = format!(
        "COPY {}.{} TO STDOUT (FORMAT binary)",
        quote_ident(PG_SCHEMA),
        quote_ident(table)
    );
    let reader = client
        .copy_out(copy.as_str())
        .map_err(|err| query_error(err, &format!("copying {qualified}")))?;
    let mut decoder = CopyDecoder::new(
        std::io::BufReader::with_capacity(1 << 20, reader),
        &qualified,
        columns,
    )?;

    // Decoding (here) and Parquet encoding (the writer thread) overlap; the
    // channel's bound keeps at most a few batches in memory.
    let (batches, received) = sync_channel::<CopyBatch>(2);
    let (writer, rows) = std::thread::scope(|scope| -> Result<_> {
        let source = &source;
        let writing = scope.spawn(move || -> Result<(DateWriter, u64)> {
            let mut writer = writer;
            let mut file = None;
            let mut rows = 0u64;
            loop {
                let mut batch = match received.recv() {
                    Ok(CopyBatch::Rows(batch)) => batch,
                    Ok(CopyBatch::End) => break,
                    // The decoder stopped without reaching the end: its
                    // error is the one reported; the file stays unfinished.
                    Err(_) => bail!("{source}: the copy stopped before its last row"),
                };
                // `rows` is what the batches before this one held, so
                // `_source_row` continues across batches.
                add_metadata(&mut batch, ingested_at, source, rows)?;
                let file = match &mut file {
                    Some(file) => file,
                    None => file.insert(writer.start_file(&batch.schema().clone())?),
                };
                file.write_batch(&mut batch)?;
                rows += batch.height() as u64;
                progress(rows);
            }
            let file = file.ok_or_else(|| anyhow!("{source}: the copy produced no batch"))?;
            writer.finish_file(file)?;
            Ok((writer, rows))
        });
        let decoded = (|| -> Result<()> {
            while let Some(batch) = decoder.next_batch(pg.batch_rows)? {
                if batches.send(CopyBatch::Rows(batch)).is_err() {
                    return Ok(()); // the writer failed; its error is reported below
                }
            }
            // The end-of-data trailer was read: every row is in.
            let _ = batches.send(CopyBatch::End);
            Ok(())
        })();
        drop(batches);
        let written = writing
            .join()
            .map_err(|_| anyhow!("{source}: the Parquet writer panicked"))?;
        decoded?;
        written
    })?;
    // The server confirms the COPY (and the read transaction) only now: a
    // connection lost after the trailer still fails the copy.
    decoder
        .finish()
        .with_context(|| format!("finishing the copy of {qualified}"))?;
    client
        .batch_execute("COMMIT")
        .map_err(|err| query_error(err, &format!("finishing the read of {qualified}")))?;
    Ok(StagedCopy {
        writer,
        rows,
        source,
    })
}
