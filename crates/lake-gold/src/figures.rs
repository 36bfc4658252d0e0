//! The gold figures a run ends with, read back from the committed gold
//! partitions (what the pipeline summary prints and tests compare).

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow};
use chrono::NaiveDate;
use lake_core::partition::{read_manifest, read_partition};
use lake_core::{Lake, PartitionRef};
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

/// Reads a committed gold table.
pub fn read_gold(lake: &Lake, metric: &str, date: NaiveDate) -> Result<DataFrame> {
    let partition = crate::partition(metric, date);
    let manifest =
        read_manifest(lake, &partition)?.ok_or_else(|| anyhow!("{partition} is not committed"))?;
    read_partition(lake, &partition, &manifest, None)
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
    pub fn read(lake: &Lake, date: NaiveDate) -> Result<GoldFigures> {
        let kpi = read_gold(lake, "kpi_summary", date)?;
        let countries = read_gold(lake, "revenue_by_country", date)?;
        let categories = read_gold(lake, "sales_by_category", date)?;
        let segments = read_gold(lake, "rfm_segments", date)?;
        let context = || {
            format!(
                "reading {}",
                PartitionRef::new(lake_core::Layer::Gold, "kpi_summary", date)
            )
        };
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
