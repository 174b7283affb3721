//! Test-only fault injection: named points inside store operations that a test can make fail, to
//! prove that a failure there leaves nothing behind.
//!
//! Without the `failpoints` cargo feature (every production build) [`Failpoints::check`] is an
//! empty inline function and no test can arm anything.

use mongodb::error::Error;

/// Where a store operation can be made to fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Failpoint {
    /// Checkout: after the wallet is charged and the purchase recorded, before the job insert.
    CheckoutBeforeJobInsert,
    /// Checkout: after every write, before the commit.
    CheckoutBeforeCommit,
    /// Any transaction: every commit ends with its outcome unknown (a stepdown, a time limit).
    CommitOutcomeUnknown,
    /// Reward job: the worker "dies" after loading the chain.
    JobAfterChainLoaded,
    /// Reward job: the worker "dies" after crediting wallets and promoting levels.
    JobAfterCredits,
    /// Reward job: the worker "dies" after inserting the reward entries.
    JobAfterEntries,
    /// Reward job: the worker "dies" after writing the purchase's log, before completing the job.
    JobBeforeCompletion,
    /// Reward job: the worker "dies" after every write, before the commit.
    JobBeforeCommit,
    /// Reward job: the attempt fails with an error that retrying can fix.
    JobRetryableFailure,
    /// The batch's load takes [`SLOW_LOAD_PER_JOB`] per job longer (a slow server, big data).
    JobSlowLoad,
}

/// What [`Failpoint::JobSlowLoad`] adds to a batch's load per job.
pub const SLOW_LOAD_PER_JOB: std::time::Duration = std::time::Duration::from_millis(40);

/// The error an armed failpoint raises.
#[cfg(feature = "failpoints")]
#[derive(Debug, thiserror::Error)]
#[error("failpoint {0:?} was hit")]
pub struct InjectedFailure(pub Failpoint);

#[cfg(feature = "failpoints")]
mod imp {
    use super::*;
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex, PoisonError};

    /// The armed failpoints of one store (and its clones).
    #[derive(Clone, Debug, Default)]
    pub struct Failpoints(Arc<Mutex<HashSet<Failpoint>>>);

    impl Failpoints {
        /// Makes `point` fail every time until disarmed.
        pub fn arm(&self, point: Failpoint) {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(point);
        }

        pub fn disarm(&self, point: Failpoint) {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&point);
        }

        pub(crate) fn is_armed(&self, point: Failpoint) -> bool {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&point)
        }

        pub(crate) fn check(&self, point: Failpoint) -> Result<(), Error> {
            if self.is_armed(point) {
                return Err(Error::custom(InjectedFailure(point)));
            }
            Ok(())
        }
    }
}

#[cfg(not(feature = "failpoints"))]
mod imp {
    use super::*;

    #[derive(Clone, Debug, Default)]
    pub struct Failpoints {
        _inert: (),
    }

    impl Failpoints {
        #[inline(always)]
        pub(crate) fn is_armed(&self, _point: Failpoint) -> bool {
            false
        }

        #[inline(always)]
        pub(crate) fn check(&self, _point: Failpoint) -> Result<(), Error> {
            Ok(())
        }
    }
}

pub use imp::Failpoints;
