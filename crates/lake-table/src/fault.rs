//! Fault injection for crash tests.
//!
//! `LAKE_FAULT=point@target[,point@target...]` makes the named point fail
//! for the named target (e.g. `before_commit@silver/sales_master`); tests in
//! their own process may set the same specification with [`inject`].
//! `hang:point@target` instead stops the process there for good, after
//! creating the file `LAKE_FAULT_MARKER` names: a test waits for that file,
//! then kills the process with -9 exactly at that point.
//!
//! The point is `before_commit` (a commit's data files written, its log
//! entry not yet). Production pays one environment lookup per commit.

use std::sync::Mutex;

use anyhow::bail;

/// Name of the environment variable holding the faults to inject.
pub const FAULT_ENV: &str = "LAKE_FAULT";
/// Name of the variable holding the file a hanging fault creates.
pub const MARKER_ENV: &str = "LAKE_FAULT_MARKER";

static INJECTED: Mutex<Option<String>> = Mutex::new(None);

/// Sets (or clears) the faults of this process, overriding `LAKE_FAULT`.
pub fn inject(spec: Option<&str>) {
    let mut injected = INJECTED.lock().unwrap_or_else(|p| p.into_inner());
    *injected = spec.map(str::to_string);
}

/// Fails when `point@target` is listed in the injected faults; never
/// returns when `hang:point@target` is.
pub fn check(point: &str, target: &str) -> anyhow::Result<()> {
    let injected = INJECTED.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let Some(spec) = injected.or_else(|| std::env::var(FAULT_ENV).ok()) else {
        return Ok(());
    };
    let wanted = format!("{point}@{target}");
    for item in spec.split(',').map(str::trim) {
        if item == wanted {
            bail!("injected fault {wanted} ({FAULT_ENV})");
        }
        if item.strip_prefix("hang:") == Some(wanted.as_str()) {
            hang(&wanted);
        }
    }
    Ok(())
}

fn hang(at: &str) -> ! {
    if let Ok(marker) = std::env::var(MARKER_ENV) {
        let _ = std::fs::write(&marker, at);
    }
    eprintln!("injected fault: hanging at {at} until killed");
    loop {
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_named_point_and_target_fail() {
        inject(Some("before_commit@gold/x, before_commit@gold/y"));
        let err = check("before_commit", "gold/y").unwrap_err().to_string();
        assert_eq!(err, "injected fault before_commit@gold/y (LAKE_FAULT)");
        assert!(check("before_commit", "gold/z").is_ok());
        assert!(check("after_commit", "gold/x").is_ok());
        inject(None);
    }
}
