//! Measuring the benchmarks' runs: a child's success, peak memory and CPU
//! time (from wait4), the machine's load, and percentiles of timings.

use std::time::Duration;

use anyhow::{Result, bail};

/// What wait4 says of a finished child.
pub(crate) struct ChildUsage {
    pub ok: bool,
    pub max_rss_bytes: u64,
    pub cpu: Duration,
}

/// Waits for a child: success, peak RSS and CPU time, from wait4.
pub(crate) fn wait_with_usage(pid: u32) -> Result<ChildUsage> {
    let mut status: libc::c_int = 0;
    // SAFETY: a zeroed rusage is a valid out-parameter for wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child, status and usage are valid pointers.
    let waited = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    if waited < 0 {
        bail!(
            "waiting for the benchmark child: {}",
            std::io::Error::last_os_error()
        );
    }
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok(ChildUsage {
        ok: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        // ru_maxrss is in kilobytes on Linux.
        max_rss_bytes: usage.ru_maxrss as u64 * 1024,
        cpu: time(usage.ru_utime) + time(usage.ru_stime),
    })
}

/// Waits for a child and returns (success, peak RSS in bytes).
pub(crate) fn wait_with_rusage(pid: u32) -> Result<(bool, u64)> {
    let usage = wait_with_usage(pid)?;
    Ok((usage.ok, usage.max_rss_bytes))
}

/// The 1-minute load average, as /proc/loadavg says.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// The value at quantile `p` (0 to 1) of `sorted`, by nearest rank; NaN
/// when there is none.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}
