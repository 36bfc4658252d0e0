//! Error classification shared by every layer.
//!
//! Errors travel as `anyhow::Error` with context naming the table, column,
//! file or offset. The only extra knowledge the pipeline needs is whether a
//! failure is worth retrying, which the [`Transient`] marker carries.

pub use lake_table::error::{Transient, is_transient};

/// One line for a terminal: every context level joined by `: `.
pub fn one_line(err: &anyhow::Error) -> String {
    err.chain()
        .map(|cause| cause.to_string())
        .collect::<Vec<_>>()
        .join(": ")
        .replace('\n', " ")
}

/// The message a panic carried (`panic!` with a literal or a format), or
/// "unknown panic".
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic")
}

/// The exit of a command-line program: success, or its error as one line
/// on stderr prefixed with `prefix` (e.g. `lake-bronze: error: `) and a
/// non-zero status.
pub fn exit_code(prefix: &str, result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{prefix}{}", one_line(&err));
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn transient_marker_is_found_anywhere_in_the_chain() {
        let err = Err::<(), _>(Transient("connection refused".into()))
            .context("reading bronze/orders")
            .unwrap_err();
        assert!(is_transient(&err));
        let wrapped = anyhow::anyhow!("refused")
            .context(Transient("unreachable".into()))
            .context("step bronze/orders");
        assert!(is_transient(&wrapped));
        assert!(!is_transient(&anyhow::anyhow!("missing column")));
    }

    #[test]
    fn one_line_joins_contexts() {
        let err = Err::<(), _>(anyhow::anyhow!("boom\nsecond line"))
            .context("outer")
            .unwrap_err();
        assert_eq!(one_line(&err), "outer: boom second line");
    }
}
