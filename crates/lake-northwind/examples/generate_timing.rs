//! Times `generate` at a scale (default 1000): `cargo run --release -p lake-northwind
//! --example generate_timing -- 1000`.

use std::time::Instant;

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let scale: u32 = match std::env::args().nth(1) {
        Some(s) => s.parse().with_context(|| format!("bad scale {s:?}"))?,
        None => 1000,
    };
    // Warm up the allocator and Polars' thread pool.
    lake_northwind::generate(1, lake_northwind::DEFAULT_SEED)?;
    let start = Instant::now();
    let nw = lake_northwind::generate(scale, lake_northwind::DEFAULT_SEED)?;
    let elapsed = start.elapsed();
    for (name, df) in &nw.tables {
        println!("{name:>14}: {:>9} rows", df.height());
    }
    println!("scale {scale}: generated in {:.3} s", elapsed.as_secs_f64());
    Ok(())
}
