//! The gold figures a run ends with, read back from the committed gold
//! tables (what the pipeline summary prints and tests compare): at the
//! versions one run wrote, so the figures never mix two runs.

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow};
use chrono::NaiveDate;
use lake_core::run::{RunManifest, TableVersion};
use lake_table::{At, Lake, Table};
use polars::prelude::*;

/// A country's line in the top list.
#[derive(Debug, Clone, PartialEq)]
pub struct CountryRevenue {
    pub rank: i64,
    pub country: String,
    pub revenue: f64,
}

/// A category's revenue.
#[derive(Debug, Clone, PartialEq)]
pub struct CategoryRevenue {
    pub rank: i64,
    pub category_id: Option<i64>,
    pub category_name: String,
    pub revenue: f64,
}

/// Headline gold figures of one date.
#[derive(Debug, Clone, PartialEq)]
pub struct GoldFigures {
    pub total_revenue: f64,
    pub order_count: i64,
    pub customer_count: i64,
    pub countries: Vec<CountryRevenue>,
    pub categories: Vec<CategoryRevenue>,
    /// Customers per RFM segment.
    pub segments: BTreeMap<String, i64>,
}

/// Reads one date of a gold table at its latest version.
pub fn read_gold(lake: &Lake, metric: &str, date: NaiveDate) -> Result<DataFrame> {
    let table = crate::table_ref(metric);
    lake_table::read_date(lake, &table, date)?
        .ok_or_else(|| anyhow!("{table} holds no {date} at its latest version"))
}

/// Reads a gold table at a version a run wrote.
pub fn read_gold_version(lake: &Lake, written: &TableVersion) -> Result<DataFrame> {
    let table = lake_table::TableRef::parse(&written.table)?;
    let snapshot = Table::open(lake, table)?.at(At::Version(written.version))?;
    collect(snapshot.scan(written.date)?, &written.to_string())
}

fn collect(frame: LazyFrame, what: &str) -> Result<DataFrame> {
    frame
        .collect()
        .map_err(anyhow::Error::from)
        .with_context(|| format!("reading {what}"))
}

fn f64_at(df: &DataFrame, column: &str, row: usize) -> Result<f64> {
    df.column(column)?
        .f64()?
        .get(row)
        .ok_or_else(|| anyhow!("{column} is null in row {row}"))
}

fn i64_at(df: &DataFrame, column: &str, row: usize) -> Result<i64> {
    df.column(column)?
        .i64()?
        .get(row)
        .ok_or_else(|| anyhow!("{column} is null in row {row}"))
}

fn str_at(df: &DataFrame, column: &str, row: usize) -> Result<String> {
    Ok(df.column(column)?.str()?.get(row).unwrap_or("").to_string())
}

impl GoldFigures {
    /// The figures of `date` at the latest versions.
    pub fn read(lake: &Lake, date: NaiveDate) -> Result<GoldFigures> {
        Self::from_tables(|metric| read_gold(lake, metric, date))
    }

    /// The figures at the versions `run` wrote.
    pub fn read_run(lake: &Lake, run: &RunManifest) -> Result<GoldFigures> {
        Self::from_tables(|metric| {
            let table = crate::table_ref(metric).to_string();
            let written = run
                .written(&table)
                .ok_or_else(|| anyhow!("run {} did not write {table}", run.run_id))?;
            read_gold_version(lake, written)
        })
    }

    fn from_tables(read: impl Fn(&str) -> Result<DataFrame>) -> Result<GoldFigures> {
        let kpi = read("kpi_summary")?;
        let countries = read("revenue_by_country")?;
        let categories = read("sales_by_category")?;
        let segments = read("rfm_segments")?;
        let context = || "reading gold/kpi_summary".to_string();
        Ok(GoldFigures {
            total_revenue: f64_at(&kpi, "total_revenue", 0).with_context(context)?,
            order_count: i64_at(&kpi, "order_count", 0).with_context(context)?,
            customer_count: i64_at(&kpi, "customer_count", 0).with_context(context)?,
            countries: (0..countries.height())
                .map(|row| {
                    Ok(CountryRevenue {
                        rank: i64_at(&countries, "rank", row)?,
                        country: str_at(&countries, "country", row)?,
                        revenue: f64_at(&countries, "revenue", row)?,
                    })
                })
                .collect::<Result<_>>()?,
            categories: (0..categories.height())
                .map(|row| {
                    Ok(CategoryRevenue {
                        rank: i64_at(&categories, "rank", row)?,
                        category_id: categories.column("category_id")?.i64()?.get(row),
                        category_name: str_at(&categories, "category_name", row)?,
                        revenue: f64_at(&categories, "revenue", row)?,
                    })
                })
                .collect::<Result<_>>()?,
            segments: (0..segments.height())
                .map(|row| {
                    Ok((
                        str_at(&segments, "segment", row)?,
                        i64_at(&segments, "customer_count", row)?,
                    ))
                })
                .collect::<Result<_>>()?,
        })
    }
}

impl GoldFigures {
    /// The categories' names as shown: a name two categories share (the
    /// `Uncategorized` of a product with no category and of one with an
    /// unknown id) carries the id, `#none` for no id (as the dashboard
    /// shows them).
    pub fn category_labels(&self) -> Vec<String> {
        self.categories
            .iter()
            .map(|category| {
                let shared = self
                    .categories
                    .iter()
                    .filter(|other| other.category_name == category.category_name)
                    .count()
                    > 1;
                match (shared, category.category_id) {
                    (false, _) => category.category_name.clone(),
                    (true, Some(id)) => format!("{} #{id}", category.category_name),
                    (true, None) => format!("{} #none", category.category_name),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn category(id: Option<i64>, name: &str) -> CategoryRevenue {
        CategoryRevenue {
            rank: 1,
            category_id: id,
            category_name: name.into(),
            revenue: 1.0,
        }
    }

    #[test]
    fn shared_category_names_are_told_apart_by_id() {
        let figures = GoldFigures {
            total_revenue: 0.0,
            order_count: 0,
            customer_count: 0,
            countries: vec![],
            categories: vec![
                category(Some(1), "Beverages"),
                category(None, "Uncategorized"),
                category(Some(99), "Uncategorized"),
            ],
            segments: BTreeMap::new(),
        };
        assert_eq!(
            figures.category_labels(),
            ["Beverages", "Uncategorized #none", "Uncategorized #99"]
        );
    }
}
