//! TLS of PostgreSQL connections: libpq's `sslmode`s, and the OpenSSL
//! connector a URL's mode asks for, built once per URL.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use postgres_openssl::MakeTlsConnector;

/// How hard the connection insists on TLS, with libpq's meaning of each
/// `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    /// TLS when the server offers it, without verification (libpq's default).
    Prefer,
    /// TLS required, certificate not verified.
    Require,
    /// TLS required, certificate chain verified.
    VerifyCa,
    /// TLS required, chain and host name verified.
    VerifyFull,
}

/// A URL's TLS settings (`sslmode`, `sslrootcert`) and the connector they
/// give.
#[derive(Clone)]
pub(crate) struct Tls {
    pub(crate) mode: TlsMode,
    root_cert: Option<PathBuf>,
    /// The connector, built on first use and shared by the URL's clones:
    /// building one loads the system's CA certificates (144 here, 25-50 ms
    /// of CPU), and bronze opens a connection per table.
    pub(crate) connector: Arc<Mutex<Option<MakeTlsConnector>>>,
}

impl Tls {
    pub(crate) fn new(mode: TlsMode, root_cert: Option<PathBuf>) -> Tls {
        Tls {
            mode,
            root_cert,
            connector: Arc::default(),
        }
    }

    /// The connector, built once (see the `connector` field).
    pub(crate) fn connector(&self) -> Result<MakeTlsConnector> {
        let mut cached = self
            .connector
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(connector) = cached.as_ref() {
            return Ok(connector.clone());
        }
        let connector = self.build()?;
        *cached = Some(connector.clone());
        Ok(connector)
    }

    fn build(&self) -> Result<MakeTlsConnector> {
        let mut builder =
            SslConnector::builder(SslMethod::tls()).context("initialising OpenSSL")?;
        let verify = matches!(self.mode, TlsMode::VerifyCa | TlsMode::VerifyFull);
        if verify {
            builder.set_verify(SslVerifyMode::PEER);
            if let Some(root) = &self.root_cert {
                builder
                    .set_ca_file(root)
                    .with_context(|| format!("loading sslrootcert {}", root.display()))?;
            }
        } else {
            builder.set_verify(SslVerifyMode::NONE);
        }
        let mut connector = MakeTlsConnector::new(builder.build());
        let check_host = self.mode == TlsMode::VerifyFull;
        connector.set_callback(move |config, _domain| {
            config.set_verify_hostname(check_host);
            Ok(())
        });
        Ok(connector)
    }
}
