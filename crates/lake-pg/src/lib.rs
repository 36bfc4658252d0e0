//! The lake's PostgreSQL access, linked only by what reads or loads a
//! PostgreSQL database (bronze, and `cargo xtask seed` and `bench`): URLs
//! and TLS, the catalog query that gives a source table's columns and their
//! lake types, the connection bulk COPY reads go through and the decoder of
//! binary COPY streams into Polars frames.

pub mod catalog;
pub mod copy_connection;
pub mod copy_decoder;
pub mod error;
pub mod tls;
pub mod url;
