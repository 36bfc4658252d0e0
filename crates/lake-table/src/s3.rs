//! S3 (MinIO, SeaweedFS, AWS) configuration of the lake, from the standard
//! AWS variables: `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`. With an
//! endpoint, requests are path-style (`http://host/bucket/key`), and plain
//! http is allowed only when the endpoint says http. Credentials are never
//! part of what is shown.
//!
//! Without `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, credentials
//! come from the EC2 instance metadata service (an instance role), unless
//! `AWS_EC2_METADATA_DISABLED=true`; `AWS_EC2_METADATA_SERVICE_ENDPOINT`
//! moves that service. AWS profiles (`~/.aws/credentials`, `AWS_PROFILE`)
//! are not read. When none gives credentials, requests fail saying so
//! ([`NoCredentials`]), not with the metadata service's connection error.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use object_store::aws::{
    AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, AwsCredential, AwsCredentialProvider,
};
use object_store::{BackoffConfig, RetryConfig};
use object_store::{ClientConfigKey, CredentialProvider};

/// How to reach S3.
#[derive(Clone)]
pub struct S3Settings {
    endpoint: Option<String>,
    region: String,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
    retry: RetryConfig,
    /// Whether the instance metadata service may be asked for credentials
    /// when no keys are set.
    instance_metadata: bool,
    /// Where that service is, when not at its standard address.
    metadata_endpoint: Option<String>,
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
            instance_metadata: true,
            metadata_endpoint: None,
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
            // The AWS SDKs' variables for the instance metadata service.
            instance_metadata: !var("AWS_EC2_METADATA_DISABLED")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
            metadata_endpoint: var("AWS_EC2_METADATA_SERVICE_ENDPOINT"),
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
        if let Some(endpoint) = &self.metadata_endpoint {
            keys.push((AmazonS3ConfigKey::MetadataEndpoint, endpoint.clone()));
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
        if self.access_key_id.is_none() && self.secret_access_key.is_none() {
            builder = builder.with_credentials(self.without_keys(bucket)?);
        }
        builder.build().with_context(|| {
            format!(
                "configuring S3 bucket {bucket} at {}",
                self.endpoint_display()
            )
        })
    }

    /// The credentials of a store without keys: the instance role, when
    /// the metadata service may be asked, behind [`NoKeys`], which turns
    /// its failure into [`NoCredentials`].
    fn without_keys(&self, bucket: &str) -> Result<AwsCredentialProvider> {
        let instance_role = if self.instance_metadata {
            // object_store's own provider for an instance role (what a
            // builder without keys uses), taken from a store built for it.
            let mut probe = AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_region(&self.region)
                .with_retry(self.retry.clone());
            if let Some(endpoint) = &self.metadata_endpoint {
                probe = probe.with_metadata_endpoint(endpoint);
            }
            let probe = probe
                .build()
                .context("configuring the instance role's credentials")?;
            Some(Arc::clone(probe.credentials()))
        } else {
            None
        };
        Ok(Arc::new(NoKeys { instance_role }))
    }
}

/// The failure of a request for want of credentials: no keys in the
/// environment, and no instance role (or the metadata service not to be
/// asked). Not worth retrying.
#[derive(Debug)]
pub struct NoCredentials {
    metadata_disabled: bool,
}

impl std::fmt::Display for NoCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "no S3 credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
             (and AWS_SESSION_TOKEN for temporary credentials); without them the lake \
             uses an EC2 instance role, ",
        )?;
        if self.metadata_disabled {
            f.write_str("not looked for since AWS_EC2_METADATA_DISABLED is set")?;
        } else {
            f.write_str("and the instance metadata service gave none")?;
        }
        f.write_str(" (AWS profiles and ~/.aws/credentials are not read)")
    }
}

impl std::error::Error for NoCredentials {}

/// The credentials of a store without keys (see [`S3Settings::without_keys`]).
#[derive(Debug)]
struct NoKeys {
    instance_role: Option<AwsCredentialProvider>,
}

impl CredentialProvider for NoKeys {
    type Credential = AwsCredential;

    // The trait is `#[async_trait]`; this is the signature it expands to.
    fn get_credential<'life0, 'async_trait>(
        &'life0 self,
    ) -> Pin<Box<dyn Future<Output = object_store::Result<Arc<AwsCredential>>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let failure = |metadata_disabled| object_store::Error::Generic {
                store: "S3",
                source: Box::new(NoCredentials { metadata_disabled }),
            };
            let Some(role) = &self.instance_role else {
                return Err(failure(true));
            };
            role.get_credential().await.map_err(|err| {
                // The metadata service's own error (its address, the
                // connection's failure) is for whoever debugs the service.
                tracing::debug!("no credentials from the instance metadata service: {err}");
                failure(false)
            })
        })
    }
}
