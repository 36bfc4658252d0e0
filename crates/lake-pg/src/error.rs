//! PostgreSQL failures as one-line errors saying what was being done, the
//! server's own message kept, marked transient when retrying may succeed
//! (the step runner retries those).

use anyhow::anyhow;
use lake_core::error::Transient;

/// A connection failure as a one-line error; I/O failures (server down,
/// refused, timeout) are marked transient, refusals by the server are not.
pub(crate) fn connection_error(err: postgres::Error, redacted: &str) -> anyhow::Error {
    let transient = err.as_db_error().is_none();
    let err =
        anyhow!(describe(&err)).context(format!("cannot connect to PostgreSQL at {redacted}"));
    if transient {
        err.context(Transient("PostgreSQL unreachable".into()))
    } else {
        err
    }
}

/// The server's own message for a database error (postgres' `Display` says
/// only "db error"), else the client's.
fn describe(err: &postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => match std::error::Error::source(err) {
            Some(source) => format!("{err}: {source}"),
            None => err.to_string(),
        },
    }
}

/// An error of a query on an open connection, with what was being done.
pub fn query_error(err: postgres::Error, what: &str) -> anyhow::Error {
    let transient = err.is_closed() || err.as_db_error().is_none();
    let err = anyhow!(describe(&err)).context(what.to_string());
    if transient {
        err.context(Transient("PostgreSQL connection lost".into()))
    } else {
        err
    }
}
