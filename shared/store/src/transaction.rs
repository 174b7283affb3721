//! The one way the store runs a multi-document transaction: the checkout, a batch of reward
//! jobs, a dead job and its purchase, a re-drive.
//!
//! [`Store::in_transaction`] starts a transaction, runs the body, and commits. It guarantees:
//! - **Bounded retries.** A body or commit that meets another writer (a write conflict, a
//!   document gone from under it: whatever the caller's error calls a conflict) is
//!   aborted and run again after a jittered exponential backoff, at most `max_attempts` times and
//!   no longer than `max_elapsed`; then the last conflict is returned.
//! - **Nothing half-done.** Every attempt that does not commit is aborted.
//! - **Unknown commits are said so.** A commit whose outcome the driver cannot know (a lost
//!   connection, a primary stepping down) is retried (commits are idempotent) a few times after a
//!   pause, then reported as [`TransactionFailure::CommitUnknown`], never as a failure.
//! - **A driver that has not seen the server yet** (a client built while the database was
//!   unreachable refuses transactions until its next heartbeat) is made to look again with one
//!   ping, and the attempt is retried; an unreachable database ends the run at once.
//!
//! The body gets the session and a context of the caller's (the data it borrows), and returns a
//! boxed future: the shape that lets the body borrow both (as the driver's own `and_run` does).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use mongodb::bson::doc;
use mongodb::error::Error;
use mongodb::options::{ReadConcern, WriteConcern};
use mongodb::ClientSession;

use crate::error::is_topology_unknown;
use crate::failpoints::Failpoint;
use crate::store::Store;

/// How often a conflicting transaction is tried again, how long to wait in between, and for how
/// long at most.
#[derive(Clone, Copy, Debug)]
pub struct TransactionRetry {
    pub max_attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    pub commit_attempts: u32,
    /// No new attempt starts after this long.
    pub max_elapsed: Duration,
    /// Read at a snapshot (every read of the transaction sees one point in time), or with the
    /// driver's default read concern.
    pub snapshot: bool,
}

impl Default for TransactionRetry {
    /// For a request a client waits on: a few quick attempts.
    fn default() -> Self {
        TransactionRetry {
            max_attempts: 8,
            first_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(160),
            commit_attempts: 3,
            max_elapsed: Duration::from_secs(10),
            snapshot: true,
        }
    }
}

impl TransactionRetry {
    /// For background work, where waiting is cheap and giving up costs a whole retry cycle.
    pub fn background() -> Self {
        TransactionRetry {
            max_attempts: 12,
            first_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(500),
            commit_attempts: 3,
            max_elapsed: Duration::from_secs(60),
            snapshot: true,
        }
    }

    /// Reads with the driver's default read concern instead of a snapshot.
    pub fn snapshotless(self) -> Self {
        TransactionRetry {
            snapshot: false,
            ..self
        }
    }

    pub fn attempts(self, max_attempts: u32) -> Self {
        TransactionRetry {
            max_attempts,
            ..self
        }
    }

    /// Full jitter: a random wait in `[0, min(max, first × 2^(attempt-1))]`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .first_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_backoff);
        let random = RandomState::new().build_hasher().finish();
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(random % nanos.saturating_add(1))
    }
}

/// What a transaction body's error tells the runner.
pub(crate) trait TransactionError: From<Error> {
    /// Another writer got in the way: a new attempt may succeed.
    fn is_conflict(&self) -> bool;

    /// The attempt found its turn taken by another transaction: wait and try again, without
    /// counting it as an attempt (bounded by the policy's `max_elapsed`).
    fn waits(&self) -> bool {
        false
    }
}

/// The error of a body whose only errors are the driver's: a transient transaction error (a
/// write conflict) is a conflict.
#[derive(Debug)]
pub(crate) struct DriverError(pub Error);

impl From<Error> for DriverError {
    fn from(err: Error) -> Self {
        DriverError(err)
    }
}

impl TransactionError for DriverError {
    fn is_conflict(&self) -> bool {
        self.0
            .contains_label(mongodb::error::TRANSIENT_TRANSACTION_ERROR)
    }
}

impl From<TransactionFailure<DriverError>> for crate::error::StoreError {
    fn from(failure: TransactionFailure<DriverError>) -> Self {
        match failure {
            TransactionFailure::Stopped(DriverError(err)) => {
                crate::error::StoreError::Database(err)
            }
            TransactionFailure::Exhausted { attempts, .. } => {
                crate::error::StoreError::Database(Error::custom(format!(
                    "the transaction kept conflicting ({attempts} attempts)"
                )))
            }
            TransactionFailure::CommitUnknown(err) => crate::error::StoreError::Database(err),
        }
    }
}

/// How a transaction ended without committing (or not knowing whether it did).
#[derive(Debug)]
pub(crate) enum TransactionFailure<E> {
    /// The body (or the commit) failed in a way no new attempt fixes.
    Stopped(E),
    /// Every attempt conflicted, until attempts or time ran out; the last conflict (none when
    /// the driver never got to know the deployment).
    Exhausted { last: Option<E>, attempts: u32 },
    /// The commit's outcome stayed unknown: it may or may not have happened.
    CommitUnknown(Error),
}

/// A committed transaction's value, and the attempts it took.
pub(crate) struct Committed<T> {
    pub value: T,
    pub attempts: u32,
    /// Times the transaction waited for its turn.
    pub waits: u32,
}

impl Store {
    /// Runs `body` in a transaction until it commits, stops, or its retries run out (see the
    /// module's guarantees).
    pub(crate) async fn in_transaction<C, T, E, F>(
        &self,
        retry: &TransactionRetry,
        context: &mut C,
        mut body: F,
    ) -> Result<Committed<T>, TransactionFailure<E>>
    where
        E: TransactionError,
        F: for<'s> FnMut(&'s mut ClientSession, &'s mut C) -> BoxFuture<'s, Result<T, E>>,
    {
        let started = Instant::now();
        let mut session = self
            .client()
            .start_session()
            .await
            .map_err(|e| TransactionFailure::Stopped(E::from(e)))?;
        let mut last = None;
        let mut attempt = 0;
        let mut waits = 0;
        let mut waiting = false;
        while (waiting || attempt < retry.max_attempts)
            && (attempt == 0 || started.elapsed() < retry.max_elapsed)
        {
            if waiting {
                // Another transaction holds the turn: back off as from a conflict, growing
                // with the waits, but never spend an attempt on it.
                tokio::time::sleep(retry.backoff(waits.min(5))).await;
            } else {
                attempt += 1;
                if attempt > 1 {
                    tokio::time::sleep(retry.backoff(attempt - 1)).await;
                }
            }
            waiting = false;
            let mut options = session.start_transaction();
            if retry.snapshot {
                options = options.read_concern(ReadConcern::snapshot());
            }
            if let Err(err) = options.write_concern(WriteConcern::majority()).await {
                if !self.rediscover_after(&err).await {
                    return Err(TransactionFailure::Stopped(E::from(err)));
                }
                last = None;
                continue;
            }
            let outcome = match body(&mut session, context).await {
                Ok(value) => match self.commit(&mut session, retry).await {
                    Ok(()) => {
                        return Ok(Committed {
                            value,
                            attempts: attempt,
                            waits,
                        })
                    }
                    Err(CommitFailure::Unknown(err)) => {
                        return Err(TransactionFailure::CommitUnknown(err))
                    }
                    Err(CommitFailure::Failed(err)) => E::from(err),
                },
                Err(err) => {
                    // Nothing of this attempt may survive, whatever went wrong.
                    let _ = session.abort_transaction().await;
                    err
                }
            };
            if outcome.waits() {
                waits += 1;
                waiting = true;
                last = Some(outcome);
                continue;
            }
            if !outcome.is_conflict() {
                return Err(TransactionFailure::Stopped(outcome));
            }
            last = Some(outcome);
        }
        Err(TransactionFailure::Exhausted {
            last,
            attempts: attempt,
        })
    }

    /// Commits, retrying the commit itself (after a short pause) while its result is unknown.
    async fn commit(
        &self,
        session: &mut ClientSession,
        retry: &TransactionRetry,
    ) -> Result<(), CommitFailure> {
        let mut attempt = 1;
        loop {
            let committed = match self.failpoints().check(Failpoint::CommitOutcomeUnknown) {
                Ok(()) => session.commit_transaction().await,
                Err(injected) => Err(injected),
            };
            match committed {
                Ok(()) => return Ok(()),
                Err(err) if self.outcome_unknown(&err) => {
                    if attempt >= retry.commit_attempts {
                        return Err(CommitFailure::Unknown(err));
                    }
                    tokio::time::sleep(retry.backoff(attempt).max(Duration::from_millis(10))).await;
                    attempt += 1;
                }
                Err(err) => return Err(CommitFailure::Failed(err)),
            }
        }
    }

    /// Whether a commit error leaves its outcome unknown (the driver labels network errors, time
    /// limits and a primary stepping down so); an injected test failure stands for one.
    fn outcome_unknown(&self, err: &Error) -> bool {
        err.contains_label(mongodb::error::UNKNOWN_TRANSACTION_COMMIT_RESULT)
            || self.failpoints().is_armed(Failpoint::CommitOutcomeUnknown)
    }

    /// After the driver refused to start a transaction because it does not know the server yet
    /// (a client built while the database was unreachable marks the deployment "transactions
    /// unsupported" until its next heartbeat), one ping makes it look again. `true` when that
    /// was the error and the server answered, so a new attempt makes sense.
    async fn rediscover_after(&self, err: &Error) -> bool {
        if !is_topology_unknown(err) {
            return false;
        }
        // Still unreachable: stop now rather than wait out another attempt.
        self.database().run_command(doc! {"ping": 1}).await.is_ok()
    }
}

enum CommitFailure {
    Unknown(Error),
    Failed(Error),
}
