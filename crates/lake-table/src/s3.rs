//! S3 (MinIO, SeaweedFS, AWS) configuration of the lake, from the standard
//! AWS variables: `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`. With an
//! endpoint, requests are path-style (`http://host/bucket/key`), and plain
//! http is allowed only when the endpoint says http. Credentials are never
//! part of what is shown.

use std::time::Duration;

use anyhow::{Context, Result};
use object_store::ClientConfigKey;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::{BackoffConfig, RetryConfig};

/// How to reach S3.
#[derive(Clone)]
pub struct S3Settings {
    endpoint: Option<String>,
    region: String,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
    retry: RetryConfig,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "S3Settings({}, {})",
            self.endpoint_display(),
            self.region
        )
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl S3Settings {
    /// Settings for an S3-compatible endpoint with static credentials.
    pub fn new(endpoint: &str, access_key_id: &str, secret_access_key: &str) -> S3Settings {
        S3Settings {
            endpoint: Some(endpoint.to_string()),
            region: "us-east-1".into(),
            access_key_id: Some(access_key_id.to_string()),
            secret_access_key: Some(secret_access_key.to_string()),
            session_token: None,
            retry: RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 6,
                retry_timeout: Duration::from_secs(30),
            },
        }
    }

    pub fn from_env() -> Result<S3Settings> {
        let seconds = |name: &str, default: u64| -> Result<u64> {
            var(name)
                .map(|v| {
                    v.parse()
                        .with_context(|| format!("{name} must be a number of seconds"))
                })
                .unwrap_or(Ok(default))
        };
        Ok(S3Settings {
            endpoint: var("AWS_ENDPOINT_URL")
                .or_else(|| var("AWS_ENDPOINT_URL_S3"))
                .or_else(|| var("AWS_ENDPOINT")),
            region: var("AWS_REGION")
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".into()),
            access_key_id: var("AWS_ACCESS_KEY_ID"),
            secret_access_key: var("AWS_SECRET_ACCESS_KEY"),
            session_token: var("AWS_SESSION_TOKEN"),
            // Transient failures (5xx, timeouts, refused connections) are
            // retried with exponential backoff for up to this long, then
            // reported naming the bucket and key.
            retry: RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: seconds("LAKE_S3_MAX_RETRIES", 6)? as usize,
                retry_timeout: Duration::from_secs(seconds("LAKE_S3_RETRY_TIMEOUT", 30)?),
            },
        })
    }

    /// The endpoint as shown to people.
    pub fn endpoint_display(&self) -> String {
        self.endpoint
            .clone()
            .unwrap_or_else(|| format!("AWS {}", self.region))
    }

    /// The same settings as configuration keys of object_store's S3
    /// builder, for engines that build their own client (Polars' scans).
    pub fn config_keys(&self) -> Vec<(AmazonS3ConfigKey, String)> {
        let mut keys = vec![(AmazonS3ConfigKey::Region, self.region.clone())];
        if let Some(endpoint) = &self.endpoint {
            keys.push((AmazonS3ConfigKey::Endpoint, endpoint.clone()));
            keys.push((AmazonS3ConfigKey::VirtualHostedStyleRequest, "false".into()));
            if endpoint.starts_with("http://") {
                keys.push((
                    AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp),
                    "true".into(),
                ));
            }
        }
        if let Some(key) = &self.access_key_id {
            keys.push((AmazonS3ConfigKey::AccessKeyId, key.clone()));
        }
        if let Some(secret) = &self.secret_access_key {
            keys.push((AmazonS3ConfigKey::SecretAccessKey, secret.clone()));
        }
        if let Some(token) = &self.session_token {
            keys.push((AmazonS3ConfigKey::Token, token.clone()));
        }
        keys
    }

    /// A store for one bucket.
    pub fn store(&self, bucket: &str) -> Result<AmazonS3> {
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(&self.region)
            .with_retry(self.retry.clone());
        if let Some(endpoint) = &self.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(key) = &self.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &self.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        if let Some(token) = &self.session_token {
            builder = builder.with_token(token);
        }
        builder.build().with_context(|| {
            format!(
                "configuring S3 bucket {bucket} at {}",
                self.endpoint_display()
            )
        })
    }
}
