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
//! - `Store::operators` (`Operators`, feature `operators`: the `mall` command and
//!   `retry-failed` only): queue status, re-drive, audit, cutover check, customers, seeding.
//!
//! This file is the crate's whole public face: the handles and their request and report
//! types. The modules themselves are private; what tests and test tools read and write
//! directly (documents, queue, amounts, …) is under `mall_store::testing` (feature `test-support`).

mod amount;
#[cfg(feature = "operators")]
mod audit;
mod chains;
mod checkout;
mod collections;
#[cfg(feature = "operators")]
mod cutover;
mod documents;
mod drainer;
mod error;
mod failpoints;
mod gifts_pool;
mod indexes;
#[cfg(feature = "operators")]
mod ops;
mod queue;
mod rewards;
#[cfg(feature = "operators")]
mod seeding;
mod settings;
mod store;
mod transaction;

/// The modules that tests and test tools read and write directly (documents, queue, amounts, …),
/// for them alone: `mall_store::testing::documents::CustomerDoc` and the like. A function's build
/// has no such path.
#[cfg(feature = "test-support")]
pub mod testing {
    /// `pub mod m { pub use crate::m::*; }` for each module named: its public items, at the
    /// path the tests name.
    macro_rules! public_to_tests {
        ($($module:ident),* $(,)?) => {
            $(pub mod $module {
                pub use crate::$module::*;
            })*
        };
    }

    public_to_tests!(
        amount,
        checkout,
        collections,
        documents,
        drainer,
        error,
        failpoints,
        gifts_pool,
        indexes,
        ops,
        queue,
        settings,
    );
}

pub use checkout::{
    CheckoutCommand, CheckoutError, CheckoutReceipt, Checkouts, DistributionView, Economy,
    JobProgress, JobView, PurchaseLineView, PurchaseView, RewardsProgress,
};
pub use error::{PolicySettingsError, StoreError};
pub use indexes::{IndexError, IndexState, IndexStatus};
pub use queue::{Attempt, Claim, ClaimedJob, JobOutcome, Queue, QueueSettings, UnreadableJob};
pub use rewards::{BatchReport, Rewards};
pub use store::{Store, StoreConfig, MAX_IDLE_TIME};

#[cfg(feature = "operators")]
pub use audit::{AuditReport, JobsByStatus, Violation};
#[cfg(feature = "operators")]
pub use cutover::{app_jobs_rules_differ, CutoverReport};
#[cfg(feature = "operators")]
pub use documents::{CustomerDoc, ProductDoc, REFERRAL_ACTIVE};
#[cfg(feature = "operators")]
pub use ops::{
    FailedJob, NotRedriven, Operators, QueueStatus, RedriveInput, RedriveReport, RedriveRequest,
    RedriveRequestError, RedriveSelection, SkippedJob, DEFAULT_REDRIVE_LIMIT, MAX_REDRIVE,
};
#[cfg(feature = "operators")]
pub use seeding::DemoCartLine;

/// The BSON types the documents use, re-exported so callers need no direct `bson` dependency.
pub use mongodb::bson;
