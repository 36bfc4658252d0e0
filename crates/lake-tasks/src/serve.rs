//! `cargo xtask serve`: the API and dashboard over a lake (the local one
//! by default), until Ctrl-C.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;
use lake_serve::ServeArgs;
use lake_table::{Layer, Table, TableRef};

pub fn serve(args: &ServeArgs) -> Result<()> {
    let lake = args.lake.open()?;
    if Table::open(&lake, TableRef::new(Layer::Gold, "kpi_summary"))?
        .latest()?
        .is_none()
    {
        eprintln!(
            "warning: {} has no gold tables yet: run `cargo xtask pipeline` first",
            lake.url()
        );
    }
    let handle = lake_serve::spawn(&args.addr, args.state()?)?;
    println!("dashboard: {}/   (Ctrl-C to stop)", handle.url());
    println!(
        "API:       {}/api/gold, /api/live/sales-by-country, /api/sql, /api/runs, /metrics",
        handle.url()
    );
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
