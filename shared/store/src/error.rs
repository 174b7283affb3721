//! The store's error type: what went wrong, in terms a caller can act on.

use mongodb::error::{ErrorKind, WriteFailure};

/// MongoDB's duplicate-key error code.
pub const DUPLICATE_KEY: i32 = 11000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid MongoDB connection string: {0}")]
    BadUri(#[source] mongodb::error::Error),
    #[error("database error: {0}")]
    Database(#[from] mongodb::error::Error),
    #[error("a stored document does not have the expected shape: {0}")]
    Unreadable(String),
}

impl StoreError {
    /// A unique index refused the write (code 11000).
    pub fn is_duplicate_key(&self) -> bool {
        match self {
            StoreError::Database(err) => is_duplicate_key(err),
            StoreError::BadUri(_) | StoreError::Unreadable(_) => false,
        }
    }
}

/// Whether a driver error is a duplicate-key refusal, whichever write shape produced it.
pub fn is_duplicate_key(err: &mongodb::error::Error) -> bool {
    match err.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == DUPLICATE_KEY,
        ErrorKind::Command(e) => e.code == DUPLICATE_KEY,
        ErrorKind::InsertMany(e) => e
            .write_errors
            .iter()
            .flatten()
            .any(|w| w.code == DUPLICATE_KEY),
        _ => false,
    }
}

/// The database cannot be reached (no server, a network error, the client shutting down).
pub fn is_unreachable(err: &mongodb::error::Error) -> bool {
    matches!(
        err.kind.as_ref(),
        ErrorKind::ServerSelection { .. }
            | ErrorKind::Io(_)
            | ErrorKind::ConnectionPoolCleared { .. }
            | ErrorKind::Shutdown
    ) || err.contains_label("NetworkError")
}

/// The driver's refusal to start a transaction on a deployment it has not seen yet (a client
/// built while the database was unreachable says "not supported" until its next heartbeat).
pub fn is_topology_unknown(err: &mongodb::error::Error) -> bool {
    matches!(err.kind.as_ref(), ErrorKind::Transaction { message, .. } if message.contains("not supported"))
}

/// Why the settings document's reward policy could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicySettingsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the reward policy settings document is invalid: {0}")]
    Invalid(mall_domain::PolicyError),
}

impl PolicySettingsError {
    /// The settings could not be read because the database is unreachable (as opposed to a
    /// document that is there and wrong).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, PolicySettingsError::Store(StoreError::Database(err)) if is_unreachable(err))
    }
}
