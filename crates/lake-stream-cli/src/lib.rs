//! What the `lake-stream` binary puts together: the stream with the serving
//! layer in one process (`run --serve`). Tests that run both in process use
//! it too.

pub mod serve;
