//! Errors worth retrying: the one classification storage makes that the
//! pipeline's step runner acts on.

use std::fmt;

/// Marks a failure that may succeed when retried (a connection refused, a
/// timeout, a 5xx from object storage). The pipeline retries steps whose error
/// chain contains it a bounded number of times.
#[derive(Debug)]
pub struct Transient(pub String);

impl fmt::Display for Transient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Transient {}

/// True when the error, or any context wrapped around it, is marked
/// [`Transient`] (anyhow's downcast looks through every context layer).
pub fn is_transient(err: &anyhow::Error) -> bool {
    err.downcast_ref::<Transient>().is_some()
}

/// True for a storage failure that may pass when retried: anything but a
/// missing or existing object, a failed precondition, an unsupported
/// request, a bad path or refused credentials.
pub fn may_pass_when_retried(err: &object_store::Error) -> bool {
    if let object_store::Error::Generic { source, .. } = err
        && source.is::<crate::s3::NoCredentials>()
    {
        return false;
    }
    !matches!(
        err,
        object_store::Error::NotFound { .. }
            | object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. }
            | object_store::Error::NotSupported { .. }
            | object_store::Error::InvalidPath { .. }
            | object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. }
    )
}
