//! The nested `cargo` every command of the launcher runs.

use std::process::Command;

/// A nested `cargo` with the caller's environment.
pub fn cargo() -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    // `cargo run` describes the xtask package to it through CARGO_PKG_*,
    // CARGO_MANIFEST_DIR... Build scripts that watch such variables would
    // see them change and rebuild half the dependency tree (Polars
    // included), so the nested cargo gets the caller's environment back.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || matches!(
                name.as_ref(),
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "OUT_DIR"
            )
        {
            command.env_remove(name.as_ref());
        }
    }
    command
}
