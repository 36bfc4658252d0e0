//! The contract's invariants on generated data at several scales:
//! rows(order_details) = rows(sales_master) + rows(rejects), and every way
//! of adding up revenue gives the same total.

use lake_gold::SalesHandOver;
use lake_silver::tap::SalesTap;
use lake_table::Layer;
use lake_tests::{close, read, run, snapshot, sum_f64, test_date};

fn check_scale(scale: u32) {
    let dir = tempfile::tempdir().unwrap();
    let run = run(dir.path(), None, scale, test_date()).unwrap();
    let lake = &run.lake;
    let date = test_date();

    let details = read(lake, Layer::Bronze, "order_details", date);
    let sales = read(lake, Layer::Silver, "sales_master", date);
    let rejects = read(lake, Layer::Silver, "_rejects/sales_master", date);
    assert_eq!(
        details.height(),
        sales.height() + rejects.height(),
        "scale {scale}: order lines must land in sales_master or rejects"
    );

    // Bronze is an exact copy of the generator's tables.
    let nw = lake_northwind::generate(scale, lake_core::config::DEFAULT_GENERATOR_SEED).unwrap();
    for table in lake_bronze::TABLES {
        let bronze = read(lake, Layer::Bronze, table, date);
        let source = nw.table(table).unwrap();
        let copied = bronze.select(source.get_column_names_owned()).unwrap();
        assert!(
            copied.equals_missing(source),
            "bronze/{table} differs from its source at scale {scale}"
        );
    }

    let kpi = read(lake, Layer::Gold, "kpi_summary", date);
    let total = sum_f64(&kpi, "total_revenue");
    let line_total = sum_f64(&sales, "line_total");
    for (what, value) in [
        ("sum of silver line_total", line_total),
        (
            "sum of revenue_by_country",
            sum_f64(
                &read(lake, Layer::Gold, "revenue_by_country", date),
                "revenue",
            ),
        ),
        (
            "sum of sales_by_category",
            sum_f64(
                &read(lake, Layer::Gold, "sales_by_category", date),
                "revenue",
            ),
        ),
        (
            "sum of rfm monetary",
            sum_f64(&read(lake, Layer::Gold, "rfm", date), "monetary"),
        ),
        (
            "sum of rfm_segments revenue",
            sum_f64(&read(lake, Layer::Gold, "rfm_segments", date), "revenue"),
        ),
    ] {
        assert!(
            close(total, value, 1e-9),
            "scale {scale}: total_revenue {total} != {what} {value}"
        );
    }
    assert!(total > 0.0);

    // The run manifest records the same reject counts as the rejects table.
    let silver_step = run.manifest.step("silver/sales_master").unwrap();
    let recorded: u64 = silver_step.rejects.values().sum();
    assert_eq!(recorded as usize, rejects.height());
    assert_eq!(silver_step.rows_in as usize, details.height());
}

#[test]
fn invariants_hold_at_scale_1() {
    check_scale(1);
}

#[test]
fn invariants_hold_at_scale_7() {
    check_scale(7);
}

#[test]
fn invariants_hold_at_scale_60_with_integer_ids() {
    check_scale(60);
}

#[test]
fn every_reject_reason_occurs_on_generated_data() {
    let dir = tempfile::tempdir().unwrap();
    let run = run(dir.path(), None, 1, test_date()).unwrap();
    let silver_step = run.manifest.step("silver/sales_master").unwrap();
    for reason in lake_silver::sales_master::REJECT_REASONS {
        assert!(
            silver_step.rejects.get(reason).copied().unwrap_or(0) > 0,
            "no {reason} reject at scale 1: {:?}",
            silver_step.rejects
        );
    }
}

#[test]
fn classifying_in_slices_gives_the_same_silver() {
    let dir = tempfile::tempdir().unwrap();
    let date = test_date();
    let run = run(dir.path(), None, 3, date).unwrap();
    let lake = &run.lake;
    let sort = |df: polars::prelude::DataFrame, drop: &str| {
        let df = df.drop(drop).unwrap();
        let by = df.get_column_names_owned();
        df.sort(by, Default::default()).unwrap()
    };
    let whole_sales = sort(
        read(lake, Layer::Silver, "sales_master", date),
        "_processed_at",
    );
    let whole_rejects = sort(
        read(lake, Layer::Silver, "_rejects/sales_master", date),
        "_rejected_at",
    );
    let one_slice = run.manifest.step("silver/sales_master").unwrap();

    // About 6,600 lines in slices of 700: ten slices.
    let sliced = lake_silver::build_sales_master_in_slices(
        lake,
        &Default::default(),
        date,
        "sliced",
        700,
        None,
    )
    .unwrap();
    let sales = read(lake, Layer::Silver, "sales_master", date);
    let files = snapshot(lake, Layer::Silver, "sales_master")
        .files_of(date)
        .count();
    assert!(files >= 9, "expected one file per slice, got {files}");
    assert!(sort(sales, "_processed_at").equals_missing(&whole_sales));
    assert!(
        sort(
            read(lake, Layer::Silver, "_rejects/sales_master", date),
            "_rejected_at"
        )
        .equals_missing(&whole_rejects)
    );
    assert_eq!(sliced.rejects, one_slice.rejects);
    assert_eq!(
        (sliced.rows_in, sliced.rows_out),
        (one_slice.rows_in, one_slice.rows_out)
    );
}

#[test]
fn gold_from_the_lines_silver_hands_over_equals_gold_read_back_from_the_lake() {
    let dir = tempfile::tempdir().unwrap();
    let date = test_date();
    let run = run(dir.path(), None, 3, date).unwrap();
    let lake = &run.lake;
    // The pipeline's gold steps record the version its silver step wrote.
    let silver_wrote = run.manifest.written("silver/sales_master").unwrap();
    let silver_step = run.manifest.step("silver/sales_master").unwrap();
    assert!(silver_step.writes.contains(silver_wrote));
    for metric in [
        "kpi_summary",
        "revenue_by_country",
        "sales_by_category",
        "rfm",
    ] {
        let gold_step = run.manifest.step(&format!("gold/{metric}")).unwrap();
        assert_eq!(gold_step.reads, vec![silver_wrote.clone()]);
    }

    // Silver again, in ten slices handed over to gold as they are written.
    let handed = SalesHandOver::new(lake, Default::default(), date, None);
    let tap: &dyn SalesTap = &handed;
    let sliced = lake_silver::build_sales_master_in_slices(
        lake,
        &Default::default(),
        date,
        "handed",
        700,
        Some(tap),
    )
    .unwrap();
    // Gold from the lake: a cache no silver step fed reads the table back.
    let read_back = SalesHandOver::new(lake, Default::default(), date, None)
        .get()
        .unwrap();
    assert_eq!(read_back.read, sliced.writes[0]);
    assert_eq!(read_back.rows, sliced.rows_out);
    // Without the table, only the lines handed over can give figures.
    std::fs::remove_dir_all(dir.path().join("silver/sales_master")).unwrap();
    let in_memory = handed.get().unwrap();
    assert_eq!(in_memory.read, read_back.read);
    assert_eq!(in_memory.rows, read_back.rows);
    for metric in [
        "kpi_summary",
        "revenue_by_country",
        "sales_by_category",
        "rfm",
    ] {
        let expected = read_back.frame(metric).unwrap();
        assert!(expected.height() > 0, "gold/{metric}");
        assert!(
            in_memory.frame(metric).unwrap().equals_missing(&expected),
            "gold/{metric} from the lines handed over differs from gold read back"
        );
        // And the pipeline's table (handed over in one slice) is the same.
        let stored = lake_table::writer::as_stored(&expected).unwrap();
        let committed = read(lake, Layer::Gold, metric, date)
            .select(stored.get_column_names_owned())
            .unwrap();
        assert!(
            committed.equals_missing(&stored),
            "gold/{metric} of the pipeline"
        );
    }
}

#[test]
fn the_live_view_adds_up_the_bronze_events() {
    use lake_stream::step::StreamSource;
    use polars::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let date = test_date();
    let mut options = lake_tasks::pipeline::PipelineOptions::new(
        lake_core::config::LakeArgs {
            lake: lake_core::config::LakeLocation {
                url: dir.path().display().to_string(),
            },
            date: Some(date),
        },
        lake_core::config::SourceArgs {
            pg: None,
            generator: lake_core::config::GeneratorArgs { scale: 1, seed: 3 },
        },
    );
    options.run.progress = false;
    options.stream = Some(StreamSource::Embedded {
        events: 3000,
        seed: 3,
    });
    let run = lake_tasks::pipeline::run_pipeline(&options).unwrap();
    let step = run.manifest.step("stream/ventes_temps_reel").unwrap();
    assert_eq!(step.rows_in, 3000);

    // Recompute the live view from bronze: standardize, group, sum.
    let lake = &run.lake;
    let dates = snapshot(lake, Layer::Bronze, "ventes_temps_reel").dates();
    assert_eq!(dates, vec![date], "embedded events land on the run date");
    let events = read(lake, Layer::Bronze, "ventes_temps_reel", date);
    assert_eq!(events.height() as u64, step.rows_out);
    let recomputed = events
        .lazy()
        .with_column(lake_core::country::standardized_country_name(col("pays")).alias("pays"))
        .group_by([col("pays")])
        .agg([col("montant").sum().alias("total"), len().alias("n")])
        .sort(["pays"], Default::default())
        .collect()
        .unwrap();
    let live_dates = snapshot(lake, Layer::Gold, "live_sales_by_country").dates();
    let live = read(
        lake,
        Layer::Gold,
        "live_sales_by_country",
        *live_dates.last().unwrap(),
    );
    assert_eq!(live.height(), recomputed.height());
    let names = |df: &DataFrame, c: &str| -> Vec<String> {
        df.column(c)
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .flatten()
            .map(String::from)
            .collect()
    };
    assert_eq!(names(&live, "pays"), names(&recomputed, "pays"));
    for i in 0..live.height() {
        let a = live
            .column("total_ventes_live")
            .unwrap()
            .f64()
            .unwrap()
            .get(i)
            .unwrap();
        let b = recomputed
            .column("total")
            .unwrap()
            .f64()
            .unwrap()
            .get(i)
            .unwrap();
        assert!(close(a, b, 1e-9), "row {i}: {a} vs {b}");
        let n = live
            .column("nb_transactions")
            .unwrap()
            .i64()
            .unwrap()
            .get(i)
            .unwrap();
        let m = recomputed
            .column("n")
            .unwrap()
            .cast(&DataType::Int64)
            .unwrap()
            .i64()
            .unwrap()
            .get(i)
            .unwrap();
        assert_eq!(n, m);
    }
}
