//! The project's chores as plain Rust, reachable as `cargo xtask ...` (the
//! `xtask` launcher runs this crate's binary for every command but `test`),
//! and as a library so workspace tests run the very same pipeline.

pub mod backfill;
pub mod bench;
mod bench_commit;
mod bench_serve;
mod bench_stream;
pub mod lake;
mod measure;
pub mod pipeline;
pub mod seed;
pub mod serve;
pub mod services;
pub mod summary;
