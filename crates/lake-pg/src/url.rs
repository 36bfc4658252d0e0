//! `postgresql://` URLs: parsing (libpq's `sslmode` and `sslrootcert`
//! included), the URL as messages show it (no password), and connecting as
//! the URL asks, blocking or for bulk COPY reads.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ::url::Url;
use anyhow::{Result, anyhow, bail};
use tokio_postgres::config::SslMode;

use crate::copy_connection::{CopyConnection, copy_runtime};
use crate::error::connection_error;
use crate::tls::{Tls, TlsMode};

/// A parsed `postgresql://` URL. Its `Debug` and `Display` never show the
/// password.
#[derive(Clone)]
pub struct PgUrl {
    config: tokio_postgres::Config,
    pub(crate) tls: Tls,
    redacted: String,
    location: String,
}

impl std::fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgUrl({})", self.redacted)
    }
}

impl std::fmt::Display for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted)
    }
}

/// Connection timeout when the URL does not set `connect_timeout`.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl FromStr for PgUrl {
    type Err = anyhow::Error;

    fn from_str(raw: &str) -> Result<Self> {
        let raw = raw.trim();
        // libpq's `key=value ...` form is not accepted; said so without
        // echoing it, since its `password=` would be shown.
        if !raw.contains("://") && raw.contains('=') {
            bail!(
                "invalid PostgreSQL URL (not shown, it may hold a password): a libpq \
                 key=value connection string; give a postgresql://user@host:port/db URL"
            );
        }
        // The url crate's messages never echo the input, so no password leaks.
        let mut url = Url::parse(raw).map_err(|err| {
            anyhow!("invalid PostgreSQL URL (not shown, it may hold a password): {err}")
        })?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            bail!(
                "invalid PostgreSQL URL: scheme {:?}, expected postgresql://",
                url.scheme()
            );
        }
        // Redacted before anything else can fail, so every message below
        // shows the URL masked as it was given (its sslmode included).
        let redacted = redact(&url);
        // sslmode and sslrootcert are handled here: tokio-postgres knows only
        // disable/prefer/require and does no certificate configuration.
        let mut tls = TlsMode::Prefer;
        let mut root_cert = None;
        let mut kept: Vec<(String, String)> = Vec::new();
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "sslmode" => {
                    tls = match value.as_ref() {
                        "disable" => TlsMode::Disable,
                        "allow" | "prefer" => TlsMode::Prefer,
                        "require" => TlsMode::Require,
                        "verify-ca" => TlsMode::VerifyCa,
                        "verify-full" => TlsMode::VerifyFull,
                        other => bail!("invalid PostgreSQL URL: unknown sslmode {other:?}"),
                    }
                }
                "sslrootcert" => root_cert = Some(PathBuf::from(value.as_ref())),
                _ => kept.push((key.into_owned(), value.into_owned())),
            }
        }
        if kept.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(kept);
        }
        let mut config = tokio_postgres::Config::from_str(url.as_str())
            .map_err(|err| anyhow!("invalid PostgreSQL URL {redacted}: {err}"))?;
        config.ssl_mode(match tls {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            TlsMode::Require | TlsMode::VerifyCa | TlsMode::VerifyFull => SslMode::Require,
        });
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("medallion-lake");
        }
        let host = url.host_str().unwrap_or("localhost").to_string();
        let port = url.port().unwrap_or(5432);
        let db = config
            .get_dbname()
            .map(str::to_string)
            .or_else(|| config.get_user().map(str::to_string))
            .unwrap_or_else(|| "postgres".into());
        Ok(PgUrl {
            config,
            tls: Tls::new(tls, root_cert),
            redacted,
            location: format!("postgresql://{host}:{port}/{db}"),
        })
    }
}

/// Query parameters whose values messages show: libpq's settings that
/// hold no secret. Every other parameter keeps its name but shows `***`:
/// an allow-list, so `password`, `sslpassword`, `passfile`, `sslkey`,
/// `options` (free text), a misspelt name or one libpq adds later are
/// masked until someone judges them harmless.
const SHOWN_PARAMETERS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "application_name",
    "fallback_application_name",
    "connect_timeout",
    "tcp_user_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "keepalives_retries",
    "sslmode",
    "sslnegotiation",
    "sslrootcert",
    "sslcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "gssencmode",
    "channel_binding",
    "target_session_attrs",
    "load_balance_hosts",
    "client_encoding",
];

/// The URL as messages show it: the password of its user info replaced by
/// `***`, every query parameter outside [`SHOWN_PARAMETERS`] too (names
/// compared as the server reads them, percent-decoded), no fragment.
fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    shown.set_fragment(None);
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(key, value)| {
            let value = if SHOWN_PARAMETERS.contains(&key.as_ref()) {
                value.into_owned()
            } else {
                "***".to_string()
            };
            (key.into_owned(), value)
        })
        .collect();
    if pairs.is_empty() {
        shown.set_query(None);
    } else {
        shown.query_pairs_mut().clear().extend_pairs(pairs);
    }
    shown.to_string()
}

impl PgUrl {
    /// The connection as libpq's variables (`PGHOST`, `PGPORT`, `PGUSER`,
    /// `PGPASSWORD`, `PGDATABASE`), for tools that read them (the
    /// benchmark's peer scripts). Holds the password: for a child's
    /// environment only, never for a log.
    pub fn libpq_env(&self) -> Vec<(&'static str, String)> {
        let mut vars = Vec::new();
        if let Some(tokio_postgres::config::Host::Tcp(host)) = self.config.get_hosts().first() {
            vars.push(("PGHOST", host.clone()));
        }
        if let Some(port) = self.config.get_ports().first() {
            vars.push(("PGPORT", port.to_string()));
        }
        if let Some(user) = self.config.get_user() {
            vars.push(("PGUSER", user.to_string()));
        }
        if let Some(password) = self.config.get_password() {
            vars.push(("PGPASSWORD", String::from_utf8_lossy(password).into_owned()));
        }
        if let Some(db) = self.config.get_dbname() {
            vars.push(("PGDATABASE", db.to_string()));
        }
        vars
    }

    /// `postgresql://host:port/db`: where data came from, without user or
    /// password (used for `_source`).
    pub fn location(&self) -> &str {
        &self.location
    }

    pub fn tls_mode(&self) -> TlsMode {
        self.tls.mode
    }

    /// Connects, with TLS as the URL asks.
    pub fn connect(&self) -> Result<postgres::Client> {
        let config = postgres::Config::from(self.config.clone());
        let result = if self.tls.mode == TlsMode::Disable {
            config.connect(postgres::NoTls)
        } else {
            config.connect(self.tls.connector()?)
        };
        result.map_err(|err| connection_error(err, &self.redacted))
    }

    /// Connects for bulk COPY reads ([`CopyConnection`]), with TLS as the
    /// URL asks.
    pub fn connect_for_copy(&self) -> Result<CopyConnection> {
        let runtime = copy_runtime()?;
        let tls = match self.tls.mode {
            TlsMode::Disable => None,
            _ => Some(self.tls.connector()?),
        };
        let client = runtime
            .block_on(async {
                match tls {
                    None => spawn_connection(&self.config, postgres::NoTls).await,
                    Some(tls) => spawn_connection(&self.config, tls).await,
                }
            })
            .map_err(|err| connection_error(err, &self.redacted))?;
        Ok(CopyConnection::new(client, runtime))
    }
}

/// Connects and spawns the connection task on the current runtime: it runs
/// whenever the caller waits in that runtime, and ends when the client is
/// dropped.
async fn spawn_connection<T>(
    config: &tokio_postgres::Config,
    tls: T,
) -> Result<tokio_postgres::Client, postgres::Error>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Send + 'static,
{
    let (client, connection) = config.connect(tls).await?;
    tokio::spawn(connection);
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tls_connector_is_built_once_and_shared_by_clones() {
        let url: PgUrl = "postgresql://u@h/db?sslmode=require".parse().unwrap();
        let clone = url.clone();
        assert!(clone.tls.connector.lock().unwrap().is_none());
        url.tls.connector().unwrap();
        // The clone, made before the first use, finds the connector built
        // then, so its connections do not load the CA certificates again.
        assert!(clone.tls.connector.lock().unwrap().is_some());
    }

    #[test]
    fn password_never_shown() {
        let url: PgUrl = "postgresql://lake:s3cr3t@db.example:6543/northwind?sslmode=require"
            .parse()
            .unwrap();
        assert_eq!(url.location(), "postgresql://db.example:6543/northwind");
        assert!(!format!("{url} {url:?}").contains("s3cr3t"));
        assert_eq!(url.tls_mode(), TlsMode::Require);
    }

    #[test]
    fn verify_modes_and_defaults() {
        let url: PgUrl = "postgres://u@h/db?sslmode=verify-full&sslrootcert=/tmp/ca.pem"
            .parse()
            .unwrap();
        assert_eq!(url.tls_mode(), TlsMode::VerifyFull);
        assert_eq!(url.location(), "postgresql://h:5432/db");
        let plain: PgUrl = "postgresql://u@h".parse().unwrap();
        assert_eq!(plain.tls_mode(), TlsMode::Prefer);
        assert_eq!(plain.location(), "postgresql://h:5432/u");
    }

    /// Every credential-bearing part of a URL, however it is given, is
    /// masked in `Display`, `Debug`, parse errors and connection errors.
    #[test]
    fn no_credential_form_is_shown() {
        // A port where nothing listens: the connection error path runs too.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let base = format!("postgresql://lake:pw-userinfo@127.0.0.1:{port}/northwind");
        let forms = [
            format!("{base}?sslmode=disable&connect_timeout=2"),
            format!("{base}?password=pw-query&sslmode=disable"),
            format!("{base}?pass%77ord=pw-encoded&sslmode=disable"),
            format!("{base}?options=-c%20x%3Dpw-options&sslmode=disable"),
            format!("{base}?sslmode=disable#pw-fragment"),
        ];
        for raw in &forms {
            let url: PgUrl = raw.parse().unwrap();
            let err = format!("{:#}", url.connect().err().expect("nothing listens"));
            let shown = format!("{url} {url:?} {err}");
            assert!(!shown.contains("pw-"), "{raw} shown as {shown}");
            // Harmless settings stay visible, masked ones keep their name.
            assert!(shown.contains("sslmode=disable"), "{shown}");
            assert!(shown.contains("lake:***@127.0.0.1"), "{shown}");
        }
        let url: PgUrl = forms[1].parse().unwrap();
        assert!(
            url.to_string().ends_with("?password=***&sslmode=disable"),
            "{url}"
        );
        assert_eq!(
            url.location(),
            format!("postgresql://127.0.0.1:{port}/northwind")
        );
        // Parameters tokio-postgres refuses fail the parse, masked too.
        for unsupported in [
            "sslpassword=pw-sslpassword",
            "passfile=/home/pw-passfile",
            "sslkey=/keys/pw-sslkey",
            "PASSWORD=pw-upper",
        ] {
            let err = format!("{base}?sslmode=require&{unsupported}")
                .parse::<PgUrl>()
                .expect_err("unknown option accepted")
                .to_string();
            assert!(err.contains("invalid PostgreSQL URL"), "{err}");
            assert!(!err.contains("pw-"), "{err}");
            assert!(err.contains("sslmode=require"), "{err}");
        }
        // libpq's key=value form is refused without echoing it.
        let err = format!("host=127.0.0.1 port={port} user=lake password=pw-keyvalue")
            .parse::<PgUrl>()
            .expect_err("key=value accepted")
            .to_string();
        assert!(err.contains("key=value") && !err.contains("pw-"), "{err}");
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_them() {
        let err = "mysql://u:pw@h/db"
            .parse::<PgUrl>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected postgresql://"), "{err}");
        let err = "postgresql://u:pw@h/db?sslmode=sometimes"
            .parse::<PgUrl>()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown sslmode") && !err.contains("pw"),
            "{err}"
        );
    }
}
