//! Fault injection for crash tests.
//!
//! `LAKE_FAULT=point@target[,point@target...]` makes the named point fail
//! for the named target (e.g. `before_commit@silver/sales_master`); tests in
//! their own process may set the same specification with [`inject`]. The
//! points are `before_commit` (data files written, `_SUCCESS` not yet) and
//! `before_cleanup` (`_SUCCESS` written, the previous files not yet deleted).
//! Production pays one environment lookup per commit.

use std::sync::Mutex;

use anyhow::bail;

/// Name of the environment variable holding the faults to inject.
pub const FAULT_ENV: &str = "LAKE_FAULT";

static INJECTED: Mutex<Option<String>> = Mutex::new(None);

/// Sets (or clears) the faults of this process, overriding `LAKE_FAULT`.
pub fn inject(spec: Option<&str>) {
    let mut injected = INJECTED.lock().unwrap_or_else(|p| p.into_inner());
    *injected = spec.map(str::to_string);
}

/// Fails when `point@target` is listed in the injected faults.
pub fn check(point: &str, target: &str) -> anyhow::Result<()> {
    let injected = INJECTED.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let Some(spec) = injected.or_else(|| std::env::var(FAULT_ENV).ok()) else {
        return Ok(());
    };
    let wanted = format!("{point}@{target}");
    if spec.split(',').any(|item| item.trim() == wanted) {
        bail!("injected fault {wanted} ({FAULT_ENV})");
    }
    Ok(())
}
