//! The reward job's life on `checkoutjobs` (SPEC §6.1–6.2): every state change of a job, and
//! its purchase's `rewardsStatus` mirror, is written here.
//!
//! ```text
//!  enqueue (in the checkout's transaction; purchase: processing)
//!     │
//!     ▼            claim (token, lease, attempt + 1)
//!  pending ──────────────────────────────▶ processing ──complete (in the batch's transaction)──▶ completed
//!     ▲  ▲                                   │   │  │                         (purchase: completed)
//!     │  └── retry after a backoff ──────────┘   │  └── fail: permanent, or attempts spent ──▶ failed
//!     │  └── snooze after contention (no attempt)┘                         (purchase: failed)
//!     └──────────── re-drive by an operator (purchase: processing again) ◀────────────── failed
//! ```
//!
//! One vocabulary for a job's fate: the job's body (a batch's transaction, [`crate::rewards`])
//! reports each job's [`Attempt`] — done, retryable, fatal, contended, or lost — and
//! [`Queue::settle`], the one executor, turns it into the next state and says what it did, a
//! [`JobOutcome`] — completed, retried, failed, lost lease. Every report (a batch's, a drain's,
//! an unreadable job's) is made of those two words.
//!
//! Guarantees:
//! - **Atomic claims.** A claim takes jobs that are `pending` and due (`runAfter ≤ now`), or
//!   `processing` with an expired lease (their worker died), oldest first, and moves each to
//!   `processing` under a fresh `claimToken`, `leaseUntil = now + lease`, its attempt counted,
//!   with one conditional write, so no two workers ever hold one job. One job: one
//!   `findOneAndUpdate`; a batch: its candidates' ids, one conditional `updateMany` carrying one
//!   token, and a read-back of what carries it (SPEC 6.2).
//! - **The original system's jobs.** A `pending` job without `runAfter` is due at once; a
//!   `processing` job without a lease (the original's worker died) is claimable once its
//!   `startedAt` is older than the lease. Their payload is read in points like ours.
//! - **Unreadable jobs never block the queue.** The claim takes the document as it is, without
//!   parsing it; one that is not a job we can read is then marked `failed` under the claim's
//!   fence, with an error naming what is wrong — never left `processing`, never stopping a drain.
//! - **Fencing.** Every later write for a claimed job — complete, retry, fail — holds only while
//!   `{_id, claimToken, status: "processing"}` does (in its filter, or, inside a batch's
//!   transaction, in the snapshot it read). A worker that lost its lease (and whose job was
//!   claimed again) cannot complete, retry or fail a job someone else now owns.
//! - **Retries.** A retryable failure puts the job back to `pending` after a jittered
//!   exponential backoff; after `maxAttempts` claims, or on a permanent error, it is `failed`
//!   (dead), and so is its purchase's `rewardsStatus` — never a purchase already paid. Each
//!   attempt's error is kept (the last 20). Contention is not an error: a snoozed job spends no
//!   attempt.
//! - **Retention.** A completed job carries `expiresAt`; a TTL index removes it afterwards, so
//!   the claim query does not grow slower with history.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use mall_domain::{RetryDecision, RetryPolicy, RewardPolicy, RewardSplit};
use mongodb::bson::{doc, oid::ObjectId, DateTime, Document};
use mongodb::options::ReturnDocument;

use crate::collections;
use crate::documents::{
    CheckoutJobDoc, JobErrorDoc, JobErrorKind, JobPayloadDoc, JobStatus, PurchaseDoc,
    RewardsStatus, TransactionType,
};
use crate::error::StoreError;
use crate::store::Store;
use crate::transaction::{DriverError, TransactionRetry};

/// How many attempt errors a job keeps.
pub const KEPT_ERRORS: i32 = 20;

/// How the queue treats jobs: lease length, retries, retention of completed jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueSettings {
    /// How long a claim lasts before another worker may take the job over (`JOB_LEASE_SECONDS`).
    pub lease: Duration,
    pub retry: RetryPolicy,
    /// How long a completed job is kept (`JOB_RETENTION_DAYS`); `None`: kept for good (the
    /// app's jobs dashboard shows a customer's history).
    pub retention: Option<Duration>,
    /// Jobs may pay level gifts (`REWARD_LEVEL_GIFTS`, default on): the app never paid them.
    pub level_gifts_allowed: bool,
    /// How long a batch's transaction may take to load and plan before it is cut in halves
    /// (5 s, and never more than a tenth of the lease): well inside mongod's 60 s transaction
    /// lifetime and the lease, whatever the data.
    pub batch_time_budget: Duration,
}

impl QueueSettings {
    /// The one statement of the queue's defaults: the environment table's `JOB_LEASE_SECONDS`,
    /// `JOB_MAX_ATTEMPTS`, `JOB_BACKOFF_BASE_SECONDS`, `JOB_RETENTION_DAYS` and
    /// `REWARD_LEVEL_GIFTS` take theirs from here.
    pub const DEFAULT: QueueSettings = QueueSettings {
        lease: Duration::from_secs(300),
        retry: RetryPolicy::DEFAULT,
        retention: None,
        level_gifts_allowed: true,
        batch_time_budget: Duration::from_secs(5),
    };
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What a claim took: a job to process, or a document that is not a job we can read.
#[derive(Clone, Debug, PartialEq)]
pub enum Claim {
    Job(Box<ClaimedJob>),
    Unreadable(UnreadableJob),
}

impl Claim {
    /// The job, when it could be read.
    pub fn readable(self) -> Option<ClaimedJob> {
        match self {
            Claim::Job(job) => Some(*job),
            Claim::Unreadable(_) => None,
        }
    }
}

/// A claimed document that does not read as a job: failed by [`Queue::fail_unreadable`].
#[derive(Clone, Debug, PartialEq)]
pub struct UnreadableJob {
    pub id: mongodb::bson::Bson,
    pub token: ObjectId,
    /// Its purchase, when that much could be read.
    pub purchase: Option<ObjectId>,
    pub problem: String,
}

/// A job this worker holds: the document as the claim left it, and the claim's token.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimedJob {
    pub job: CheckoutJobDoc,
    pub token: ObjectId,
}

impl ClaimedJob {
    /// The attempt this claim is (1 for the first): our own claims, whatever another worker
    /// (the app's) counted in `attempts`.
    pub fn attempt(&self) -> i32 {
        self.job.claims.unwrap_or(self.job.attempts)
    }

    /// Another worker claimed this job since we enqueued it: `attempts` counts more claims than
    /// ours. (Only for jobs we enqueued: the app's own jobs carry its worker's attempts.)
    pub fn touched_by_another_worker(&self) -> bool {
        self.job.payload.policy.is_some()
            && self
                .job
                .claims
                .is_some_and(|claims| self.job.attempts > claims)
    }

    /// The filter every write of this claim is fenced by.
    pub fn fence(&self) -> Document {
        doc! {"_id": self.job.id, "claimToken": self.token, "status": JobStatus::Processing}
    }
}

/// What the queue did with one claimed job: the one word for a job's fate, in every report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobOutcome {
    Completed,
    /// Failed this time, or snoozed after contention; back to `pending`, due at `run_after`.
    Retried {
        run_after: DateTime,
    },
    /// Dead (`failed`): out of attempts, or a permanent error.
    Failed,
    /// The claim was taken over by another worker: this worker wrote nothing.
    LostLease,
    /// This worker "died" mid-job (a test failpoint; never in a function's build): it wrote
    /// nothing and left the job to be claimed again after its lease.
    Abandoned,
}

/// What one attempt at a claimed job came to, as the job's body reports it (a failure is one
/// of these too: `Retryable` or `Fatal`). [`Queue::settle`] turns it into a [`JobOutcome`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// Applied, and completed in the same committed transaction.
    Done,
    /// Failed; a later attempt may succeed (back to `pending` after a backoff, or dead when
    /// the job is out of attempts).
    Retryable(String),
    /// Failed for good: dead at once, with its purchase.
    Fatal(String),
    /// Kept conflicting with other writers of its customers: snoozed briefly, no attempt spent.
    Contended,
    /// Another worker holds it now: nothing is written.
    Lost,
    /// A test's simulated crash (never in a function's build): nothing is written; the lease
    /// will expire.
    Died,
}

/// The original worker resets a `processing` job after 5 minutes: one it holds is abandoned
/// only after that, or after our lease if longer.
pub const ORIGINAL_STALE_AFTER: Duration = Duration::from_secs(300);

/// Before this time, an original job's `startedAt` (or `updatedAt`) means its worker gave it up.
pub fn original_worker_gone_before(now: DateTime, lease: Duration) -> DateTime {
    let wait = lease.max(ORIGINAL_STALE_AFTER);
    DateTime::from_millis(
        now.timestamp_millis()
            .saturating_sub(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX)),
    )
}

pub(crate) fn add(now: DateTime, duration: Duration) -> DateTime {
    let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
    DateTime::from_millis(now.timestamp_millis().saturating_add(millis))
}

impl Queue<'_> {
    /// Records a failed attempt under the claim's fence: back to `pending` after a backoff, or
    /// `failed` (with its purchase) when the error is permanent or the job's `maxAttempts` are
    /// spent. `retry` gives the backoff; its `max_attempts` is replaced by the job's own.
    async fn record_failure(
        self,
        claimed: &ClaimedJob,
        kind: JobErrorKind,
        message: &str,
        now: DateTime,
        retry: &RetryPolicy,
    ) -> Result<JobOutcome, StoreError> {
        let error = JobErrorDoc {
            attempt: claimed.attempt(),
            at: now,
            kind,
            message: message.to_owned(),
        };
        let error =
            mongodb::bson::to_bson(&error).map_err(|e| StoreError::Unreadable(e.to_string()))?;
        let keep_error = doc! {"errors": {"$each": [error], "$slice": -KEPT_ERRORS}};
        let attempts = u32::try_from(claimed.attempt()).unwrap_or(0);
        // The job's own limit, fixed when it was enqueued, decides when it is dead.
        let retry = RetryPolicy {
            max_attempts: u32::try_from(claimed.job.max_attempts).unwrap_or(0),
            ..*retry
        };
        let decision = match kind {
            JobErrorKind::Permanent => RetryDecision::Dead,
            JobErrorKind::Retryable => retry.after_failure(attempts, random_permille()),
        };
        match decision {
            RetryDecision::RetryAfter(delay) => {
                let last_error = doc! {"message": message, "lastAttemptAt": now};
                self.back_to_pending(
                    claimed,
                    add(now, delay),
                    doc! {"$push": keep_error, "$set": {"error": last_error, "processedAt": now}},
                )
                .await
            }
            RetryDecision::Dead => {
                self.mark_dead(
                    claimed.fence(),
                    Some(claimed.job.checkout_transaction_id),
                    keep_error,
                    message,
                    now,
                )
                .await
            }
        }
    }

    /// Gives the job back without spending an attempt: its transaction kept conflicting with
    /// other writers of the same customers, which is contention, not an error of the job. It is
    /// due again after a short jittered pause (fenced like every write of a claim).
    async fn release_contended(
        self,
        claimed: &ClaimedJob,
        now: DateTime,
    ) -> Result<JobOutcome, StoreError> {
        let pause = Duration::from_millis(250 + u64::from(random_permille()) * 2);
        self.back_to_pending(
            claimed,
            add(now, pause),
            doc! {"$inc": {"attempts": -1, "claims": -1}, "$set": {}},
        )
        .await
    }

    /// The claim ends and the job is `pending` again, due at `run_after`, with `extra` update
    /// operators; fenced by the claim.
    async fn back_to_pending(
        self,
        claimed: &ClaimedJob,
        run_after: DateTime,
        mut update: Document,
    ) -> Result<JobOutcome, StoreError> {
        let mut set = update.get_document("$set").cloned().unwrap_or_default();
        set.insert("status", JobStatus::Pending);
        set.insert("runAfter", run_after);
        set.insert("updatedAt", DateTime::now());
        update.insert("$set", set);
        update.insert("$unset", doc! {"claimToken": "", "leaseUntil": ""});
        let updated = self
            .store
            .checkout_jobs()
            .update_one(claimed.fence(), update)
            .await?;
        Ok(if updated.matched_count == 1 {
            JobOutcome::Retried { run_after }
        } else {
            JobOutcome::LostLease
        })
    }

    /// `failed` for the job (matched by `fence`) and its purchase, together (one small
    /// transaction).
    async fn mark_dead(
        self,
        fence: Document,
        purchase: Option<ObjectId>,
        keep_error: Document,
        message: &str,
        now: DateTime,
    ) -> Result<JobOutcome, StoreError> {
        let mut update = doc! {
            "$set": {"status": JobStatus::Failed, "failedAt": now, "processedAt": now, "updatedAt": now,
                     "error": {"message": message, "lastAttemptAt": now}},
            "$unset": {"claimToken": "", "leaseUntil": ""},
        };
        if !keep_error.is_empty() {
            update.insert("$push", keep_error);
        }
        let dead = self
            .store
            .in_transaction(
                &TransactionRetry::default().snapshotless(),
                &mut (self, &fence, &update, purchase, now),
                |session, (queue, fence, update, purchase, now)| {
                    Box::pin(queue.dead_in(session, fence, update, *purchase, *now))
                },
            )
            .await?
            .value;
        Ok(if dead {
            JobOutcome::Failed
        } else {
            JobOutcome::LostLease
        })
    }

    /// The writes of [`Queue::mark_dead`]; `false` when the fence no longer holds.
    async fn dead_in(
        self,
        session: &mut mongodb::ClientSession,
        fence: &Document,
        update: &Document,
        purchase: Option<ObjectId>,
        now: DateTime,
    ) -> Result<bool, DriverError> {
        let job = self
            .store
            .checkout_jobs()
            .update_one(fence.clone(), update.clone())
            .session(&mut *session)
            .await?;
        if job.matched_count == 0 {
            return Ok(false);
        }
        let Some(purchase) = purchase else {
            return Ok(true);
        };
        self.mirror_on_unpaid_purchase(session, purchase, JobStatus::Failed, now)
            .await?;
        Ok(true)
    }

    /// Its job's new `status` on a purchase whose rewards were not paid (in the job's
    /// transaction): a paid purchase stays as it is.
    async fn mirror_on_unpaid_purchase(
        self,
        session: &mut mongodb::ClientSession,
        purchase: ObjectId,
        status: JobStatus,
        now: DateTime,
    ) -> Result<(), DriverError> {
        self.store
            .database()
            .collection::<Document>(collections::TRANSACTIONS)
            .update_one(
                unpaid_purchase(purchase),
                doc! {"$set": purchase_mirror(status, now)},
            )
            .session(&mut *session)
            .await?;
        Ok(())
    }

    /// Re-drive: a `failed` job back to `pending`, due now with its attempts reset and the
    /// operator's reason kept, and its unpaid purchase to `processing` (in the re-drive's
    /// transaction). `false` when the job was not `failed`.
    #[cfg(feature = "operators")]
    pub(crate) async fn redrive_in(
        self,
        session: &mut mongodb::ClientSession,
        id: ObjectId,
        entry: &mongodb::bson::Bson,
        now: DateTime,
    ) -> Result<bool, DriverError> {
        let job = self
            .store
            .checkout_jobs()
            .find_one_and_update(
                doc! {"_id": id, "status": JobStatus::Failed},
                doc! {
                    "$set": {"status": JobStatus::Pending, "attempts": 0, "claims": 0, "runAfter": now},
                    "$unset": {"claimToken": "", "leaseUntil": "", "failedAt": "", "startedAt": ""},
                    "$push": {"redrives": entry.clone()},
                },
            )
            .session(&mut *session)
            .await?;
        let Some(job) = job else {
            return Ok(false);
        };
        // A purchase that was paid stays as it is: the worker then completes the job without
        // paying again.
        self.mirror_on_unpaid_purchase(
            session,
            job.checkout_transaction_id,
            JobStatus::Pending,
            now,
        )
        .await?;
        Ok(true)
    }
}

/// What a job of the current economy is paid by, fixed at its checkout.
#[derive(Clone, Debug)]
pub(crate) struct CurrentTerms {
    pub settings: mall_domain::AppSettings,
    pub first_purchase: bool,
}

/// Enqueue: the job of a purchase being recorded (inserted in the checkout's transaction, with
/// the purchase's `rewardsStatus: processing`), due now, with the policy its reward was split by
/// and, in the current economy, the settings and first-purchase decision it pays by.
pub(crate) fn enqueued(
    purchase: &PurchaseDoc,
    split: RewardSplit,
    policy: &RewardPolicy,
    current: Option<&CurrentTerms>,
    max_attempts: i32,
    now: DateTime,
) -> Result<CheckoutJobDoc, StoreError> {
    Ok(CheckoutJobDoc {
        id: purchase.job_id,
        checkout_transaction_id: purchase.id,
        customer_id: purchase.customer_id,
        status: JobStatus::Pending,
        attempts: 0,
        claims: Some(0),
        claimed_at: None,
        max_attempts,
        run_after: Some(now),
        lease_until: None,
        claim_token: None,
        payload: JobPayloadDoc {
            reward_points: purchase.reward_points_earned,
            app_points_share: split.app,
            gifts_points_share: split.gifts,
            tree_points_share: split.tree,
            direct_referral_share: Some(split.referral),
            policy: Some(policy.to_overrides()),
            economy: current.map(|_| crate::documents::ECONOMY_CURRENT.to_owned()),
            first_purchase: current.map(|c| c.first_purchase),
            settings: current
                .map(|c| crate::settings::settings_document(&c.settings))
                .transpose()?,
        },
        error: None,
        errors: vec![],
        redrives: vec![],
        created_at: now,
        updated_at: Some(now),
        started_at: None,
        completed_at: None,
        processed_at: None,
        failed_at: None,
        expires_at: None,
    })
}

/// Complete: the update that ends a job's claim as `completed` (in the transaction that paid
/// it, with its purchase's `rewardsStatus: completed`), kept for `retention` (for good: none).
pub(crate) fn completion(now: DateTime, retention: Option<Duration>) -> Document {
    let mut set = doc! {"status": JobStatus::Completed, "completedAt": now, "processedAt": now,
    "updatedAt": now};
    if let Some(retention) = retention {
        set.insert("expiresAt", add(now, retention));
    }
    doc! {"$set": set, "$unset": {"claimToken": "", "leaseUntil": ""}}
}

/// A purchase whose rewards were not paid: the only one a job may mark `failed` or a re-drive
/// reopen (a job completed before and put back by hand leaves its paid purchase as it is).
fn unpaid_purchase(purchase: ObjectId) -> Document {
    doc! {"_id": purchase, "type": TransactionType::Purchase,
    "rewardsStatus": {"$ne": RewardsStatus::Completed},
    "rewardLog": {"$exists": false}, "treeDistribution.0": {"$exists": false}}
}

/// Rounds of a batch claim whose candidates were all stamped by other workers first.
const CLAIM_ROUNDS: usize = 4;

/// What a worker may claim now: due `pending` jobs and `processing` jobs whose worker is gone.
pub(crate) fn claimable(now: DateTime, lease: Duration) -> Document {
    let stale_start = original_worker_gone_before(now, lease);
    doc! {"$or": [
        {"status": JobStatus::Pending, "runAfter": {"$lte": now}},
        // The original system's jobs: due at once, and reclaimable once its worker has
        // surely given them up (started, or if it never said, last touched, long enough ago).
        {"status": JobStatus::Pending, "runAfter": {"$exists": false}},
        {"status": JobStatus::Processing, "leaseUntil": {"$lt": now}},
        {"status": JobStatus::Processing, "leaseUntil": {"$exists": false},
         "startedAt": {"$lt": stale_start}},
        {"status": JobStatus::Processing, "leaseUntil": {"$exists": false},
         "startedAt": {"$exists": false}, "updatedAt": {"$lt": stale_start}},
    ]}
}

/// Oldest first.
fn claim_order() -> Document {
    doc! {"runAfter": 1, "_id": 1}
}

/// The claim: `processing` under a fresh token and lease, one more attempt.
fn claim_update(token: ObjectId, now: DateTime, lease: Duration) -> Document {
    doc! {
        "$set": {
            "status": JobStatus::Processing,
            "claimToken": token,
            "leaseUntil": add(now, lease),
            "startedAt": now,
            "claimedAt": now,
            "updatedAt": now,
        },
        "$inc": {"attempts": 1, "claims": 1},
    }
}

/// A claimed document, read now that it is ours.
fn read_claim(raw: Document, token: ObjectId) -> Claim {
    match crate::documents::read_document::<CheckoutJobDoc>(raw.clone()) {
        Ok(job) => Claim::Job(Box::new(ClaimedJob { job, token })),
        Err(err) => Claim::Unreadable(UnreadableJob {
            id: raw.get("_id").cloned().unwrap_or(mongodb::bson::Bson::Null),
            token,
            purchase: raw.get_object_id("checkoutTransactionId").ok(),
            problem: format!("the job document cannot be read: {err}"),
        }),
    }
}

/// The purchase's side of its job's new `status`, for a `$set`: its `rewardsStatus` mirrors
/// the job's ([`RewardsStatus::mirroring`]). Every write of the mirror after the purchase's
/// insert — completion, death, re-drive — takes it from here.
pub(crate) fn purchase_mirror(job: JobStatus, now: DateTime) -> Document {
    doc! {"rewardsStatus": RewardsStatus::mirroring(job), "updatedAt": now}
}

/// A random number in 0..=1000 for backoff jitter.
fn random_permille() -> u32 {
    u32::try_from(RandomState::new().build_hasher().finish() % 1001).unwrap_or(1000)
}

/// The reward queue's operations: claims, settling an attempt, failures, the drainer lease, depth and foreign activity.
#[derive(Clone, Copy, Debug)]
pub struct Queue<'a> {
    pub(crate) store: &'a Store,
}

impl Queue<'_> {
    /// The one executor of an attempt's outcome: nothing more to write for a job done (its
    /// completion committed with its payouts) or lost; a snooze for a contended one; a retry
    /// or death, fenced by the claim, for a failed one.
    pub async fn settle(
        self,
        claimed: &ClaimedJob,
        attempt: Attempt,
        now: DateTime,
        settings: &QueueSettings,
    ) -> Result<JobOutcome, StoreError> {
        let (kind, message) = match attempt {
            Attempt::Done => return Ok(JobOutcome::Completed),
            Attempt::Lost => return Ok(JobOutcome::LostLease),
            Attempt::Died => return Ok(JobOutcome::Abandoned),
            Attempt::Contended => {
                tracing::info!(job_id = %claimed.job.id, "reward job snoozed: its customers are busy");
                return self.release_contended(claimed, now).await;
            }
            Attempt::Retryable(message) => (JobErrorKind::Retryable, message),
            Attempt::Fatal(message) => (JobErrorKind::Permanent, message),
        };
        tracing::warn!(
            job_id = %claimed.job.id,
            attempt = claimed.attempt(),
            ?kind,
            error = %message,
            "reward job attempt failed"
        );
        self.record_failure(claimed, kind, &message, now, &settings.retry)
            .await
    }

    /// Claims the oldest claimable job, if any (one command). The document is read only after
    /// it is ours: one we cannot read comes back as [`Claim::Unreadable`].
    pub async fn claim_next(
        self,
        now: DateTime,
        lease: Duration,
    ) -> Result<Option<Claim>, StoreError> {
        let token = ObjectId::new();
        let claimed = self
            .store
            .database()
            .collection::<Document>(collections::CHECKOUT_JOBS)
            .find_one_and_update(claimable(now, lease), claim_update(token, now, lease))
            .sort(claim_order())
            .return_document(ReturnDocument::After)
            .await?;
        Ok(claimed.map(|raw| read_claim(raw, token)))
    }

    /// Claims up to `max` of the oldest claimable jobs under one claim token, in three commands
    /// (SPEC 6.2): pick the candidates' ids, stamp those still claimable with one conditional
    /// `updateMany`, read back what carries the token. Each job is claimed exactly as by
    /// [`Queue::claim_next`] (its attempt counted, its own lease, fenced by the token); a
    /// candidate another worker stamped first is simply not ours. Oldest first.
    pub async fn claim_batch(
        self,
        now: DateTime,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<Claim>, StoreError> {
        use futures_util::TryStreamExt;
        if max <= 1 {
            return Ok(self.claim_next(now, lease).await?.into_iter().collect());
        }
        let jobs = self
            .store
            .database()
            .collection::<Document>(collections::CHECKOUT_JOBS);
        // Concurrent workers pick the same oldest candidates; the one that stamps them first has
        // them, the others pick again (a few times: each round, someone claimed something).
        for _ in 0..CLAIM_ROUNDS {
            let candidates: Vec<Document> = jobs
                .find(claimable(now, lease))
                .sort(claim_order())
                .limit(i64::try_from(max).unwrap_or(i64::MAX))
                .projection(doc! {"_id": 1})
                .await?
                .try_collect()
                .await?;
            if candidates.is_empty() {
                return Ok(vec![]);
            }
            let ids: Vec<mongodb::bson::Bson> = candidates
                .into_iter()
                .filter_map(|mut c| c.remove("_id"))
                .collect();
            let token = ObjectId::new();
            let mut still_claimable = claimable(now, lease);
            still_claimable.insert("_id", doc! {"$in": ids});
            let stamped = jobs
                .update_many(still_claimable, claim_update(token, now, lease))
                .await?;
            if stamped.modified_count == 0 {
                continue;
            }
            let claimed: Vec<Document> = jobs
                .find(doc! {"claimToken": token, "status": JobStatus::Processing})
                .sort(claim_order())
                .await?
                .try_collect()
                .await?;
            return Ok(claimed
                .into_iter()
                .map(|raw| read_claim(raw, token))
                .collect());
        }
        Ok(vec![])
    }

    /// Marks a claimed, unreadable document `failed` (with its purchase, when it names one),
    /// fenced by the claim like every write of a claim.
    pub async fn fail_unreadable(
        self,
        unreadable: &UnreadableJob,
        now: DateTime,
    ) -> Result<JobOutcome, StoreError> {
        tracing::error!(job_id = %unreadable.id, problem = %unreadable.problem,
                        "an unreadable reward job was failed");
        let fence = doc! {"_id": unreadable.id.clone(), "claimToken": unreadable.token,
        "status": JobStatus::Processing};
        // Only the app's `error` field: the document's own `errors` may not even be an array.
        self.mark_dead(
            fence,
            unreadable.purchase,
            doc! {},
            &unreadable.problem,
            now,
        )
        .await
    }

    /// Pending jobs and the age in seconds of the oldest, in one aggregation (for metrics).
    pub async fn queue_depth(self, now: DateTime) -> Result<(u64, Option<i64>), StoreError> {
        let pipeline = vec![
            doc! {"$match": {"status": JobStatus::Pending}},
            doc! {"$group": {"_id": mongodb::bson::Bson::Null, "n": {"$sum": 1},
            "oldest": {"$min": "$createdAt"}}},
        ];
        let found: Option<Document> = self
            .store
            .aggregate_first(collections::CHECKOUT_JOBS, pipeline)
            .await?;
        let Some(found) = found else {
            return Ok((0, None));
        };
        let pending = crate::documents::number(&found, "n").unwrap_or(0);
        let oldest = found
            .get_datetime("oldest")
            .ok()
            .map(|created| (now.timestamp_millis() - created.timestamp_millis()) / 1000);
        Ok((u64::try_from(pending).unwrap_or(0), oldest))
    }

    /// Jobs of ours that a worker that is not ours (the app's own) started within `window`
    /// (one count, bounded by the app's `status_1_createdAt_1` index to the last day's jobs): its
    /// claim sets `startedAt` without our `claimedAt`, whether it then parks the job or pays and
    /// completes it by its own rules. The worker reports it after every drain, so a forgotten
    /// app worker shows within minutes even when it completes our jobs before we claim them.
    pub async fn foreign_activity(
        self,
        now: DateTime,
        window: Duration,
    ) -> Result<u64, StoreError> {
        let back = |d: Duration| {
            DateTime::from_millis(
                now.timestamp_millis()
                    .saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            )
        };
        let filter = doc! {
            "status": {"$in": JobStatus::WORDS.to_vec()},
            "createdAt": {"$gte": back(Duration::from_secs(24 * 3600).max(window))},
            "startedAt": {"$gte": back(window)},
            "payload.policy": {"$exists": true},
            "$or": [
                {"claimedAt": {"$exists": false}},
                {"$expr": {"$ne": ["$claimedAt", "$startedAt"]}},
            ],
        };
        Ok(self.store.checkout_jobs().count_documents(filter).await?)
    }

    /// A job by id (for tools and tests).
    pub async fn job(self, id: ObjectId) -> Result<Option<CheckoutJobDoc>, StoreError> {
        Ok(self
            .store
            .checkout_jobs()
            .find_one(doc! {"_id": id})
            .await?)
    }
}
