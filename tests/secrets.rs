//! A PostgreSQL password given in the URL's query (`?password=`) or user
//! info, when a run fails on it, reaches neither the run manifest nor
//! `GET /api/runs`, which serves the manifests (the binary's stderr and
//! bronze's `_source`: `crates/lake-bronze/tests/secrets.rs`).

use std::sync::Arc;
use std::time::Duration;

use lake_core::config::{LakeArgs, SourceArgs};
use lake_core::dag::RunOptions;
use lake_serve::{AppState, Catalog, MemoryLive, SqlLimits};
use lake_tasks::pipeline::{PipelineOptions, Stage, run_pipeline};
use lake_testkit::free_port;
use lake_tests::test_date;

#[test]
fn a_failed_runs_manifest_and_api_runs_show_no_password() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let urls = [
        format!("postgresql://lake@127.0.0.1:{port}/northwind?password=pw-query&sslmode=disable"),
        format!("postgresql://lake:pw-userinfo@127.0.0.1:{port}/northwind?sslmode=disable"),
    ];
    for url in &urls {
        let mut options = PipelineOptions::new(
            LakeArgs {
                lake: lake_core::config::LakeLocation {
                    url: dir.path().display().to_string(),
                },
                date: Some(test_date()),
            },
            SourceArgs {
                pg: Some(url.clone()),
                generator: lake_core::config::GeneratorArgs {
                    scale: 1,
                    seed: lake_core::config::DEFAULT_GENERATOR_SEED,
                },
            },
        );
        options.stages = vec![Stage::Bronze];
        options.tables = vec!["orders".into()];
        options.run = RunOptions {
            progress: false,
            first_backoff: Duration::from_millis(10),
            ..RunOptions::default()
        };
        let err = match run_pipeline(&options) {
            Ok(_) => panic!("nothing listens on port {port}"),
            Err(err) => format!("{err:#}"),
        };
        assert!(err.contains("cannot connect to PostgreSQL"), "{err}");
        assert!(!err.contains("pw-"), "{err}");
    }

    let lake = lake_table::Lake::open(dir.path().to_str().unwrap()).unwrap();
    let catalog = Arc::new(Catalog::new(lake));
    let live = Arc::new(MemoryLive::new().unwrap());
    let server = lake_serve::spawn(
        "127.0.0.1:0",
        AppState::new(catalog, live, "secrets", SqlLimits::default()),
    )
    .unwrap();
    let response = reqwest::blocking::get(format!("{}/api/runs", server.url())).unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body = response.text().unwrap();
    let runs: serde_json::Value = serde_json::from_str(&body).unwrap();
    let runs = runs["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{body}");
    for run in runs {
        let error = run["steps"][0]["error"].as_str().unwrap();
        assert!(
            error.contains("cannot connect to PostgreSQL at postgresql://lake")
                && error.contains("***"),
            "{error}"
        );
    }
    assert!(!body.contains("pw-"), "{body}");
    // The manifests as stored, too.
    for entry in std::fs::read_dir(dir.path().join("_runs")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(!text.contains("pw-"), "{text}");
    }
}
