//! Every error as the API's JSON, including the ones axum answers by itself
//! before a handler runs: a body or path an extractor rejects (400, 413,
//! 415, 422, in plain text) and a method a route does not take (405, no
//! body). The handlers' own errors ([`super::ApiError`]) are JSON already
//! and pass unchanged.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;

/// Most bytes of a plain-text error read to become the JSON message
/// (axum's rejection texts are one sentence).
const MAX_TEXT: usize = 4096;

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"))
}

pub(super) async fn json_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(response.headers()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_TEXT)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string())
        .unwrap_or_default();
    let message = if !text.is_empty() {
        text
    } else if status == StatusCode::METHOD_NOT_ALLOWED {
        // axum adds the `Allow` header outside this layer: the method and
        // the path say enough.
        format!("{method} is not allowed on {path}")
    } else {
        status
            .canonical_reason()
            .unwrap_or("the request failed")
            .to_string()
    };
    let body = json!({"error": message, "status": status.as_u16()}).to_string();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}
