//! The whole stack at once: PostgreSQL seeded, events produced to Kafka,
//! `cargo xtask pipeline` with the lake on S3 (one bucket per layer, as in
//! the seed's MinIO). Gold equals the SQL oracle, the live view equals what
//! the producer sent, and every object sits where the contract says.

use std::collections::BTreeMap;
use std::time::Duration;

use lake_core::config::{DEFAULT_GENERATOR_SEED, LakeArgs, SourceArgs};
use lake_stream::config::KafkaSettings;
use lake_stream::generator::EventMix;
use lake_stream::produce::{ProduceOptions, produce};
use lake_stream::step::StreamSource;
use lake_table::{Lake, Layer};
use lake_tasks::pipeline::{PipelineOptions, run_pipeline};
use lake_testkit::{kafka_server, pg_server, s3_server};
use lake_tests::oracle::assert_gold_matches_oracle;
use lake_tests::{read, test_date};

#[test]
fn postgres_kafka_and_s3_together() {
    let s3 = s3_server();
    // SAFETY: the only test of this binary sets the variables before any
    // other thread of its own reads the environment.
    for (name, value) in s3.env() {
        unsafe { std::env::set_var(name, value) };
    }
    let db = pg_server().create_db("lake_fullstack");
    lake_tasks::seed::seed(&db.url.parse().unwrap(), 1, DEFAULT_GENERATOR_SEED, false).unwrap();
    let topic = kafka_server().create_topic("fullstack", 3);
    let kafka = KafkaSettings {
        brokers: kafka_server().brokers.clone(),
        topic: topic.clone(),
        group: "fullstack".into(),
        extra: Vec::new(),
        connect_timeout: Duration::from_secs(10),
    };
    let report = produce(
        &kafka,
        &ProduceOptions {
            count: Some(3000),
            duration: None,
            rate: None,
            mix: EventMix::default(),
            seed: 77,
            unkeyed: false,
        },
    )
    .unwrap();

    let date = test_date();
    let mut options = PipelineOptions::new(
        LakeArgs {
            lake: lake_core::config::LakeLocation {
                url: "s3://".into(),
            },
            date: Some(date),
        },
        SourceArgs {
            pg: Some(db.url.clone()),
            generator: lake_core::config::GeneratorArgs {
                scale: 1,
                seed: DEFAULT_GENERATOR_SEED,
            },
        },
    );
    options.run.progress = false;
    options.stream = Some(StreamSource::Kafka(kafka));
    let run = run_pipeline(&options).unwrap();
    assert!(run.lake.url().starts_with("s3:// at http://127.0.0.1:"));

    // Gold equals the SQL oracle.
    let mut client = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    assert_gold_matches_oracle(&mut client, &run.lake, date);

    // The live view equals what the producer sent.
    let dates = lake_tests::snapshot(&run.lake, Layer::Gold, "live_sales_by_country").dates();
    let live = read(
        &run.lake,
        Layer::Gold,
        "live_sales_by_country",
        *dates.last().unwrap(),
    );
    let mut got: BTreeMap<String, (f64, i64)> = BTreeMap::new();
    for i in 0..live.height() {
        got.insert(
            live.column("pays")
                .unwrap()
                .str()
                .unwrap()
                .get(i)
                .unwrap()
                .to_string(),
            (
                live.column("total_ventes_live")
                    .unwrap()
                    .f64()
                    .unwrap()
                    .get(i)
                    .unwrap(),
                live.column("nb_transactions")
                    .unwrap()
                    .i64()
                    .unwrap()
                    .get(i)
                    .unwrap(),
            ),
        );
    }
    assert_eq!(got.len(), report.by_country.len());
    for (country, expected) in &report.by_country {
        let (total, count) = got[country];
        assert_eq!(count as u64, expected.count, "{country}");
        assert!(
            (total - expected.total).abs() <= 1e-9 * expected.total,
            "{country}"
        );
    }

    // Every object of the data layers is a table's log entry or data file;
    // checkpoints and run manifests sit in their places.
    assert_layout(&run.lake);
}

fn assert_layout(lake: &Lake) {
    for layer in [Layer::Bronze, Layer::Silver, Layer::Gold] {
        let objects = lake.list(layer, "").unwrap();
        assert!(!objects.is_empty(), "{layer} is empty");
        let tables = lake_table::tables(lake, layer).unwrap();
        for object in &objects {
            if layer == Layer::Gold && object.key.starts_with("_runs/") {
                assert!(object.key.ends_with(".json"), "{}", object.key);
                continue;
            }
            // A table's log entry, or a data file under {table}/{date}/.
            let table = tables
                .iter()
                .find(|t| object.key.starts_with(&format!("{t}/")))
                .unwrap_or_else(|| panic!("{layer}/{} is in no table", object.key));
            let rest = &object.key[table.len() + 1..];
            if rest.starts_with("_delta_log/") {
                continue;
            }
            let (date, name) = rest.split_once('/').unwrap();
            assert!(
                chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok()
                    && name.starts_with("part-")
                    && name.ends_with(".snappy.parquet"),
                "{layer}/{}",
                object.key
            );
        }
        // Every file of every table's latest version is there, whole.
        for table in &tables {
            let snapshot = lake_tests::snapshot(lake, layer, table);
            for file in snapshot.files() {
                let key = format!("{table}/{}", file.path);
                assert_eq!(
                    lake.head(layer, &key).unwrap().map(|o| o.size),
                    Some(file.bytes),
                    "{layer}/{key}"
                );
            }
        }
    }
    for table in [
        "orders",
        "order_details",
        "customers",
        "products",
        "categories",
        "employees",
        "ventes_temps_reel",
    ] {
        assert!(
            !lake_tests::snapshot(lake, Layer::Bronze, table)
                .files()
                .is_empty(),
            "bronze/{table}"
        );
    }
    assert!(
        lake.describe(Layer::Bronze, "orders")
            .starts_with("s3://bronze/orders")
    );
    // The source the query's tables hold (its claim), one checkpoint per
    // partition (its source and internal offsets), and the query's status.
    let mut checkpoints: Vec<String> = lake
        .list(Layer::Checkpoints, "ventes_temps_reel")
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    checkpoints.sort();
    assert_eq!(
        checkpoints,
        [
            "ventes_temps_reel/_source.json",
            "ventes_temps_reel/_status.json",
            "ventes_temps_reel/partition-0.ckpt",
            "ventes_temps_reel/partition-1.ckpt",
            "ventes_temps_reel/partition-2.ckpt",
        ]
    );
    assert!(!lake.list(Layer::Runs, "").unwrap().is_empty());
    assert!(
        lake.describe(Layer::Runs, "x.json")
            .starts_with("s3://gold/_runs/")
    );
}
