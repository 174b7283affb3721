//! One drainer at a time: a lease on one document ([`DRAINER_ID`] in
//! [`collections::REWARD_TURNS`]) that a worker invocation takes before it drains and gives
//! back when it is done.
//!
//! Reward batches all take one turn (see [`crate::rewards`]), so two drains at once never run
//! two batches' transactions at once: the second only waits, polls the turn and loads chains the
//! first has just written. Measured by `make bench` (2026-12-05): three workers drained at
//! 0.44–0.69× the rate of one before the lease, 0.90–1.07× with it (three runs): an invocation that finds
//! another draining returns at once (one command) and leaves the queue to it. The worker's
//! `drainer` module is the loop that holds it.
//!
//! What it guarantees, and what it does not:
//! - It is advisory. Exactly-once and the turn do not depend on it: a drainer whose lease ran out
//!   while it still works (a stalled process) only shares the queue again, as before.
//! - No wake-up is lost: a drainer gives the lease back and only then looks for due jobs once
//!   more ([`Queue::any_claimable`](crate::queue::Queue::any_claimable)); a job whose wake-up found the lease held was committed
//!   before that look, so the drainer sees it and drains again.
//! - A drainer that dies holds the lease until it expires: its holder renews it for at most
//!   [`DRAINER_LEASE`] at a time, never past its invocation's deadline.

use std::time::Duration;

use mongodb::bson::{doc, DateTime, Document};

use crate::collections;
use crate::error::StoreError;
use crate::queue::add;
use crate::queue::Queue;

/// The drainer lease's document in [`collections::REWARD_TURNS`].
pub const DRAINER_ID: &str = "drainer";

/// The longest a drainer holds the lease without renewing it.
pub const DRAINER_LEASE: Duration = Duration::from_secs(60);

/// When a lease taken at `now` should end: [`DRAINER_LEASE`] from now, or the invocation's
/// deadline if that comes first.
fn lease_end(now: DateTime, left_before_deadline: Option<Duration>) -> DateTime {
    add(
        now,
        left_before_deadline.map_or(DRAINER_LEASE, |left| left.min(DRAINER_LEASE)),
    )
}

impl Queue<'_> {
    /// Takes the drainer lease for `holder`, or renews it if `holder` has it: for
    /// [`DRAINER_LEASE`], or until the invocation's deadline (`left_before_deadline` from now)
    /// if that comes first. `false` when another holder's lease runs past `now`.
    pub async fn take_drainer_lease(
        self,
        holder: &str,
        now: DateTime,
        left_before_deadline: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let until = lease_end(now, left_before_deadline);
        let taken = self
            .store
            .reward_turns()
            .update_one(
                doc! {"_id": DRAINER_ID,
                "$or": [{"holder": holder}, {"until": {"$lte": now}}]},
                doc! {"$set": {"holder": holder, "until": until, "renewedAt": now}},
            )
            .upsert(true)
            .await;
        match taken {
            Ok(_) => Ok(true),
            // The document is there and another holder's lease runs: the upsert's insert of
            // the same `_id` is refused.
            Err(err) if crate::error::is_duplicate_key(&err) => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    /// Gives the drainer lease back, if `holder` still has it.
    pub async fn release_drainer_lease(
        self,
        holder: &str,
        now: DateTime,
    ) -> Result<(), StoreError> {
        self.store
            .reward_turns()
            .update_one(
                doc! {"_id": DRAINER_ID, "holder": holder},
                doc! {"$set": {"until": now}},
            )
            .await?;
        Ok(())
    }

    /// Whether any job is claimable now (one indexed `find` of at most one id).
    pub async fn any_claimable(self, now: DateTime, lease: Duration) -> Result<bool, StoreError> {
        let found = self
            .store
            .database()
            .collection::<Document>(collections::CHECKOUT_JOBS)
            .find_one(crate::queue::claimable(now, lease))
            .projection(doc! {"_id": 1})
            .await?;
        Ok(found.is_some())
    }
}
