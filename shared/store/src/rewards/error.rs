//! How one attempt of a batch's transaction fails, as every step of the batch reports it and
//! the batch (`mod.rs`) acts on it: try again, wait for the turn, split, or fail the jobs.

use mongodb::error::{Error, ErrorKind};

use crate::queue::Attempt;
use crate::transaction::TransactionError;

/// How one attempt of a batch's transaction failed.
#[derive(Debug)]
pub(super) enum BatchError {
    /// Another writer got there first (a write conflict, a wallet changed): try again.
    Conflict(String),
    /// The server refused something of the batch: split it to find the job, or fail the job.
    Refused(Attempt),
    /// The database could not be reached: every job of the group fails this attempt.
    Unavailable(Attempt),
    /// Some fence failed: a claim is no longer ours.
    LostLease,
    /// Another batch holds the turn: wait for it, then try again.
    Busy,
    /// The load and plan ran past the time budget: cut the group smaller.
    TooSlow,
    /// A test failpoint simulated a crash.
    #[cfg(feature = "failpoints")]
    Died,
}

impl TransactionError for BatchError {
    fn is_conflict(&self) -> bool {
        matches!(self, BatchError::Conflict(_))
    }

    fn waits(&self) -> bool {
        matches!(self, BatchError::Busy)
    }
}

impl From<Error> for BatchError {
    fn from(err: Error) -> Self {
        if err.contains_label(mongodb::error::TRANSIENT_TRANSACTION_ERROR) {
            return BatchError::Conflict(err.to_string());
        }
        let refused = matches!(
            *err.kind,
            ErrorKind::Command(_)
                | ErrorKind::Write(_)
                | ErrorKind::InsertMany(_)
                | ErrorKind::BulkWrite(_)
        );
        let failure = Attempt::Retryable(err.to_string());
        if refused {
            BatchError::Refused(failure)
        } else {
            BatchError::Unavailable(failure)
        }
    }
}
