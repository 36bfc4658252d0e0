//! The pipeline's closing summary.

use std::fmt::Write;

use anyhow::Result;
use lake_core::dag::group_digits;
use lake_core::run::{Outcome, StepRecord};
use lake_gold::figures::GoldFigures;
use lake_table::{Layer, TableRef};
use polars::prelude::*;

use crate::pipeline::PipelineRun;

/// `1234567.891` -> `1,234,567.89`.
pub fn money(value: f64) -> String {
    let cents = (value.abs() * 100.0).round() as u64;
    let sign = if value < 0.0 && cents > 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", group_digits(cents / 100), cents % 100)
}

/// The summary text of a finished run.
pub fn render(run: &PipelineRun) -> Result<String> {
    // The versions this run wrote: the summary never mixes two runs.
    let figures = GoldFigures::read_run(&run.lake, &run.manifest)?;
    let mut out = String::new();
    let manifest = &run.manifest;
    let seconds = (manifest.finished_at - manifest.started_at).num_milliseconds() as f64 / 1000.0;
    writeln!(
        out,
        "\nRun {} for {} done in {seconds:.2} s",
        manifest.run_id, run.date
    )?;
    writeln!(out, "  source:   {}", manifest.source)?;
    writeln!(out, "  lake:     {}", run.lake.url())?;
    writeln!(
        out,
        "  manifest: {}",
        run.lake.describe(
            lake_table::Layer::Runs,
            &format!("{}.json", manifest.run_id)
        )
    )?;
    writeln!(out, "\nTotal revenue: {}", money(figures.total_revenue))?;
    writeln!(
        out,
        "Orders: {}   customers: {}",
        group_digits(figures.order_count.max(0) as u64),
        group_digits(figures.customer_count.max(0) as u64)
    )?;
    writeln!(out, "\nTop 3 countries:")?;
    for country in figures.countries.iter().take(3) {
        writeln!(
            out,
            "  {}. {:<20} {:>18}",
            country.rank,
            country.country,
            money(country.revenue)
        )?;
    }
    writeln!(out, "\nRevenue by category:")?;
    for (category, label) in figures.categories.iter().zip(figures.category_labels()) {
        writeln!(out, "  {label:<20} {:>18}", money(category.revenue))?;
    }
    writeln!(out, "\nRFM segments (customers):")?;
    for (segment, count) in &figures.segments {
        writeln!(out, "  {segment:<20} {count:>8}")?;
    }
    writeln!(out, "\nRows rejected by reason:")?;
    let rejects: Vec<(&str, &String, &u64)> = manifest
        .steps
        .iter()
        .flat_map(|s| {
            s.rejects
                .iter()
                .map(move |(reason, n)| (s.name.as_str(), reason, n))
        })
        .collect();
    if rejects.is_empty() {
        writeln!(out, "  none")?;
    }
    for (step, reason, count) in rejects {
        writeln!(out, "  {step:<26} {reason:<22} {:>8}", group_digits(*count))?;
    }
    if manifest
        .steps
        .iter()
        .any(|s| s.name == lake_stream::step::STEP)
    {
        live_section(&mut out, run)?;
    }
    if let Some(note) = empty_topic_note(&manifest.steps) {
        out.push_str(&note);
    }
    Ok(out)
}

/// When the stream step read a Kafka topic and found no event (a new
/// broker's topic, as `cargo xtask up` leaves it), says so and how to send
/// some: else the empty live section looks like a broken stream.
fn empty_topic_note(steps: &[StepRecord]) -> Option<String> {
    let step = steps.iter().find(|s| {
        s.name == lake_stream::step::STEP && s.outcome == Outcome::Succeeded && s.rows_in == 0
    })?;
    let (brokers, topic) = step
        .sources
        .iter()
        .find_map(|source| source.strip_prefix("kafka://")?.rsplit_once('/'))?;
    Some(format!(
        "\nStream: 0 events read from topic {topic} on {brokers}: it is empty. Send some with\n  \
         lake-stream produce --kafka {brokers} --topic {topic} --count 10000\n\
         and run the pipeline again.\n"
    ))
}

/// Live sales by country and the unified view (batch + live).
fn live_section(out: &mut String, run: &PipelineRun) -> Result<()> {
    let live_table = TableRef::new(Layer::Gold, lake_stream::config::LIVE_BY_COUNTRY);
    let Some((_, live)) = lake_table::read_latest_date(&run.lake, &live_table)? else {
        return Ok(());
    };
    let written = run
        .manifest
        .written("gold/revenue_by_country")
        .ok_or_else(|| {
            anyhow::anyhow!(
                "run {} wrote no gold/revenue_by_country",
                run.manifest.run_id
            )
        })?;
    let batch = lake_gold::figures::read_gold_version(&run.lake, written)?;
    let unified = lake_gold::unified_sales_by_country::unified_sales_by_country(
        batch.lazy(),
        live.clone().lazy(),
    )
    .sort(
        ["revenue_total"],
        SortMultipleOptions::default().with_order_descending(true),
    )
    .collect()
    .map_err(anyhow::Error::from)?;
    let live_total: f64 = live
        .column("total_ventes_live")?
        .f64()?
        .iter()
        .flatten()
        .sum();
    let transactions: i64 = live
        .column("nb_transactions")?
        .i64()?
        .iter()
        .flatten()
        .sum();
    writeln!(
        out,
        "\nLive sales: {} in {} transactions over {} countries",
        money(live_total),
        group_digits(transactions.max(0) as u64),
        live.height()
    )?;
    writeln!(out, "\nUnified sales by country (batch + live), top 5:")?;
    writeln!(
        out,
        "  {:<20} {:>18} {:>14} {:>18}",
        "country", "batch", "live", "total"
    )?;
    let text = |df: &DataFrame, c: &str, i: usize| -> Result<String> {
        Ok(df.column(c)?.str()?.get(i).unwrap_or("").to_string())
    };
    let amount = |df: &DataFrame, c: &str, i: usize| -> Result<String> {
        Ok(df
            .column(c)?
            .f64()?
            .get(i)
            .map(money)
            .unwrap_or_else(|| "-".into()))
    };
    for i in 0..unified.height().min(5) {
        writeln!(
            out,
            "  {:<20} {:>18} {:>14} {:>18}",
            text(&unified, "country", i)?,
            amount(&unified, "revenue_batch", i)?,
            amount(&unified, "revenue_live", i)?,
            amount(&unified, "revenue_total", i)?
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn stream_step(source: &str, rows_in: u64) -> StepRecord {
        StepRecord {
            name: lake_stream::step::STEP.into(),
            sources: vec![source.into()],
            reads: Vec::new(),
            writes: Vec::new(),
            rows_in,
            rows_out: rows_in,
            rejects: BTreeMap::new(),
            duration_ms: 5,
            attempts: 1,
            outcome: Outcome::Succeeded,
            error: None,
        }
    }

    #[test]
    fn an_empty_topic_is_said_with_the_command_that_fills_it() {
        let note = empty_topic_note(&[stream_step("kafka://localhost:9092/ventes-temps-reel", 0)])
            .unwrap();
        assert!(
            note.contains("0 events read from topic ventes-temps-reel on localhost:9092"),
            "{note}"
        );
        assert!(
            note.contains(
                "lake-stream produce --kafka localhost:9092 --topic ventes-temps-reel --count 10000"
            ),
            "{note}"
        );
        // Events read, or the built-in producer: nothing to say.
        assert_eq!(
            empty_topic_note(&[stream_step("kafka://localhost:9092/t", 12)]),
            None
        );
        assert_eq!(
            empty_topic_note(&[stream_step("embedded://producer/t", 0)]),
            None
        );
    }

    #[test]
    fn money_is_grouped_with_two_decimals() {
        assert_eq!(money(1_265_793.039), "1,265,793.04");
        assert_eq!(money(0.004), "0.00");
        assert_eq!(money(-12.5), "-12.50");
    }
}
