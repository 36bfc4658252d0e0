//! The dashboard: one page and its script and style, embedded in the
//! binary (no CDN, nothing fetched at run time). The page reads the same
//! JSON API as any client.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::error::ApiError;

const INDEX: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/style.css");

pub async fn index() -> Html<&'static str> {
    Html(INDEX)
}

pub async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    let (content_type, body) = match file.as_str() {
        "app.js" => ("text/javascript; charset=utf-8", SCRIPT),
        "style.css" => ("text/css; charset=utf-8", STYLE),
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no asset {file:?}"),
            ));
        }
    };
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}
