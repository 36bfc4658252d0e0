//! `GET /metrics`: the stream's counters and the serving layer's state in
//! the Prometheus text format (version 0.0.4).

use std::fmt::Write;

use chrono::{DateTime, Utc};
use lake_stream::stream_status::StreamStatus;

use crate::cache::CacheStats;
use crate::sql::stats::SqlCounts;

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Writer {
    out: String,
}

impl Writer {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        if labels.is_empty() {
            let _ = writeln!(self.out, "{name} {value}");
        } else {
            let _ = writeln!(self.out, "{name}{{{}}} {value}", labels.join(","));
        }
    }
}

/// The metrics text for a query's status (`None`: the stream never ran)
/// as of `now`.
pub fn render(
    query: &str,
    status: Option<&StreamStatus>,
    live_origin: &str,
    now: DateTime<Utc>,
) -> String {
    let mut w = Writer { out: String::new() };
    let q = [("query", query)];
    w.family("lake_serve_up", "gauge", "1 while the server answers.");
    w.sample("lake_serve_up", &[("live_source", live_origin)], 1.0);
    w.family(
        "lake_stream_status_present",
        "gauge",
        "1 when the stream query has written a status.",
    );
    w.sample(
        "lake_stream_status_present",
        &q,
        if status.is_some() { 1.0 } else { 0.0 },
    );
    let Some(status) = status else {
        return w.out;
    };
    w.family(
        "lake_stream_events_consumed_total",
        "counter",
        "Messages processed (counted and rejected) by the stream query, over every partition.",
    );
    w.sample(
        "lake_stream_events_consumed_total",
        &q,
        status.events_consumed as f64,
    );
    w.family(
        "lake_stream_events_counted_total",
        "counter",
        "Valid events counted by the stream query: the live views' transactions.",
    );
    w.sample(
        "lake_stream_events_counted_total",
        &q,
        status.counted as f64,
    );
    w.family(
        "lake_stream_dlq_total",
        "counter",
        "Messages sent to the dead-letter queue, by reason.",
    );
    for (reason, n) in &status.dlq {
        w.sample(
            "lake_stream_dlq_total",
            &[("query", query), ("reason", reason)],
            *n as f64,
        );
    }
    if let Some(at) = status.updated_at {
        w.family(
            "lake_stream_status_updated_timestamp_seconds",
            "gauge",
            "Unix time the stream last saved its status (after a micro-batch).",
        );
        w.sample(
            "lake_stream_status_updated_timestamp_seconds",
            &q,
            at.timestamp_millis() as f64 / 1000.0,
        );
    }
    if let Some(lag) = status.lag {
        w.family(
            "lake_stream_lag_messages",
            "gauge",
            "Messages behind the high watermarks of the owned partitions.",
        );
        w.sample("lake_stream_lag_messages", &q, lag as f64);
    }
    if let Some(ms) = status.last_batch_duration_ms {
        w.family(
            "lake_stream_micro_batch_duration_seconds",
            "gauge",
            "Duration of the last micro-batch (outputs, checkpoint, live views).",
        );
        w.sample(
            "lake_stream_micro_batch_duration_seconds",
            &q,
            ms as f64 / 1000.0,
        );
    }
    let age = |t: DateTime<Utc>| (now - t).num_milliseconds().max(0) as f64 / 1000.0;
    if let Some(at) = status.last_checkpoint_at {
        w.family(
            "lake_stream_last_checkpoint_age_seconds",
            "gauge",
            "Seconds since the last checkpoint was written.",
        );
        w.sample("lake_stream_last_checkpoint_age_seconds", &q, age(at));
    }
    if let Some(at) = status.last_event_time {
        w.family(
            "lake_stream_last_event_age_seconds",
            "gauge",
            "Seconds between now and the latest event time counted.",
        );
        w.sample("lake_stream_last_event_age_seconds", &q, age(at));
    }
    w.out
}

/// Appends the serving layer's caches: the frame cache the SQL endpoint
/// and the pages read (bounded by `--sql-cache-mb`), and the encoded gold
/// pages.
pub fn render_caches(out: &mut String, frames: CacheStats, pages: CacheStats) {
    type Figure = fn(&CacheStats) -> u64;
    let families: [(&str, &str, &str, Figure); 6] = [
        (
            "lake_serve_cache_bytes",
            "gauge",
            "Estimated bytes a cache holds.",
            |s| s.bytes,
        ),
        (
            "lake_serve_cache_limit_bytes",
            "gauge",
            "Most bytes a cache may hold.",
            |s| s.limit_bytes,
        ),
        (
            "lake_serve_cache_entries",
            "gauge",
            "Entries (one table date each) a cache holds.",
            |s| s.entries as u64,
        ),
        (
            "lake_serve_cache_hits_total",
            "counter",
            "Lookups a cache answered.",
            |s| s.hits,
        ),
        (
            "lake_serve_cache_misses_total",
            "counter",
            "Lookups a cache could not answer.",
            |s| s.misses,
        ),
        (
            "lake_serve_cache_evictions_total",
            "counter",
            "Entries evicted to stay within the limit, least recently used first.",
            |s| s.evictions,
        ),
    ];
    let mut w = Writer {
        out: std::mem::take(out),
    };
    for (name, kind, help, figure) in families {
        w.family(name, kind, help);
        for (cache, stats) in [("frames", &frames), ("gold_pages", &pages)] {
            w.sample(name, &[("cache", cache)], figure(stats) as f64);
        }
    }
    *out = w.out;
}

/// Appends the SQL queries' figures to `out`.
pub fn render_sql(out: &mut String, counts: &SqlCounts) {
    let mut w = Writer {
        out: std::mem::take(out),
    };
    w.family(
        "lake_serve_sql_queries_running",
        "gauge",
        "SQL queries whose work has not ended, including those asked to stop: each holds a slot.",
    );
    w.sample("lake_serve_sql_queries_running", &[], counts.running as f64);
    w.family(
        "lake_serve_sql_queries_stopped_total",
        "counter",
        "SQL queries asked to stop, by reason.",
    );
    for (reason, count) in &counts.stopped {
        w.sample(
            "lake_serve_sql_queries_stopped_total",
            &[("reason", *reason)],
            *count as f64,
        );
    }
    w.family(
        "lake_serve_sql_refused_busy_total",
        "counter",
        "SQL queries refused with 429 because every slot was taken.",
    );
    w.sample(
        "lake_serve_sql_refused_busy_total",
        &[],
        counts.refused_busy as f64,
    );
    *out = w.out;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_becomes_prometheus_text() {
        let now = DateTime::parse_from_rfc3339("2026-11-27T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let status = StreamStatus {
            query: "ventes_temps_reel".into(),
            updated_at: Some(now),
            events_consumed: 1500,
            counted: 1470,
            dlq: [
                ("invalid_json".to_string(), 20u64),
                ("late".to_string(), 10),
            ]
            .into_iter()
            .collect(),
            lag: Some(42),
            last_batch_duration_ms: Some(125),
            last_checkpoint_at: Some(now - chrono::Duration::milliseconds(2500)),
            last_event_time: Some(now - chrono::Duration::seconds(3)),
        };
        insta::assert_snapshot!(render("ventes_temps_reel", Some(&status), "memory", now));
    }

    #[test]
    fn caches_are_one_family_per_figure() {
        let mut text = String::new();
        let frames = CacheStats {
            entries: 2,
            bytes: 1500,
            limit_bytes: 4096,
            hits: 7,
            misses: 2,
            evictions: 1,
        };
        render_caches(&mut text, frames, CacheStats::default());
        for line in [
            "# TYPE lake_serve_cache_bytes gauge",
            "lake_serve_cache_bytes{cache=\"frames\"} 1500",
            "lake_serve_cache_bytes{cache=\"gold_pages\"} 0",
            "lake_serve_cache_limit_bytes{cache=\"frames\"} 4096",
            "lake_serve_cache_evictions_total{cache=\"frames\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        assert_eq!(text.matches("# TYPE lake_serve_cache_bytes ").count(), 1);
    }

    #[test]
    fn sql_figures_are_one_family_each() {
        let mut text = String::new();
        let counts = SqlCounts {
            running: 2,
            stopped: vec![("time_limit", 3), ("memory_limit", 0), ("client_gone", 1)],
            refused_busy: 4,
        };
        render_sql(&mut text, &counts);
        for line in [
            "# TYPE lake_serve_sql_queries_running gauge",
            "lake_serve_sql_queries_running 2",
            "lake_serve_sql_queries_stopped_total{reason=\"time_limit\"} 3",
            "lake_serve_sql_queries_stopped_total{reason=\"client_gone\"} 1",
            "lake_serve_sql_refused_busy_total 4",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }

    #[test]
    fn no_status_says_so() {
        let text = render("q\"x", None, "lake", Utc::now());
        assert!(
            text.contains("lake_stream_status_present{query=\"q\\\"x\"} 0\n"),
            "{text}"
        );
        assert!(!text.contains("lake_stream_events_consumed_total"));
    }
}
