//! TLS for the server: a certificate chain and its key, from PEM files or
//! from `LAKE_TLS_CERT` and `LAKE_TLS_KEY`; rustls with the `ring`
//! provider, chosen explicitly.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Variables naming the PEM files of the certificate chain and its key.
pub const TLS_CERT_VARIABLE: &str = "LAKE_TLS_CERT";
pub const TLS_KEY_VARIABLE: &str = "LAKE_TLS_KEY";

/// A TLS configuration: a certificate chain and its private key.
#[derive(Clone)]
pub struct Tls {
    pub(crate) config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

impl Tls {
    /// From PEM files: the certificate chain (leaf first) and its private
    /// key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Tls> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect())
            .map_err(|err| anyhow::anyhow!("{err}"))
            .with_context(|| format!("reading the TLS certificate {}", cert.display()))?;
        if chain.is_empty() {
            bail!(
                "the TLS certificate file {} holds no certificate",
                cert.display()
            );
        }
        let private = PrivateKeyDer::from_pem_file(key)
            .map_err(|err| anyhow::anyhow!("{err}"))
            .with_context(|| format!("reading the TLS key {}", key.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .with_context(|| {
                format!(
                    "the TLS key {} does not go with the certificate {}",
                    key.display(),
                    cert.display()
                )
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            config: Arc::new(config),
        })
    }

    /// From `LAKE_TLS_CERT` and `LAKE_TLS_KEY`; `None` when neither is set.
    pub fn from_env() -> Result<Option<Tls>> {
        let cert = std::env::var_os(TLS_CERT_VARIABLE);
        let key = std::env::var_os(TLS_KEY_VARIABLE);
        match (cert, key) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => {
                Tls::from_pem_files(Path::new(&cert), Path::new(&key)).map(Some)
            }
            _ => bail!("set both {TLS_CERT_VARIABLE} and {TLS_KEY_VARIABLE}, or neither"),
        }
    }
}
