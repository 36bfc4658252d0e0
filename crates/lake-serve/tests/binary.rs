//! The `lake-serve` binary: it prints where it listens, answers, stops
//! cleanly on SIGTERM, and fails with a one-line error when it cannot
//! listen.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_lake-serve");

/// Status line of a plain HTTP/1.1 GET.
fn status_line(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.lines().next().unwrap_or_default().to_string()
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
