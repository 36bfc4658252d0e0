//! The project's chores as plain Rust, reachable as `cargo xtask ...`, and
//! as a library so workspace tests run the very same pipeline.

pub mod bench;
mod bench_serve;
mod bench_stream;
pub mod lake_ls;
pub mod pipeline;
pub mod seed;
pub mod serve;
pub mod services;
pub mod summary;
pub mod test;
