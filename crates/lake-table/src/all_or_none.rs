//! Replacing one date in several tables as one change, as far as Delta
//! allows: it has no transaction across tables, so the commits come last,
//! in the order given, and when one fails the ones before it are undone
//! (each by a `RESTORE` commit of the date, [`crate::restore`], as the
//! version before it held it).
//!
//! A step that writes several tables (silver's sales and rejects, bronze's
//! six copies) thus leaves the date either replaced in all of them or in
//! none: never one table of the run beside another table's older rows.
//! The one window left is a crash of the process between two commits
//! (milliseconds, after every data file is written); the run manifest then
//! records no success, and a rerun replaces the date in every table.

use anyhow::{Result, anyhow};

use crate::commit::Commit;
use crate::restore::restore_date;
use crate::snapshot::At;
use crate::writer::DateWriter;

/// Replaces each writer's date in its table, in the order given; either
/// every commit lands, or none stays (those made are undone) and the error
/// names the table that failed and what was undone.
pub fn replace_all(writers: Vec<DateWriter>) -> Result<Vec<Commit>> {
    // Every log must open before the first commit: a broken or unreadable
    // log then fails the change while nothing is committed yet.
    for writer in &writers {
        writer.table().latest().map_err(|err| {
            err.context(format!(
                "{} cannot be written, so no table of this change was committed",
                writer.table_ref()
            ))
        })?;
    }
    let mut committed: Vec<(Commit, DateWriterParts)> = Vec::new();
    for writer in writers {
        let parts = DateWriterParts::of(&writer);
        match writer.replace() {
            Ok(commit) => committed.push((commit, parts)),
            Err(err) => {
                let undone = undo(&committed);
                return Err(err.context(format!(
                    "replacing {} {} failed{undone}",
                    parts.table.table_ref(),
                    parts.date
                )));
            }
        }
    }
    Ok(committed.into_iter().map(|(commit, _)| commit).collect())
}

/// What undoing a commit needs of its writer.
struct DateWriterParts {
    table: crate::table::Table,
    date: chrono::NaiveDate,
    run_id: String,
}

impl DateWriterParts {
    fn of(writer: &DateWriter) -> DateWriterParts {
        DateWriterParts {
            table: writer.table().clone(),
            date: writer.date(),
            run_id: writer.run_id().to_string(),
        }
    }
}

/// Undoes `committed`, latest first; says what was undone and what could
/// not be, as the end of the failure's message.
fn undo(committed: &[(Commit, DateWriterParts)]) -> String {
    if committed.is_empty() {
        return ": nothing was committed".into();
    }
    let mut said = Vec::new();
    for (commit, parts) in committed.iter().rev() {
        let restored = restore_version_before(commit, parts);
        said.push(match restored {
            Ok(restore) => format!(
                "{commit} undone by v{} (the date as v{} held it)",
                restore.version,
                commit.version - 1
            ),
            Err(err) => {
                tracing::error!("{commit} could not be undone: {err:#}");
                format!(
                    "{commit} could NOT be undone ({err:#}): it holds this run's rows \
                     while the tables after it do not; rerun the step"
                )
            }
        });
    }
    format!("; {}", said.join("; "))
}

fn restore_version_before(commit: &Commit, parts: &DateWriterParts) -> Result<Commit> {
    let before = match commit.version {
        0 => None,
        version => Some(
            parts
                .table
                .at(At::Version(version - 1))
                .map_err(|err| anyhow!("opening v{}: {err:#}", version - 1))?,
        ),
    };
    restore_date(
        &parts.table,
        parts.date,
        &parts.run_id,
        before.as_ref(),
        commit.version,
    )
}
