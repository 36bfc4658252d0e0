//! The `lake-serve` binary: it prints where it listens, answers, stops
//! cleanly on SIGTERM, and fails with a one-line error when it cannot
//! listen.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_lake-serve");

/// Status line of a plain HTTP/1.1 GET.
fn status_line(addr: &str, path: &str) -> String {
    status_with(addr, path, None)
}

#[test]
fn serves_until_sigterm() {
    let lake = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["--addr", "127.0.0.1:0", "--lake"])
        .arg(lake.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_string();
    assert_eq!(status_line(&addr, "/health"), "HTTP/1.1 200 OK");
    // An empty lake: no gold table yet, said as such.
    assert_eq!(
        status_line(&addr, "/api/gold/kpi_summary"),
        "HTTP/1.1 404 Not Found"
    );
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_taken_port_is_a_clear_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let lake = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .args(["--addr", &addr, "--lake"])
        .arg(lake.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .trim_end()
            .lines()
            .last()
            .unwrap_or_default()
            .starts_with(&format!("lake-serve: error: cannot listen on {addr}")),
        "{stderr}"
    );
}

const KEY: &str = "binary-test-key-7f3a9c2e51d4";

/// Reads a child's pipe to the end on a thread, so it never fills.
fn drain(pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(pipe).read_to_string(&mut text);
        text
    })
}

/// The port in `lake-serve: dashboard at http://HOST:PORT/ ...`.
fn port_of(first_line: &str) -> u16 {
    first_line
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|addr| addr.rsplit(':').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {first_line:?}"))
}

/// Status line of a GET with an optional Authorization header.
fn status_with(addr: &str, path: &str, authorization: Option<&str>) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    let header = authorization
        .map(|value| format!("Authorization: {value}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{header}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.lines().next().unwrap_or_default().to_string()
}

#[test]
fn a_non_loopback_address_without_a_key_refuses_to_start() {
    let lake = tempfile::tempdir().unwrap();
    for addr in ["0.0.0.0:0", "[::]:0"] {
        let output = Command::new(BIN)
            .args(["--addr", addr, "--lake"])
            .arg(lake.path())
            .env_remove("LAKE_API_KEYS")
            .env_remove("LAKE_API_KEY_FILE")
            .output()
            .unwrap();
        assert!(!output.status.success(), "{addr}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.trim_end().lines().last().unwrap_or_default();
        assert!(
            last.starts_with("lake-serve: error: refusing to serve on ")
                && last.contains("without an API key")
                && last.contains("LAKE_API_KEYS")
                && last.contains("--api-key-file"),
            "{addr}: {stderr}"
        );
        // It never said it was serving.
        assert!(output.stdout.is_empty(), "{addr}");
    }
    // A key that is no key is refused too, without showing it.
    let output = Command::new(BIN)
        .args(["--addr", "0.0.0.0:0", "--lake"])
        .arg(lake.path())
        .env("LAKE_API_KEYS", "tooshort")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("key 1 of LAKE_API_KEYS has 8 characters"),
        "{stderr}"
    );
    assert!(!stderr.contains("tooshort"), "{stderr}");
}

#[test]
fn an_exposed_server_needs_the_key_and_never_logs_it() {
    let lake = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["--addr", "0.0.0.0:0", "--lake"])
        .arg(lake.path())
        .env("LAKE_API_KEYS", format!("another-key-000000000000, {KEY}"))
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = drain(child.stderr.take().unwrap());
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.contains("2 API key(s)"), "{first}");
    let addr = format!("127.0.0.1:{}", port_of(&first));
    let wrong = "Bearer binary-test-key-7f3a9c2e51d5";
    assert_eq!(status_line(&addr, "/health"), "HTTP/1.1 200 OK");
    assert_eq!(status_line(&addr, "/"), "HTTP/1.1 200 OK");
    for path in ["/api/gold", "/metrics", "/api/runs"] {
        assert_eq!(
            status_with(&addr, path, None),
            "HTTP/1.1 401 Unauthorized",
            "{path}"
        );
        assert_eq!(
            status_with(&addr, path, Some(wrong)),
            "HTTP/1.1 401 Unauthorized",
            "{path}"
        );
        assert_eq!(
            status_with(&addr, path, Some(&format!("Bearer {KEY}"))),
            "HTTP/1.1 200 OK",
            "{path}"
        );
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let logs = format!("{first}{rest}{}", stderr.join().unwrap());
    for secret in [KEY, "another-key-000000000000", &wrong[7..]] {
        assert!(!logs.contains(secret), "a key in the output:\n{logs}");
    }
}

/// A self-signed certificate for localhost and 127.0.0.1 (not a CA, as
/// TLS clients require of a server's certificate).
fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let config = dir.join("openssl.cnf");
    std::fs::write(
        &config,
        "[req]\ndistinguished_name = dn\nx509_extensions = leaf\nprompt = no\n\
         [dn]\nCN = localhost\n\
         [leaf]\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n\
         extendedKeyUsage = serverAuth\nsubjectAltName = DNS:localhost, IP:127.0.0.1\n",
    )
    .unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let output = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .arg("-config")
        .arg(&config)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("the openssl command (Debian's openssl package) makes the test certificate");
    assert!(
        output.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (cert, key)
}

#[test]
fn tls_with_a_self_signed_certificate() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let lake = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let keys = dir.path().join("keys");
    std::fs::write(&keys, format!("# ops\n{KEY}\n")).unwrap();
    let mut child = Command::new(BIN)
        .args(["--addr", "127.0.0.1:0", "--lake"])
        .arg(lake.path())
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .arg("--api-key-file")
        .arg(&keys)
        .env_remove("LAKE_API_KEYS")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("https://127.0.0.1:"), "{first}");
    let port = port_of(&first);
    let trusting = reqwest::blocking::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    for host in ["localhost", "127.0.0.1"] {
        let base = format!("https://{host}:{port}");
        let health = trusting.get(format!("{base}/health")).send().unwrap();
        assert_eq!(health.status(), 200);
        let body: serde_json::Value = health.json().unwrap();
        assert_eq!(body["api_key_required"], true);
        let without = trusting.get(format!("{base}/api/gold")).send().unwrap();
        assert_eq!(without.status(), 401);
        let with = trusting
            .get(format!("{base}/api/gold"))
            .bearer_auth(KEY)
            .send()
            .unwrap();
        assert_eq!(with.status(), 200);
    }
    // A client that does not trust the certificate cannot connect, and
    // plain HTTP gets no answer.
    let default = reqwest::blocking::Client::new();
    assert!(
        default
            .get(format!("https://localhost:{port}/health"))
            .send()
            .is_err()
    );
    assert!(
        default
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .is_err()
    );
    // Still serving after those failed handshakes.
    let again = trusting
        .get(format!("https://localhost:{port}/health"))
        .send()
        .unwrap();
    assert_eq!(again.status(), 200);
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}
