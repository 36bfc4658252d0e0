//! The query parameters each endpoint takes, as an allow-list: a parameter
//! an endpoint does not take (`?limit=` on a gold table, a typo such as
//! `?dat=`) is a 400 naming what the endpoint takes, never silently
//! ignored.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The parameters of the endpoints that take any: a path, or a prefix
/// ending in `/`. Every other `/api/` path takes none.
const ACCEPTED: &[(&str, &[&str])] = &[
    ("/api/gold/", &["date"]),
    ("/api/runs", &["limit"]),
    ("/api/unified/sales-by-country", &["date"]),
    ("/api/live/sales-by-minute", &["since", "pays", "limit"]),
];

/// What `path` takes.
fn accepted(path: &str) -> &'static [&'static str] {
    ACCEPTED
        .iter()
        .find(|(route, _)| {
            if route.ends_with('/') {
                path.starts_with(route)
            } else {
                path == *route
            }
        })
        .map_or(&[], |(_, names)| names)
}

/// The names of `query`'s parameters that `allowed` lacks, in order, once
/// each (taken as written: a name is never decoded into an allowed one).
fn unknown(query: &str, allowed: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let name = pair.split_once('=').map_or(pair, |(name, _)| name);
        if !allowed.contains(&name) && !names.iter().any(|seen| seen == name) {
            names.push(name.to_string());
        }
    }
    names
}

/// Refuses a request to `/api/...` that carries a parameter its endpoint
/// does not take.
pub async fn only_accepted(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path.starts_with("/api/")
        && let Some(query) = request.uri().query()
    {
        let allowed = accepted(path);
        let unknown = unknown(query, allowed);
        if !unknown.is_empty() {
            let takes = if allowed.is_empty() {
                "no parameter".to_string()
            } else {
                allowed.join(", ")
            };
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "{path} does not take {}: it takes {takes}",
                    unknown
                        .iter()
                        .map(|name| format!("?{name}="))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::{accepted, unknown};

    #[test]
    fn each_endpoint_takes_only_its_own_parameters() {
        assert_eq!(accepted("/api/gold/kpi_summary"), ["date"]);
        assert_eq!(accepted("/api/runs"), ["limit"]);
        assert!(accepted("/api/runs/x").is_empty());
        assert_eq!(
            accepted("/api/live/sales-by-minute"),
            ["since", "pays", "limit"]
        );
        assert!(accepted("/api/live/sales-by-country").is_empty());
        assert_eq!(unknown("date=2026-12-07", &["date"]), Vec::<String>::new());
        assert_eq!(unknown("limit=5&date=x&limit=6", &["date"]), ["limit"]);
        assert_eq!(unknown("dat=1&&x", &["date"]), ["dat", "x"]);
        // A name is taken as written, not decoded into an allowed one.
        assert_eq!(unknown("%64ate=1", &["date"]), ["%64ate"]);
    }
}
