//! Pages of the per-minute live view (`/api/live/sales-by-minute`): a day
//! of 1-minute windows for every country is hundreds of kilobytes, so a
//! client reads it a page at a time, oldest windows first, optionally for
//! one country or from a time on. A page ends at a window boundary: the
//! rows of one window are never split between two pages, and the next page
//! starts where this one stopped (`next_since`), so reading page after
//! page sees every row once.

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, Utc};
use polars::prelude::*;

/// Rows in a page when the client does not say.
pub const DEFAULT_PAGE_ROWS: usize = 1_000;
/// Most rows a client may ask for in one page.
pub const MAX_PAGE_ROWS: usize = 10_000;

/// Which rows a client asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageQuery {
    /// Windows starting at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// One country (as the view spells it, standardized).
    pub pays: Option<String>,
    /// At most this many rows, unless a single window holds more.
    pub limit: usize,
}

impl Default for PageQuery {
    fn default() -> Self {
        PageQuery {
            since: None,
            pays: None,
            limit: DEFAULT_PAGE_ROWS,
        }
    }
}

/// One page, and where the next one starts (none: this is the last).
#[derive(Debug)]
pub struct Page {
    pub rows: DataFrame,
    pub next_since: Option<DateTime<Utc>>,
}

/// The page of `by_minute` (the view's frame) that `query` asks for, rows
/// ordered by window start, then country.
pub fn page(by_minute: &DataFrame, query: &PageQuery) -> Result<Page> {
    let start_type = by_minute
        .column("window_start")
        .map_err(|err| anyhow!("the per-minute view has no window_start: {err}"))?
        .dtype()
        .clone();
    let DataType::Datetime(unit, _) = start_type else {
        bail!("the per-minute view's window_start is {start_type}, not a datetime");
    };
    let mut rows = by_minute.clone().lazy();
    if let Some(since) = query.since {
        let since = match unit {
            TimeUnit::Nanoseconds => since
                .timestamp_nanos_opt()
                .context("--since is out of range")?,
            TimeUnit::Microseconds => since.timestamp_micros(),
            TimeUnit::Milliseconds => since.timestamp_millis(),
        };
        rows = rows.filter(col("window_start").gt_eq(lit(since).cast(start_type.clone())));
    }
    if let Some(pays) = &query.pays {
        rows = rows.filter(col("pays").eq(lit(pays.clone())));
    }
    let rows = rows
        .sort(["window_start", "pays"], SortMultipleOptions::default())
        .collect()
        .map_err(|err| anyhow!("selecting a page of the per-minute view: {err}"))?;
    if rows.height() <= query.limit {
        return Ok(Page {
            rows,
            next_since: None,
        });
    }
    let starts = rows
        .column("window_start")?
        .as_materialized_series()
        .to_physical_repr()
        .into_owned();
    let starts = starts
        .i64()
        .map_err(|err| anyhow!("window_start as integers: {err}"))?;
    let first_left_out = starts.get(query.limit);
    // Back to the start of the window the limit falls in; a window larger
    // than a page goes whole.
    let mut keep = query.limit;
    while keep > 0 && starts.get(keep - 1) == first_left_out {
        keep -= 1;
    }
    if keep == 0 {
        keep = query.limit;
        while keep < rows.height() && starts.get(keep) == first_left_out {
            keep += 1;
        }
    }
    // `get` panics past the end: the last window may have gone whole.
    let next_since = match (keep < rows.height()).then(|| starts.get(keep)).flatten() {
        Some(start) => Some(instant(start, unit).context("a window start out of range")?),
        None => None,
    };
    Ok(Page {
        rows: rows.slice(0, keep),
        next_since,
    })
}

fn instant(value: i64, unit: TimeUnit) -> Option<DateTime<Utc>> {
    match unit {
        TimeUnit::Nanoseconds => Some(DateTime::from_timestamp_nanos(value)),
        TimeUnit::Microseconds => DateTime::from_timestamp_micros(value),
        TimeUnit::Milliseconds => DateTime::from_timestamp_millis(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Windows of minutes `starts` (since 2026-12-07T10:00Z), one row per
    /// (minute, country).
    fn view(rows: &[(i64, &str)]) -> DataFrame {
        let base = minute(0).timestamp_micros();
        let starts: Vec<i64> = rows.iter().map(|(m, _)| base + m * 60_000_000).collect();
        let pays: Vec<&str> = rows.iter().map(|(_, p)| *p).collect();
        let mut df = df!("pays" => pays, "nb_transactions" => vec![1i64; rows.len()]).unwrap();
        let column = Series::new("window_start".into(), starts)
            .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
            .into_column();
        df.with_column(column).unwrap();
        df
    }

    fn minute(m: i64) -> DateTime<Utc> {
        "2026-12-07T10:00:00Z".parse::<DateTime<Utc>>().unwrap() + chrono::Duration::minutes(m)
    }

    fn keys(page: &Page) -> Vec<(i64, String)> {
        let starts = page
            .rows
            .column("window_start")
            .unwrap()
            .as_materialized_series();
        let starts = starts.to_physical_repr().into_owned();
        let pays = page.rows.column("pays").unwrap().str().unwrap().clone();
        let base = minute(0).timestamp_micros();
        starts
            .i64()
            .unwrap()
            .into_no_null_iter()
            .zip(pays.iter().flatten())
            .map(|(s, p)| ((s - base) / 60_000_000, p.to_string()))
            .collect()
    }

    #[test]
    fn pages_end_at_a_window_and_the_next_starts_there() {
        // Minute 2 has three countries: a limit of 4 falls inside it.
        let df = view(&[
            (2, "Spain"),
            (0, "France"),
            (1, "France"),
            (2, "France"),
            (1, "Brazil"),
            (2, "Brazil"),
            (3, "France"),
        ]);
        let query = PageQuery {
            limit: 4,
            ..PageQuery::default()
        };
        let first = page(&df, &query).unwrap();
        // Minutes 0 and 1 (3 rows): minute 2 would not fit whole.
        assert_eq!(
            keys(&first),
            [
                (0, "France".into()),
                (1, "Brazil".into()),
                (1, "France".into())
            ]
        );
        assert_eq!(first.next_since, Some(minute(2)));
        let second = page(
            &df,
            &PageQuery {
                since: first.next_since,
                ..query.clone()
            },
        )
        .unwrap();
        assert_eq!(
            keys(&second),
            [
                (2, "Brazil".into()),
                (2, "France".into()),
                (2, "Spain".into()),
                (3, "France".into())
            ]
        );
        assert_eq!(second.next_since, None);
        // Every row exactly once over the two pages.
        assert_eq!(first.rows.height() + second.rows.height(), df.height());
    }

    #[test]
    fn a_window_larger_than_a_page_goes_whole_and_a_country_filters() {
        let df = view(&[(0, "France"), (0, "Spain"), (0, "Brazil"), (1, "France")]);
        let whole = page(
            &df,
            &PageQuery {
                limit: 2,
                ..PageQuery::default()
            },
        )
        .unwrap();
        assert_eq!(whole.rows.height(), 3);
        assert_eq!(whole.next_since, Some(minute(1)));
        // The last window, larger than a page: whole, and nothing after it.
        let only_minute_0 = view(&[(0, "France"), (0, "Spain"), (0, "Brazil")]);
        let alone = page(
            &only_minute_0,
            &PageQuery {
                limit: 2,
                ..PageQuery::default()
            },
        )
        .unwrap();
        assert_eq!(alone.rows.height(), 3);
        assert_eq!(alone.next_since, None);
        let france = page(
            &df,
            &PageQuery {
                pays: Some("France".into()),
                ..PageQuery::default()
            },
        )
        .unwrap();
        assert_eq!(keys(&france), [(0, "France".into()), (1, "France".into())]);
        assert_eq!(france.next_since, None);
    }
}
