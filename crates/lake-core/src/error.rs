//! Error classification shared by every layer.
//!
//! Errors travel as `anyhow::Error` with context naming the table, column,
//! file or offset. The pipeline needs to know two things more: whether a
//! failure is worth retrying, which the [`Transient`] marker carries, and
//! whether it is a run's failed step, which the runner reported already
//! ([`RunFailed`]). How an error is shown (one line, its backtrace, the exit
//! of a program) is here too.

pub use lake_table::error::{Transient, is_transient};

/// One line for a terminal: every context level joined by `: ` (anyhow's
/// `{:#}`), without the backtraces some causes put in their message
/// (delta-rs' kernel errors add one when `RUST_BACKTRACE` is set: hundreds
/// of lines that would otherwise be joined into this one).
pub fn one_line(err: &anyhow::Error) -> String {
    split_backtraces(&format!("{err:#}")).0.replace('\n', " ")
}

/// The error's backtrace, for lines of its own after the one-line error,
/// when `RUST_LIB_BACKTRACE` asks for error backtraces: one a cause put in
/// its message, else anyhow's own. `RUST_BACKTRACE` alone (often set for
/// panics) does not print one: errors then stay one line.
pub fn backtrace_of(err: &anyhow::Error) -> Option<String> {
    let asked = std::env::var("RUST_LIB_BACKTRACE").is_ok_and(|v| !v.is_empty() && v != "0");
    if !asked {
        return None;
    }
    let embedded = split_backtraces(&format!("{err:#}")).1;
    if !embedded.is_empty() {
        return Some(embedded.join("\n"));
    }
    let own = err.backtrace();
    (own.status() == std::backtrace::BacktraceStatus::Captured).then(|| own.to_string())
}

/// `text` without the blocks of lines that are a printed
/// `std::backtrace::Backtrace` (`   0: symbol`, `      at file:line`,
/// `   1: ...`), and those blocks.
fn split_backtraces(text: &str) -> (String, Vec<String>) {
    fn frame_number(line: &str) -> Option<&str> {
        let trimmed = line.trim_start();
        let digits = trimmed.len()
            - trimmed
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .len();
        (digits > 0 && trimmed[digits..].starts_with(": ")).then(|| &trimmed[..digits])
    }
    let is_location = |line: &str| line.starts_with(' ') && line.trim_start().starts_with("at ");
    let mut kept: Vec<&str> = Vec::new();
    let mut backtraces: Vec<String> = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in text.split('\n') {
        if let Some(block) = current.as_mut() {
            if frame_number(line).is_some() || is_location(line) {
                block.push(line);
                continue;
            }
            backtraces.push(block.join("\n"));
            current = None;
        }
        if frame_number(line) == Some("0") {
            current = Some(vec![line]);
        } else {
            kept.push(line);
        }
    }
    if let Some(block) = current {
        backtraces.push(block.join("\n"));
    }
    // The line a backtrace followed may end with the newline it was
    // joined with: trailing blanks go.
    while kept.last().is_some_and(|line| line.trim().is_empty()) {
        kept.pop();
    }
    (kept.join("\n"), backtraces)
}

/// Writes one line to stderr, ignoring failures: a closed or broken stderr
/// (`... 2>&1 | head -3`) must not panic the writer (`eprintln!` does),
/// which in the step runner would leave the run waiting for a dead worker.
pub fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stderr = std::io::stderr().lock();
    let _ = stderr
        .write_fmt(line)
        .and_then(|()| stderr.write_all(b"\n"));
}

/// Writes `text` to stdout, ignoring a closed pipe (`... | head`): the
/// reader has what it wanted. Other failures are errors.
pub fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(err).context("writing to standard output"))
        }
        _ => Ok(()),
    }
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

/// The error of a run a step failed, as the runner reported it (its
/// backtrace, if asked for, was printed with the step's failure).
#[derive(Debug)]
pub struct RunFailed(pub String);

impl std::fmt::Display for RunFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RunFailed {}

/// The exit of a command-line program: success, or its error as one line
/// on stderr prefixed with `prefix` (e.g. `lake-bronze: error: `) and a
/// non-zero status; its backtrace after that line when asked for (see
/// [`backtrace_of`]), except for a failed step's, which the step runner
/// printed with the step's failure.
pub fn exit_code(prefix: &str, result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            say(format_args!("{prefix}{}", one_line(&err)));
            if err.downcast_ref::<RunFailed>().is_none()
                && let Some(backtrace) = backtrace_of(&err)
            {
                say(format_args!("backtrace:\n{backtrace}"));
            }
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

    /// A cause whose message carries a backtrace (delta kernel's
    /// `Backtraced`: "{source}\n{backtrace}") stays one short line.
    #[test]
    fn one_line_leaves_out_a_backtrace_in_a_message() {
        let backtrace = std::backtrace::Backtrace::force_capture().to_string();
        assert!(backtrace.lines().count() > 3, "{backtrace}");
        let inner = anyhow::anyhow!("Invalid JSON in log: expected value\n{backtrace}");
        let err = inner
            .context("reading silver/sales_master")
            .context("step x");
        assert_eq!(
            one_line(&err),
            "step x: reading silver/sales_master: Invalid JSON in log: expected value"
        );
        let (_, found) = split_backtraces(&format!("{err:#}"));
        assert_eq!(found, vec![backtrace.trim_end().to_string()]);
        // Lines that merely start with a number are kept.
        let listed = anyhow::anyhow!("two problems:\n1: a\n2: b");
        assert_eq!(one_line(&listed), "two problems: 1: a 2: b");
    }
}
