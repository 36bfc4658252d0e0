//! The lake's PostgreSQL access, linked only by what reads or loads a
//! PostgreSQL database (bronze, and `cargo xtask seed`, `up` and `bench`):
//! URLs and TLS, the catalog query that gives a source table's columns and
//! their lake types, the snapshot a run's copies share, the connection bulk
//! COPY reads go through, the decoder of binary COPY streams into Polars
//! frames, and the load of a generated Northwind.

pub mod catalog;
pub mod copy_connection;
pub mod copy_decoder;
pub mod error;
pub mod load;
pub mod snapshot;
pub mod tls;
pub mod url;
