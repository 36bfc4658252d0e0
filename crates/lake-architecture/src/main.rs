//! `cargo run -p lake-architecture`: prints the import cycles between files
//! and the breaches of ARCHITECTURE.md's "never" rules; exits 1 if any.

use std::process::ExitCode;

fn main() -> ExitCode {
    let root = lake_architecture::workspace_root();
    let report = match lake_architecture::check(&root) {
        Ok(report) => report,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    for (target, groups, imports) in &report.cycles {
        for group in groups {
            let files: Vec<String> = group.iter().map(|f| f.display().to_string()).collect();
            println!("cycle in {target}: {}", files.join(" <-> "));
        }
        for import in imports {
            println!(
                "  {} -> {} ({})",
                import.from.display(),
                import.to.display(),
                import.example
            );
        }
    }
    for finding in &report.rules {
        let verdict = if finding.breaches.is_empty() {
            "holds"
        } else {
            "BROKEN"
        };
        println!("rule \"{}\": {verdict}", finding.rule);
        for breach in &finding.breaches {
            println!("  {breach}");
        }
    }
    if report.holds() {
        println!("no import cycle between files; every rule holds");
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
