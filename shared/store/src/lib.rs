//! Every MongoDB query of the mall lives in this crate. A kernel — [`Store`]: the one client,
//! the typed collection handles, the one transaction runner, the documents in the running
//! app's shapes (amounts in its unit, points as a Double) — and one wing per purpose, each
//! reached through a handle:
//!
//! - [`Store::checkouts`] ([`Checkouts`]): the checkout transaction, a purchase's read model,
//!   the reward policy in force.
//! - [`Store::queue`] ([`Queue`]): claims, settling an attempt, failures, the drainer lease,
//!   the queue's depth.
//! - [`Store::rewards`] ([`Rewards`]): a batch of claimed jobs loaded, planned and written in
//!   one transaction.
//! - [`Store::operators`] ([`Operators`], feature `operators`: the `mall` command and
//!   `retry-failed` only): queue status, re-drive, audit, cutover check, customers, seeding.
//!
//! This file is the crate's whole public face: the handles and their request and report
//! types. The modules themselves are private; the few that tests and test tools read and
//! write directly (documents, queue, amounts, …) are public to them alone (the
//! `test-support` feature).

// The modules are private; those that tests and test tools read and write directly are public
// to them (the `test-support` feature). Plain declarations, so that rustfmt sees every file.
#[cfg(feature = "operators")]
mod audit;
mod chains;
#[cfg(feature = "operators")]
mod cutover;
mod rewards;
#[cfg(feature = "operators")]
mod seeding;
mod store;
mod transaction;

#[cfg(feature = "test-support")]
pub mod amount;
#[cfg(not(feature = "test-support"))]
mod amount;
#[cfg(feature = "test-support")]
pub mod checkout;
#[cfg(not(feature = "test-support"))]
mod checkout;
#[cfg(feature = "test-support")]
pub mod collections;
#[cfg(not(feature = "test-support"))]
mod collections;
#[cfg(feature = "test-support")]
pub mod documents;
#[cfg(not(feature = "test-support"))]
mod documents;
#[cfg(feature = "test-support")]
pub mod drainer;
#[cfg(not(feature = "test-support"))]
mod drainer;
#[cfg(feature = "test-support")]
pub mod error;
#[cfg(not(feature = "test-support"))]
mod error;
#[cfg(feature = "test-support")]
pub mod failpoints;
#[cfg(not(feature = "test-support"))]
mod failpoints;
#[cfg(feature = "test-support")]
pub mod indexes;
#[cfg(not(feature = "test-support"))]
mod indexes;
#[cfg(feature = "test-support")]
pub mod ops;
#[cfg(all(feature = "operators", not(feature = "test-support")))]
mod ops;
#[cfg(feature = "test-support")]
pub mod queue;
#[cfg(not(feature = "test-support"))]
mod queue;
#[cfg(feature = "test-support")]
pub mod settings;
#[cfg(not(feature = "test-support"))]
mod settings;

pub use checkout::{
    CheckoutCommand, CheckoutError, CheckoutReceipt, Checkouts, DistributionView, Economy,
    JobProgress, JobView, PurchaseLineView, PurchaseView, RewardsProgress,
};
pub use error::{PolicySettingsError, StoreError};
pub use indexes::{IndexError, IndexState, IndexStatus};
pub use queue::{Attempt, Claim, ClaimedJob, JobOutcome, Queue, QueueSettings, UnreadableJob};
pub use rewards::{BatchReport, Rewards};
pub use store::{Store, StoreConfig};

#[cfg(feature = "operators")]
pub use audit::{AuditReport, JobsByStatus, Violation};
#[cfg(feature = "operators")]
pub use cutover::CutoverReport;
#[cfg(feature = "operators")]
pub use documents::{CustomerDoc, ProductDoc, REFERRAL_ACTIVE};
#[cfg(feature = "operators")]
pub use ops::{
    FailedJob, NotRedriven, Operators, QueueStatus, RedriveReport, RedriveRequest,
    RedriveRequestError, RedriveSelection, SkippedJob, DEFAULT_REDRIVE_LIMIT, MAX_REDRIVE,
};
#[cfg(feature = "operators")]
pub use seeding::DemoCartLine;

/// The BSON types the documents use, re-exported so callers need no direct `bson` dependency.
pub use mongodb::bson;
