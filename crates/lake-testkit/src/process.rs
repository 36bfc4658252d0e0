//! Native service processes that cannot outlive the test process.

use std::io::Write;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

use anyhow::{Context, Result};

/// Stops a service and removes its directory when the test process ends.
///
/// A `sh` watchdog blocks reading a pipe whose write end only this process
/// holds; when the process exits (normally, by panic or by SIGKILL) the read
/// returns and the watchdog runs the cleanup command.
pub struct Watchdog {
    stdin: Option<ChildStdin>,
    child: Child,
}

impl Watchdog {
    /// `cleanup` is a shell command run once the test process is gone.
    pub fn spawn(cleanup: &str) -> Result<Watchdog> {
        let script = format!("read _ignored; {cleanup}");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the service watchdog")?;
        let stdin = child.stdin.take();
        Ok(Watchdog { stdin, child })
    }

    /// Disarms the watchdog: the cleanup never runs.
    pub fn forget(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stdin.take();
    }

    /// Runs the cleanup now and waits for it.
    pub fn stop(mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"stop\n");
        }
        let _ = self.child.wait();
    }
}

/// Shell command that sends SIGTERM to the process whose PID is in
/// `pid_file` (first line), waits for it, and removes `dir`.
pub fn stop_by_pid_file(pid_file: &Path, dir: &Path) -> String {
    format!(
        "pid=$(head -n1 '{pid}' 2>/dev/null); if [ -n \"$pid\" ]; then kill -TERM \"$pid\" 2>/dev/null; \
         for i in $(seq 1 100); do kill -0 \"$pid\" 2>/dev/null || break; sleep 0.1; done; \
         kill -KILL \"$pid\" 2>/dev/null; fi; rm -rf '{dir}'",
        pid = pid_file.display(),
        dir = dir.display()
    )
}

/// Shell command that stops PID `pid` and removes `dir`.
pub fn stop_pid(pid: u32, dir: &Path) -> String {
    format!(
        "kill -TERM {pid} 2>/dev/null; for i in $(seq 1 100); do kill -0 {pid} 2>/dev/null || break; sleep 0.1; done; \
         kill -KILL {pid} 2>/dev/null; rm -rf '{dir}'",
        dir = dir.display()
    )
}
