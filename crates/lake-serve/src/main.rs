//! `lake-serve`: the serving layer's HTTP server over a lake.

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use lake_core::config::init_tracing;
use lake_core::error::exit_code;
use lake_serve::server::{bind, secure};
use lake_serve::{ServeArgs, serve};

/// Serve the lake's tables, the stream's live views, SQL and the dashboard.
#[derive(Parser)]
#[command(name = "lake-serve", version)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
}

async fn run(cli: Cli) -> Result<()> {
    let state = cli.serve.state()?;
    let listener = bind(&cli.serve.addr).await?;
    let local = listener.local_addr()?;
    // Refused here, before saying where it listens, when exposed without a key.
    let state = secure(state, local)?;
    let scheme = if state.tls().is_some() {
        "https"
    } else {
        "http"
    };
    let keys = match state.keys() {
        Some(keys) => format!("{} API key(s)", keys.len()),
        None => "no API key".to_string(),
    };
    println!(
        "lake-serve: dashboard at {scheme}://{local}/ (lake {}, {keys})",
        cli.serve.lake.url
    );
    serve(listener, state, shutdown_signal()).await
}

/// Ctrl-C or SIGTERM: finish the requests in flight, then stop.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).ok();
    let term = async {
        match terminate.as_mut() {
            Some(stream) => {
                stream.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    init_tracing();
    exit_code("lake-serve: error: ", run(Cli::parse()).await)
}
