//! The pipeline's closing summary.

use std::fmt::Write;

use anyhow::Result;
use lake_core::dag::group_digits;
use lake_gold::figures::GoldFigures;

use crate::pipeline::PipelineRun;

/// `1234567.891` -> `1,234,567.89`.
pub fn money(value: f64) -> String {
    let cents = (value.abs() * 100.0).round() as u64;
    let sign = if value < 0.0 && cents > 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", group_digits(cents / 100), cents % 100)
}

/// The summary text of a finished run.
pub fn render(run: &PipelineRun) -> Result<String> {
    let figures = GoldFigures::read(&run.lake, run.date)?;
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
        run.lake
            .describe(lake_core::Layer::Runs, &format!("{}.json", manifest.run_id))
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
    for category in &figures.categories {
        writeln!(
            out,
            "  {:<20} {:>18}",
            category.category_name,
            money(category.revenue)
        )?;
    }
    writeln!(out, "\nRFM segments (customers):")?;
    for (segment, count) in &figures.segments {
        writeln!(out, "  {segment:<20} {count:>8}")?;
    }
    writeln!(out, "\nRows rejected by reason:")?;
    let rejects: Vec<_> = manifest
        .steps
        .iter()
        .flat_map(|s| s.rejects.iter())
        .collect();
    if rejects.is_empty() {
        writeln!(out, "  none")?;
    }
    for (reason, count) in rejects {
        writeln!(out, "  {reason:<20} {:>8}", group_digits(*count))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::money;

    #[test]
    fn money_is_grouped_with_two_decimals() {
        assert_eq!(money(1_265_793.039), "1,265,793.04");
        assert_eq!(money(0.004), "0.00");
        assert_eq!(money(-12.5), "-12.50");
    }
}
