//! API keys: bearer tokens that protect everything but the dashboard's
//! static files and `/health`.
//!
//! Keys come from `LAKE_API_KEYS` (separated by commas or whitespace) and
//! from `--api-key-file` / `LAKE_API_KEY_FILE` (one a line, `#` starts a
//! comment). Only their SHA-256 digests are kept; a presented token is
//! hashed and compared with every digest in constant time, so neither its
//! length nor how much of it matches shows in the time taken. No key, and
//! no token a client sent, is ever logged or put in a message.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// Shortest key accepted.
pub const MIN_KEY_LEN: usize = 16;
/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 512;
/// The variable that holds keys.
pub const KEYS_VARIABLE: &str = "LAKE_API_KEYS";
/// The variable that names a file of keys.
pub const KEY_FILE_VARIABLE: &str = "LAKE_API_KEY_FILE";

/// One or more API keys (their digests).
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.digests.len())
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// RFC 6750's `b64token` characters: what a bearer token may hold.
fn token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '+' | '/' | '=')
}

impl ApiKeys {
    /// Keys from text: separated by commas or whitespace; in a file
    /// (`from_file`), lines starting with `#` are comments. `origin` names
    /// where the text comes from, for messages (which never show a key).
    pub fn parse(text: &str, origin: &str) -> Result<ApiKeys> {
        let mut digests = Vec::new();
        let words = text
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .flat_map(|line| line.split(|c: char| c == ',' || c.is_whitespace()))
            .filter(|word| !word.is_empty());
        for (i, key) in words.enumerate() {
            let n = i + 1;
            if key.len() < MIN_KEY_LEN || key.len() > MAX_KEY_LEN {
                bail!(
                    "key {n} of {origin} has {} characters: a key has {MIN_KEY_LEN} to {MAX_KEY_LEN} \
                     (e.g. `openssl rand -hex 32`)",
                    key.chars().count()
                );
            }
            if !key.chars().all(token_char) {
                bail!(
                    "key {n} of {origin} has a character a bearer token cannot hold: \
                     use letters, digits and - . _ ~ + / ="
                );
            }
            digests.push(digest(key.as_bytes()));
        }
        if digests.is_empty() {
            bail!("{origin} holds no key");
        }
        Ok(ApiKeys { digests })
    }

    /// The keys of a file.
    pub fn from_file(path: &Path) -> Result<ApiKeys> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the API key file {}", path.display()))?;
        ApiKeys::parse(&text, &format!("the API key file {}", path.display()))
    }

    /// The keys of `LAKE_API_KEYS` and of the file `key_file` (or of
    /// `LAKE_API_KEY_FILE` when `None`), together; `None` when neither is
    /// set.
    pub fn from_env_and(key_file: Option<&Path>) -> Result<Option<ApiKeys>> {
        let mut keys: Option<ApiKeys> = None;
        if let Some(text) = std::env::var_os(KEYS_VARIABLE) {
            let text = text
                .into_string()
                .map_err(|_| anyhow::anyhow!("{KEYS_VARIABLE} is not UTF-8"))?;
            keys = Some(ApiKeys::parse(&text, KEYS_VARIABLE)?);
        }
        let from_env = std::env::var_os(KEY_FILE_VARIABLE).map(std::path::PathBuf::from);
        if let Some(path) = key_file.map(Path::to_path_buf).or(from_env) {
            let file = ApiKeys::from_file(&path)?;
            keys = Some(match keys {
                Some(mut keys) => {
                    keys.digests.extend(file.digests);
                    keys
                }
                None => file,
            });
        }
        Ok(keys)
    }

    pub fn len(&self) -> usize {
        self.digests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `token` is one of the keys, in time that depends only on
    /// the number of keys.
    pub fn verify(&self, token: &[u8]) -> bool {
        let presented = digest(token);
        let mut found = subtle::Choice::from(0);
        for key in &self.digests {
            found |= key.ct_eq(&presented);
        }
        found.into()
    }
}

/// Paths anyone may read: the dashboard's page and files, and liveness.
/// Everything else needs a key.
fn open_path(path: &str) -> bool {
    matches!(
        path,
        "/" | "/health" | "/assets/app.js" | "/assets/style.css"
    )
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(value: &HeaderValue) -> Option<&[u8]> {
    let bytes = value.as_bytes();
    let (scheme, token) = bytes.split_at(bytes.iter().position(|b| *b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = token.trim_ascii();
    (!token.is_empty()).then_some(token)
}

fn unauthorized(message: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"lake\""),
    );
    response
}

/// The middleware: a request for anything but an open path needs one of
/// the keys, when the server has keys.
pub async fn require_key(
    State(keys): State<Option<Arc<ApiKeys>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(keys) = keys else {
        return next.run(request).await;
    };
    if open_path(request.uri().path()) {
        return next.run(request).await;
    }
    match request.headers().get(header::AUTHORIZATION) {
        None => unauthorized(
            "this endpoint needs an API key: send the header `Authorization: Bearer <key>`",
        ),
        Some(value) => match bearer(value) {
            None => unauthorized(
                "the Authorization header must be `Bearer <key>` (the scheme Bearer, a space, the key)",
            ),
            Some(token) if keys.verify(token) => next.run(request).await,
            Some(_) => unauthorized("the API key is not valid"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "k3y-aaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "k3y-bbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn keys_parse_verify_and_never_show() {
        let keys = ApiKeys::parse(&format!("{A}, {B}\n"), "LAKE_API_KEYS").unwrap();
        assert_eq!(keys.len(), 2);
        assert!(keys.verify(A.as_bytes()));
        assert!(keys.verify(B.as_bytes()));
        assert!(!keys.verify(b"k3y-aaaaaaaaaaaaaaaaaaaaaaab"));
        assert!(!keys.verify(&A.as_bytes()[..A.len() - 1]));
        assert!(!keys.verify(b""));
        assert!(!format!("{keys:?}").contains("k3y"));

        let file = ApiKeys::parse(&format!("# the ops key\n{A}\n\n  # old: {B}\n"), "f").unwrap();
        assert_eq!(file.len(), 1);
        assert!(!file.verify(B.as_bytes()));

        for (text, needle) in [
            ("", "holds no key"),
            ("# only a comment", "holds no key"),
            ("short", "key 1 of LAKE_API_KEYS has 5 characters"),
            (
                &format!("{A} bad\"key-with-a-quote"),
                "key 2 of LAKE_API_KEYS has a character",
            ),
        ] {
            let err = ApiKeys::parse(text, "LAKE_API_KEYS")
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{err:?} lacks {needle:?}");
            assert!(!err.contains(A) && !err.contains("quote"), "{err}");
        }
    }

    #[test]
    fn only_the_dashboard_and_health_are_open() {
        for path in ["/", "/health", "/assets/app.js", "/assets/style.css"] {
            assert!(open_path(path), "{path}");
        }
        for path in [
            "/metrics",
            "/api/gold",
            "/api/sql",
            "/api/",
            "/assets/other",
            "/health/",
            "//health",
            "/nothing",
            "",
        ] {
            assert!(!open_path(path), "{path}");
        }
    }

    #[test]
    fn bearer_tokens() {
        let token = |v: &str| bearer(&HeaderValue::from_str(v).unwrap()).map(<[u8]>::to_vec);
        assert_eq!(token("Bearer abc"), Some(b"abc".to_vec()));
        assert_eq!(token("bearer   abc  "), Some(b"abc".to_vec()));
        assert_eq!(token("Basic abc"), None);
        assert_eq!(token("Bearer "), None);
        assert_eq!(token("Bearerabc"), None);
    }
}
