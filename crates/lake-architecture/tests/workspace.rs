//! The workspace holds to ARCHITECTURE.md: no file imports a file that
//! imports it back, every "never" rule holds, and ARCHITECTURE.md states
//! each rule this crate checks.

use std::fs;

use lake_architecture::{check, rules, workspace_root};

#[test]
fn no_file_imports_a_file_that_imports_it_back_and_every_rule_holds() {
    let report = check(&workspace_root()).expect("reading the workspace");
    let mut problems = Vec::new();
    for (target, groups, imports) in &report.cycles {
        for group in groups {
            let files: Vec<String> = group.iter().map(|f| f.display().to_string()).collect();
            problems.push(format!("cycle in {target}: {}", files.join(" <-> ")));
        }
        for import in imports {
            problems.push(format!(
                "  {} -> {} ({})",
                import.from.display(),
                import.to.display(),
                import.example
            ));
        }
    }
    for finding in &report.rules {
        for breach in &finding.breaches {
            problems.push(format!("rule \"{}\" broken: {breach}", finding.rule));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn architecture_md_states_every_rule_checked_here() {
    let text =
        fs::read_to_string(workspace_root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let missing: Vec<&str> = rules::RULES
        .iter()
        .copied()
        .filter(|rule| !text.contains(rule))
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not state: {missing:?}"
    );
    for layer in rules::LAYERS {
        for name in *layer {
            assert!(
                text.contains(&format!("`{name}`")),
                "ARCHITECTURE.md's layers do not name `{name}`"
            );
        }
    }
}
