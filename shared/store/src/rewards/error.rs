//! How one attempt of a batch's transaction fails, as every step of the batch reports it and
//! the batch (`mod.rs`) acts on it: try again, wait for the turn, split, or fail the jobs.

use mall_domain::level::ParseLevelError;
use mall_domain::{BatchPlanError, MoneyError};
use mongodb::bson::oid::ObjectId;
use mongodb::error::{Error, ErrorKind};

use super::load::MAX_ANCESTORS;
use crate::amount::AmountError;
use crate::documents::TermsError;
use crate::queue::Attempt;
use crate::transaction::TransactionError;

/// Why one job of a batch cannot be paid: permanent, and that job's alone (it fails, with this
/// text in its errors; the batch goes on).
#[derive(Debug, thiserror::Error)]
pub(super) enum Unpayable {
    #[error(transparent)]
    Terms(#[from] TermsError),
    #[error("the referral chain has a cycle through {0}")]
    Cycle(ObjectId),
    #[error("the buyer {0} does not exist")]
    UnknownBuyer(ObjectId),
    /// A customer of the chain whose level letter cannot be read.
    #[error("corrupt customer data: {0}")]
    CorruptLevel(ParseLevelError),
    #[error("the referral chain is longer than {MAX_ANCESTORS} ancestors")]
    ChainTooLong,
    #[error("{0}")]
    Plan(BatchPlanError<ObjectId>),
    #[error("customer {0} left the chain")]
    LeftTheChain(ObjectId),
    /// A recipient's wallet cannot be read, or would not hold the new balance.
    #[error("customer {customer}: points: {problem}")]
    Wallet {
        customer: ObjectId,
        problem: AmountError,
    },
    #[error("customer {customer}: points: {problem}")]
    WalletOverflow {
        customer: ObjectId,
        problem: MoneyError,
    },
    #[error(transparent)]
    Money(#[from] MoneyError),
    #[error(transparent)]
    Amount(#[from] AmountError),
    /// A log that does not serialise (never, for the shapes we write).
    #[error(transparent)]
    Serialize(#[from] mongodb::bson::ser::Error),
}

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
