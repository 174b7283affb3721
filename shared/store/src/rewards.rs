//! Processing claimed reward jobs (SPEC §6.3), many in one transaction.
//!
//! A batch of claimed jobs is applied in one snapshot transaction of at most seven commands and a
//! commit, whatever its size and the depth of its chains:
//!
//! 0. before the transaction, the buyers' chains are learned by `_id` probes where this
//!    environment does not know them yet ([`crate::chains`]; a warm environment knows them and
//!    sends nothing); then the transaction's first write takes the batches' turn (one small
//!    document, [`BATCH_TURN_ID`]): a batch beside another stops there, before any load, and
//!    waits for the other's commit instead of loading, planning and then losing on the
//!    ancestors both credit;
//! 1. one aggregation loads every buyer's chain at once (every member by `_id`, so an ancestor
//!    shared by many chains is read once, then confirmed against the parents the snapshot holds:
//!    a member the links missed is read in the same snapshot), the levels of every loaded
//!    customer's directs, the state of every job's purchase and of the gifts pool, and — for jobs
//!    the app's own checkout queued — the admin's settings and the buyers' earlier purchases;
//! 2. the pure rules plan the jobs one by one in claim order on a [`ForestView`], each job
//!    seeing the promotions of the jobs before it — the result of processing them one at a time
//!    in that order — and the gifts pool as the jobs before it left it;
//! 3. every customer's credits and promotions are merged into one write each (one `update`
//!    command for all), every reward entry goes into one `insert`, every purchase's log into one
//!    `update`, the gifts pool's balance into one `update` (when the batch moved it), and every
//!    job's fenced completion into one `update`; then commit.
//!
//! The gifts pool (the app's: Σ `gifts_reward` − Σ `signup_gifts_reward` − Σ
//! `level_gift_reward`) is kept in one document of ours, built from the ledger by the first batch
//! whose jobs may spend it and written by every batch that moves it: two batches that move it
//! conflict, so no concurrency can overdraw it, and its cost per batch does not grow with the
//! ledger.
//!
//! Wallets are points as the app stores them (Int32 or Double). A credit is never a server-side
//! `$inc` of a Double: each recipient's new balance is computed exactly from the balance read in
//! this transaction's snapshot plus all its credits in the batch, and written by `_id`: a write
//! to that wallet by anyone since the snapshot makes the write conflict, and the batch is run
//! again on fresh reads (every write of a batch is by `_id` alone: a primary-key probe on any
//! server, fenced by what the snapshot read). Entries, the purchase's `treeDistribution` and its pools have the app's shapes.
//!
//! Promotions are serializable across concurrent batches: a batch that promotes a customer also
//! writes that customer's parent, whose promotion depends on it, so two batches promoting
//! siblings conflict and one of them re-reads the other's promotion.
//!
//! Exactly once: the payouts and the jobs' completions commit together, and each completion is
//! fenced by its claim, so a worker that lost a lease writes nothing for that job; a purchase
//! already paid (a completed job put back to `pending` by hand) is recognised in the load and its
//! job completes without paying. If a worker dies before the commit nothing happened, and its
//! jobs are claimed again after their lease.
//!
//! One bad job never holds the others: a job that cannot be planned (a missing buyer or
//! purchase, a cycle, an unreadable wallet) leaves the batch and fails alone; a batch whose
//! transaction keeps conflicting, or that the server refuses, is split in halves, down to single
//! jobs, before any job is released or failed.
//!
//! A transaction is bounded in time: a batch whose load and plan run past
//! [`QueueSettings::batch_time_budget`] (5 s by default, far inside mongod's 60 s transaction
//! lifetime and the lease) is aborted and cut in halves, and the drain claims less next time.

use std::collections::{HashMap, HashSet};

use mall_domain::{
    BatchPlanError, ChainEnd, ChainError, DirectKind, ForestView, GiftKind, JobTerms, Level,
    LevelCounts, MilliPoints, PayoutKind, RewardPlan, ViewMember,
};
use mongodb::bson::{doc, oid::ObjectId, Bson, DateTime, Document};
use mongodb::error::{Error, ErrorKind};
use mongodb::ClientSession;
use serde::Deserialize;

use crate::documents::{
    reference_of, CheckoutJobDoc, JobEra, Pool, RewardEntryDoc, RewardsStatus, RunTimeFacts,
    TransactionType, TreeDistributionDoc, TreeDistributionEntryDoc, CURRENCY, ENTRY_COMPLETED,
    REFERRAL_ACTIVE, SYSTEM_USER_EMAIL, SYSTEM_USER_NAME,
};
use crate::error::StoreError;
use crate::failpoints::Failpoint;
use crate::queue::{add, rewards_status, Attempt, ClaimedJob, QueueSettings};
use crate::collections;
use crate::transaction::{TransactionError, TransactionFailure, TransactionRetry};
use crate::Store;

/// The most ancestors a buyer's chain may have; a longer one fails its job rather than paying a
/// chain cut short.
pub const MAX_ANCESTORS: i64 = 10_000;

/// Transaction attempts of a batch of several jobs before it is split in halves.
const BATCH_ATTEMPTS_BEFORE_SPLIT: u32 = 4;

/// The document of [`collections::REWARD_TURNS`] every batch writes first: batches take turns.
pub const BATCH_TURN_ID: &str = "rewards";

pub use crate::queue::JobOutcome;

/// What became of a batch: each job's outcome (in the order given), and how hard it was.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub outcomes: Vec<JobOutcome>,
    /// Transaction attempts lost to a write conflict or a wallet changed under the batch.
    pub conflicts: usize,
    /// Times a group of jobs was split in halves.
    pub splits: usize,
    /// Of those, times a group's load and plan ran past the time budget.
    pub cuts: usize,
    /// Times a transaction waited for its turn while another batch held it.
    pub waits: usize,
    /// The longest load, plan and write of an attempt (its transaction, before the commit).
    pub longest_transaction: std::time::Duration,
}

/// How one attempt of a batch's transaction failed.
#[derive(Debug)]
enum BatchError {
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

/// A customer as the chain query returns it; lenient about legacy documents.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChainNode {
    #[serde(rename = "_id")]
    id: ObjectId,
    /// The wallet exactly as stored.
    #[serde(default)]
    points: Bson,
    #[serde(default)]
    username: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    parent_customer: Option<ObjectId>,
    #[serde(default)]
    level_letter: Option<String>,
    #[serde(default)]
    referral_status: Option<String>,
    #[serde(default)]
    is_verified: Option<bool>,
}

/// What the batch's load returns: every customer on the buyers' chains, and the purchases.
#[derive(Deserialize)]
struct LoadedDoc {
    #[serde(default)]
    forest: Vec<ChainNode>,
    #[serde(default)]
    purchases: Vec<PurchaseRecord>,
    /// The batch's jobs as this transaction's snapshot has them: the fence of every write.
    #[serde(default)]
    jobs: Vec<JobFence>,
    /// How many directs each loaded customer has at each letter.
    #[serde(default)]
    counts: Vec<DirectCount>,
    /// The gifts pool's document, once some batch built it.
    #[serde(default)]
    pool: Vec<Document>,
    /// The admin's settings (only when the batch holds jobs of the app's own current checkout).
    #[serde(default)]
    settings: Vec<Document>,
    /// Completed purchases per buyer of those jobs (`{_id: buyer, n, first}`).
    #[serde(default, rename = "buyerPurchases")]
    buyer_purchases: Vec<BuyerPurchases>,
}

/// How many completed purchases a buyer has, and its oldest.
#[derive(Deserialize)]
struct BuyerPurchases {
    #[serde(rename = "_id")]
    buyer: ObjectId,
    #[serde(default)]
    n: i64,
    #[serde(default)]
    first: Option<ObjectId>,
}

/// The gifts pool's document: its balance in points.
pub const GIFTS_POOL_ID: &str = "gifts";

/// The ledger types of the app's gifts pool formula: income, then the two spends.
pub const GIFTS_POOL_TYPES: [TransactionType; 3] = [
    TransactionType::GiftsReward,
    TransactionType::SignupGiftsReward,
    TransactionType::LevelGiftReward,
];

/// Who holds a job, as the snapshot has it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobFence {
    #[serde(rename = "_id")]
    id: ObjectId,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    claim_token: Option<ObjectId>,
}

/// What a purchase says about its rewards.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PurchaseRecord {
    #[serde(rename = "_id")]
    id: ObjectId,
    /// `purchase`; an id of any other transaction is no purchase.
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    rewards_status: Option<String>,
    /// Lines of the app's payout list (the original's purchases have no status of ours).
    #[serde(default)]
    paid_lines: i64,
    /// Our distribution log is there: we paid it.
    #[serde(default)]
    logged: bool,
}

/// Whether a job still has to be applied.
#[derive(Clone, Debug, PartialEq, Eq)]
enum PurchaseState {
    /// Not paid yet: apply the plan.
    Open,
    /// Already paid (its job completed before, and was put back to `pending` by hand): complete
    /// the job and change nothing else.
    Applied,
    /// Not paid, and not ours to pay: its rewards are in another state (say `failed`).
    Closed(String),
    Missing,
}

impl PurchaseState {
    /// Whatever its status says: a purchase with payout lines or our log was paid, and so was
    /// the original's purchase whose (original) job had completed — even with no tree payout.
    fn of(record: Option<&PurchaseRecord>, job: &CheckoutJobDoc) -> Self {
        match record.filter(|p| p.kind.as_deref() == Some("purchase")) {
            None => PurchaseState::Missing,
            Some(p)
                if p.rewards_status.as_deref() == Some("completed")
                    || p.paid_lines > 0
                    || p.logged
                    || (job.is_legacy() && job.completed_at.is_some()) =>
            {
                PurchaseState::Applied
            }
            Some(p) => match p.rewards_status.as_deref() {
                None | Some("processing") => PurchaseState::Open,
                Some(other) => PurchaseState::Closed(other.to_owned()),
            },
        }
    }
}

/// The purchase's state as the loads read it: `$lookup` and `$project` stages that project it.
fn purchase_projection() -> Document {
    doc! {"_id": 1, "type": 1, "rewardsStatus": 1,
    "logged": {"$ne": [{"$type": "$rewardLog"}, "missing"]},
    "paidLines": {"$cond": [
        {"$isArray": "$treeDistribution"}, {"$size": "$treeDistribution"}, 0,
    ]}}
}

#[derive(Deserialize)]
struct DirectCount {
    p: ObjectId,
    l: String,
    n: i64,
}

fn level_of(letter: Option<&str>) -> Result<Level, String> {
    match letter {
        None => Ok(Level::A),
        Some(text) => text
            .parse()
            .map_err(|e| format!("corrupt customer data: {e}")),
    }
}

/// What the batch's transaction read: the view the rules plan on, the customers as stored, and
/// the purchases' states.
struct Loaded {
    view: ForestView<ObjectId>,
    nodes: HashMap<ObjectId, ChainNode>,
    /// Customers whose level letter cannot be read: a job whose chain meets one fails alone.
    corrupt: HashMap<ObjectId, String>,
    purchases: HashMap<ObjectId, PurchaseRecord>,
    /// Each job's holder (status, claim token) in this transaction's snapshot.
    fences: HashMap<ObjectId, JobFence>,
    /// The gifts pool's balance as stored, if its document exists.
    pool: Option<Result<MilliPoints, String>>,
    /// The admin's settings now (for the app's own current jobs).
    settings: crate::settings::SettingsReading,
    /// Completed purchases per buyer of the app's own current jobs.
    buyer_purchases: HashMap<ObjectId, BuyerPurchases>,
}

/// How a job's write is fenced by its claim.
#[derive(Clone, Copy)]
enum Fenced {
    /// The transaction's snapshot showed the claim (and a later claim would conflict): the
    /// write is by `_id` alone.
    BySnapshot,
    /// The write's filter carries the claim token.
    ByFilter,
}

/// Everything a batch writes, merged.
#[derive(Default)]
struct BatchWrites {
    customers: CustomerUpdates,
    /// Each customer's balance after the batch's credits so far (absent: not credited).
    balances: HashMap<ObjectId, MilliPoints>,
    entries: Vec<RewardEntryDoc>,
    purchases: Vec<Document>,
    /// Jobs to complete (indexes into the batch).
    completed: Vec<usize>,
    /// The gifts pool's balance after the batch's jobs so far, when the batch keeps it.
    pool: Option<MilliPoints>,
}

/// One job planned, before it joins the batch's writes.
struct PlannedJob {
    plan: RewardPlan<ObjectId>,
    terms: JobTerms,
    /// The new balances of the job's recipients, counting the batch's earlier credits.
    balances: Vec<(ObjectId, MilliPoints)>,
}

impl Store {
    /// A job claimed once more than it may be: complete it if it was paid already (put back to
    /// `pending` by hand after its last attempt), else fail it.
    async fn past_its_attempts(
        &self,
        claimed: &ClaimedJob,
        now: DateTime,
        settings: &QueueSettings,
    ) -> Result<JobOutcome, StoreError> {
        if self.already_applied(&claimed.job).await? {
            return self.complete_applied(claimed, now, settings).await;
        }
        // Reclaimed after a worker died on its last attempt: the attempts are spent.
        let spent = Attempt::Retryable("the worker's lease expired on the last attempt".into());
        self.queue().settle(claimed, spent, now, settings).await
    }

    /// Which of the group's jobs this worker still holds (one command, after a fence failed).
    async fn still_held(
        &self,
        jobs: &[ClaimedJob],
        group: &[usize],
    ) -> Result<HashSet<usize>, StoreError> {
        use futures_util::TryStreamExt;
        let fences: Vec<Document> = group.iter().map(|&i| jobs[i].fence()).collect();
        let held: Vec<Document> = self
            .database()
            .collection::<Document>(collections::CHECKOUT_JOBS)
            .find(doc! {"$or": fences})
            .projection(doc! {"_id": 1})
            .await?
            .try_collect()
            .await?;
        let held: HashSet<ObjectId> = held
            .iter()
            .filter_map(|d| d.get_object_id("_id").ok())
            .collect();
        Ok(group
            .iter()
            .copied()
            .filter(|&i| held.contains(&jobs[i].job.id))
            .collect())
    }

    /// Whether the job's purchase was paid already (read outside any transaction: only on the
    /// rare path of a job reclaimed past its attempts).
    async fn already_applied(&self, job: &CheckoutJobDoc) -> Result<bool, StoreError> {
        use futures_util::TryStreamExt;
        let records: Vec<Document> = self
            .database()
            .collection::<Document>(collections::TRANSACTIONS)
            .aggregate(vec![
                doc! {"$match": {"_id": job.checkout_transaction_id, "type": "purchase"}},
                doc! {"$project": purchase_projection()},
            ])
            .await?
            .try_collect()
            .await?;
        let records: Vec<PurchaseRecord> = records
            .into_iter()
            .map(crate::documents::read_document)
            .collect::<Result<_, _>>()
            .map_err(StoreError::Unreadable)?;
        Ok(PurchaseState::of(records.first(), job) == PurchaseState::Applied)
    }

    /// Completes a job whose purchase was already paid, fenced, changing nothing else.
    async fn complete_applied(
        &self,
        claimed: &ClaimedJob,
        now: DateTime,
        settings: &QueueSettings,
    ) -> Result<JobOutcome, StoreError> {
        tracing::warn!(job_id = %claimed.job.id, "the job was already applied; completing it");
        let ran = self
            .in_transaction(
                &TransactionRetry::background().snapshotless(),
                &mut (self, std::slice::from_ref(claimed), settings),
                |session, (store, jobs, settings)| {
                    Box::pin(store.complete_jobs(
                        session,
                        jobs,
                        &[0],
                        Fenced::ByFilter,
                        now,
                        settings,
                    ))
                },
            )
            .await;
        match ran {
            Ok(_) => Ok(JobOutcome::Completed),
            Err(TransactionFailure::Stopped(BatchError::LostLease)) => Ok(JobOutcome::LostLease),
            #[cfg(feature = "failpoints")]
            Err(TransactionFailure::Stopped(BatchError::Died)) => Ok(JobOutcome::Abandoned),
            Err(TransactionFailure::CommitUnknown(err)) => Err(err.into()),
            Err(other) => Err(StoreError::Unreadable(format!(
                "completing an applied job failed: {other:?}"
            ))),
        }
    }

    /// One attempt of a group's transaction: load, plan job by job, write everything merged.
    /// Returns the jobs that left the group, each with its own failure; the others are written
    /// and completed (the caller commits).
    async fn apply_batch(
        &self,
        session: &mut ClientSession,
        jobs: &[ClaimedJob],
        group: &[usize],
        now: DateTime,
        settings: &QueueSettings,
    ) -> Result<Vec<(usize, Attempt)>, BatchError> {
        if self.failpoints().is_armed(Failpoint::JobRetryableFailure) {
            let injected = Attempt::Retryable("injected failure (test failpoint)".into());
            return Ok(group.iter().map(|&i| (i, injected.clone())).collect());
        }
        // Batches take turns: this write is the transaction's first, so a batch that another
        // one is running beside stops here, before its load, and waits for the other's commit
        // instead of loading, planning and then losing on the customers both credit.
        self.take_turn(session, now).await?;
        let began = std::time::Instant::now();
        let within_budget = |began: std::time::Instant| {
            if group.len() > 1 && began.elapsed() > settings.batch_time_budget {
                return Err(BatchError::TooSlow);
            }
            Ok(())
        };
        let mut loaded = self.load_batch(session, jobs, group).await?;
        within_budget(began)?;
        self.die_at(Failpoint::JobAfterChainLoaded)?;
        // Every write below is by `_id` alone, fenced by this snapshot: a job claimed by another
        // worker is seen here, and one claimed after this snapshot was taken makes the
        // completion conflict (a transaction's write to a document written since its snapshot
        // is refused), so this batch is retried and then sees it.
        let held = |i: &usize| {
            loaded.fences.get(&jobs[*i].job.id).is_some_and(|fence| {
                fence.status.as_deref() == Some("processing")
                    && fence.claim_token == Some(jobs[*i].token)
            })
        };
        if !group.iter().all(held) {
            return Err(BatchError::LostLease);
        }

        let mut left = Vec::new();
        let mut writes = BatchWrites::default();
        // The gifts pool is kept once it exists, and built from the ledger by the first batch
        // whose jobs may spend it (the current economy's gifts).
        let spends = group.iter().any(|&i| {
            matches!(
                jobs[i].job.payload.era(),
                JobEra::OursCurrent | JobEra::AppCurrent
            )
        });
        let pool_built = loaded.pool.is_none() && spends;
        writes.pool = match loaded.pool.take() {
            Some(Ok(balance)) => Some(balance),
            Some(Err(problem)) => {
                return Err(BatchError::Refused(Attempt::Retryable(format!(
                    "the gifts pool's document cannot be read: {problem}"
                ))))
            }
            None if spends => Some(self.gifts_pool_from_ledger(session).await?),
            None => None,
        };
        let pool_before = writes.pool;
        for &i in group {
            let job = &jobs[i].job;
            let state = PurchaseState::of(loaded.purchases.get(&job.checkout_transaction_id), job);
            match state {
                PurchaseState::Open => {}
                PurchaseState::Applied => {
                    // Paid before: payouts and completion commit together, so the purchase says so.
                    tracing::warn!(job_id = %job.id, "the job was already applied; completing it");
                    writes.completed.push(i);
                    continue;
                }
                PurchaseState::Closed(status) => {
                    left.push((
                        i,
                        Attempt::Fatal(format!(
                            "the purchase's rewards are {status}, not processing"
                        )),
                    ));
                    continue;
                }
                PurchaseState::Missing => {
                    let message = format!(
                        "the purchase {} does not exist",
                        job.checkout_transaction_id
                    );
                    left.push((i, Attempt::Fatal(message)));
                    continue;
                }
            }
            within_budget(began)?;
            let planned = match plan_job(&loaded, &writes.balances, writes.pool, job, settings) {
                Ok(planned) => planned,
                Err(message) => {
                    left.push((i, Attempt::Fatal(message)));
                    continue;
                }
            };
            loaded.view.apply(&planned.plan);
            // A second job of the same purchase (never made by checkout) finds it paid.
            if let Some(record) = loaded.purchases.get_mut(&job.checkout_transaction_id) {
                record.logged = true;
            }
            writes
                .add(&planned, job, &loaded, now)
                .map_err(|e| BatchError::Refused(Attempt::Fatal(e)))?;
            writes.completed.push(i);
        }

        self.credit_and_promote(session, &mut writes).await?;
        self.die_at(Failpoint::JobAfterCredits)?;
        if let Some(after) = writes
            .pool
            .filter(|after| pool_built || Some(*after) != pool_before)
        {
            self.keep_gifts_pool(session, after, pool_built, now)
                .await?;
        }
        if !writes.entries.is_empty() {
            self.reward_entries()
                .insert_many(std::mem::take(&mut writes.entries))
                .session(&mut *session)
                .await?;
        }
        self.die_at(Failpoint::JobAfterEntries)?;
        self.log_purchases(session, &mut writes).await?;
        self.die_at(Failpoint::JobBeforeCompletion)?;
        self.complete_jobs(
            session,
            jobs,
            &writes.completed,
            Fenced::BySnapshot,
            now,
            settings,
        )
        .await?;
        self.die_at(Failpoint::JobBeforeCommit)?;
        Ok(left)
    }

    /// Takes the batches' turn: one write to one small document, the transaction's first. A
    /// write conflict there means another batch's transaction holds it: [`BatchError::Busy`].
    async fn take_turn(
        &self,
        session: &mut ClientSession,
        now: DateTime,
    ) -> Result<(), BatchError> {
        let taken = self
            .database()
            .collection::<Document>(collections::REWARD_TURNS)
            .update_one(
                doc! {"_id": BATCH_TURN_ID},
                doc! {"$inc": {"turns": 1_i64}, "$set": {"takenAt": now}},
            )
            .upsert(true)
            .session(&mut *session)
            .await;
        match taken {
            Ok(_) => Ok(()),
            Err(err) if err.contains_label(mongodb::error::TRANSIENT_TRANSACTION_ERROR) => {
                Err(BatchError::Busy)
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Every purchase's distribution in one `update` command, each conditional on its not being
    /// paid yet: ours are `processing`; the original's carry no status and an empty list until
    /// paid, so one it already paid can never be paid again.
    async fn log_purchases(
        &self,
        session: &mut ClientSession,
        writes: &mut BatchWrites,
    ) -> Result<(), BatchError> {
        let statements = std::mem::take(&mut writes.purchases);
        if statements.is_empty() {
            return Ok(());
        }
        let expected = statements.len();
        let reply = self
            .database()
            .run_command(
                doc! {"update": collections::TRANSACTIONS, "updates": statements, "ordered": true},
            )
            .session(&mut *session)
            .await?;
        refused_unless_all_matched(
            &reply,
            expected,
            "a purchase is missing or no longer in processing",
        )
    }

    /// The group's jobs completed, each fenced by its claim, in one command.
    async fn complete_jobs(
        &self,
        session: &mut ClientSession,
        jobs: &[ClaimedJob],
        completed: &[usize],
        fenced: Fenced,
        now: DateTime,
        settings: &QueueSettings,
    ) -> Result<(), BatchError> {
        if completed.is_empty() {
            return Ok(());
        }
        let filter = match fenced {
            Fenced::BySnapshot => {
                let ids: Vec<ObjectId> = completed.iter().map(|&i| jobs[i].job.id).collect();
                doc! {"_id": {"$in": ids}}
            }
            Fenced::ByFilter => {
                let fences: Vec<Document> = completed.iter().map(|&i| jobs[i].fence()).collect();
                doc! {"$or": fences}
            }
        };
        let done = self
            .checkout_jobs()
            .update_many(filter, crate::queue::completion(now, settings.retention))
            .session(&mut *session)
            .await?;
        if usize::try_from(done.matched_count).ok() != Some(completed.len()) {
            return Err(BatchError::LostLease);
        }
        Ok(())
    }

    /// A test's simulated crash at `point` (without the `failpoints` feature, nothing).
    #[cfg(feature = "failpoints")]
    fn die_at(&self, point: Failpoint) -> Result<(), BatchError> {
        if self.failpoints().is_armed(point) {
            return Err(BatchError::Died);
        }
        Ok(())
    }

    #[cfg(not(feature = "failpoints"))]
    #[inline]
    fn die_at(&self, _point: Failpoint) -> Result<(), BatchError> {
        Ok(())
    }

    /// Every buyer's chain, the level counts of every loaded customer's directs, every job's
    /// purchase and fence, and the gifts pool, in one aggregation: the chains are read by `_id`
    /// as the environment's parent links name them ([`crate::chains`]), then confirmed against
    /// the parents this snapshot holds (a member the links missed is read in one more round trip
    /// a level).
    ///
    /// The walk is bounded explicitly by [`MAX_ANCESTORS`]: a chain cut short would pay the wrong
    /// people, so one more step is followed and a job whose chain is longer fails.
    async fn load_batch(
        &self,
        session: &mut ClientSession,
        jobs: &[ClaimedJob],
        group: &[usize],
    ) -> Result<Loaded, BatchError> {
        if self.failpoints().is_armed(Failpoint::JobSlowLoad) {
            let per_job = crate::failpoints::SLOW_LOAD_PER_JOB;
            tokio::time::sleep(per_job * u32::try_from(group.len()).unwrap_or(u32::MAX)).await;
        }
        let buyers: Vec<ObjectId> = group.iter().map(|&i| jobs[i].job.customer_id).collect();
        let purchases: Vec<ObjectId> = group
            .iter()
            .map(|&i| jobs[i].job.checkout_transaction_id)
            .collect();
        let job_ids: Vec<ObjectId> = group.iter().map(|&i| jobs[i].job.id).collect();
        // Every customer on any of the buyers' chains as the links know them, each once.
        let members = self
            .links()
            .chains(&buyers, &HashSet::new(), MAX_CHAIN_STEPS)
            .members;
        // One document to hang the lookups on: one of the batch's jobs. (When none is left,
        // there is none, and every claim is found lost.)
        let mut pipeline = on_one_job(&job_ids);
        pipeline.extend(forest_stages(&members));
        pipeline.extend([
            // Every lookup joins on `_id` (a primary-key probe on any server; a lookup with a
            // pipeline alone would have a server read the whole collection).
            doc! {"$set": {"purchaseIds": {"$literal": &purchases},
            "jobIds": {"$literal": &job_ids}, "poolIds": [GIFTS_POOL_ID]}},
            doc! {"$lookup": {
                "from": collections::REWARD_POOLS,
                "localField": "poolIds", "foreignField": "_id",
                "as": "pool",
            }},
            doc! {"$lookup": {
                "from": collections::TRANSACTIONS,
                "localField": "purchaseIds", "foreignField": "_id",
                "pipeline": [{"$project": purchase_projection()}],
                "as": "purchases",
            }},
            doc! {"$lookup": {
                "from": collections::CHECKOUT_JOBS,
                "localField": "jobIds", "foreignField": "_id",
                "pipeline": [{"$project": {"status": 1, "claimToken": 1}}],
                "as": "jobs",
            }},
        ]);
        // Jobs the app's own current checkout queued are paid by the settings and the
        // first-purchase rule as they are when the job runs (the app's way): read them here.
        let app_buyers: Vec<ObjectId> = group
            .iter()
            .filter(|&&i| jobs[i].job.payload.era() == JobEra::AppCurrent)
            .map(|&i| jobs[i].job.customer_id)
            .collect();
        if !app_buyers.is_empty() {
            pipeline.push(crate::settings::lookup_settings("settings"));
            pipeline.push(doc! {"$set": {"appBuyers": {"$literal": &app_buyers}}});
            pipeline.push(doc! {"$lookup": {
                "from": collections::TRANSACTIONS,
                "localField": "appBuyers", "foreignField": "customerId",
                "pipeline": [
                    {"$match": {"type": "purchase", "status": ENTRY_COMPLETED}},
                    {"$group": {"_id": "$customerId", "n": {"$sum": 1}, "first": {"$min": "$_id"}}},
                ],
                "as": "buyerPurchases",
            }});
        }
        pipeline.push(
            doc! {"$project": {"_id": 0, "forest": 1, "counts": 1, "purchases": 1, "jobs": 1,
            "pool": 1, "settings": 1, "buyerPurchases": 1}},
        );
        let loaded: LoadedDoc = match self.load_on_one_job(session, pipeline).await? {
            Some(loaded) => loaded,
            None => LoadedDoc {
                forest: vec![],
                counts: vec![],
                purchases: vec![],
                jobs: vec![],
                pool: vec![],
                settings: vec![],
                buyer_purchases: vec![],
            },
        };
        let pool = loaded.pool.first().map(|pool| {
            pool.get("balance")
                .ok_or_else(|| "no balance".to_owned())
                .and_then(|b| crate::amount::from_bson(b).map_err(|e| e.to_string()))
        });
        let settings = crate::settings::SettingsReading::of(loaded.settings.first());
        let buyer_purchases = loaded
            .buyer_purchases
            .into_iter()
            .map(|p| (p.buyer, p))
            .collect();
        let mut nodes: HashMap<ObjectId, ChainNode> =
            loaded.forest.into_iter().map(|n| (n.id, n)).collect();
        let mut counts = loaded.counts;
        if !nodes.is_empty() {
            let absent = members.iter().filter(|id| !nodes.contains_key(id));
            let absent = absent.copied().collect();
            self.confirm_chains(session, &job_ids, &buyers, absent, &mut nodes, &mut counts)
                .await?;
        }
        let purchases = loaded.purchases.into_iter().map(|p| (p.id, p)).collect();
        let fences = loaded.jobs.into_iter().map(|j| (j.id, j)).collect();
        if nodes.is_empty() {
            return Ok(Loaded {
                view: ForestView::new(),
                nodes,
                corrupt: HashMap::new(),
                purchases,
                fences,
                pool,
                settings,
                buyer_purchases,
            });
        }

        let mut corrupt = HashMap::new();
        let mut directs: HashMap<ObjectId, LevelCounts> = HashMap::new();
        for count in counts {
            match level_of(Some(&count.l)) {
                Ok(level) => directs
                    .entry(count.p)
                    .or_default()
                    .add(level, u64::try_from(count.n).unwrap_or(0)),
                Err(problem) => {
                    corrupt.insert(count.p, problem);
                }
            }
        }
        let mut view = ForestView::new();
        for node in nodes.values() {
            let level = match level_of(node.level_letter.as_deref()) {
                Ok(level) => level,
                Err(problem) => {
                    corrupt.insert(node.id, problem);
                    Level::A
                }
            };
            view.insert(
                node.id,
                ViewMember {
                    parent: node.parent_customer,
                    level,
                    // Missing means the app's default, `active`.
                    active: node.referral_status.as_deref().unwrap_or(REFERRAL_ACTIVE)
                        == REFERRAL_ACTIVE,
                    verified: node.is_verified == Some(true),
                    directs: directs.get(&node.id).copied().unwrap_or_default(),
                },
            );
        }
        Ok(Loaded {
            view,
            nodes,
            corrupt,
            purchases,
            fences,
            pool,
            settings,
            buyer_purchases,
        })
    }

    /// Runs a load pipeline started by [`on_one_job`] in the batch's transaction: its one
    /// document, or none when no job of the batch is left.
    async fn load_on_one_job(
        &self,
        session: &mut ClientSession,
        pipeline: Vec<Document>,
    ) -> Result<Option<LoadedDoc>, BatchError> {
        let mut cursor = self
            .database()
            .collection::<Document>(collections::CHECKOUT_JOBS)
            .aggregate(pipeline)
            .session(&mut *session)
            .await?;
        let found = cursor.next(&mut *session).await.transpose()?;
        drop(cursor);
        found
            .map(|found| {
                crate::documents::read_document(found).map_err(|e| {
                    BatchError::Refused(Attempt::Fatal(format!("corrupt customer data: {e}")))
                })
            })
            .transpose()
    }

    /// Follows the parents the snapshot holds from every buyer and reads, in the same snapshot,
    /// any chain member the links did not name (a parent changed since they were learned, a new
    /// customer): one round trip a missing level, none when the links were right. The links
    /// learn what was read.
    async fn confirm_chains(
        &self,
        session: &mut ClientSession,
        job_ids: &[ObjectId],
        buyers: &[ObjectId],
        mut absent: HashSet<ObjectId>,
        nodes: &mut HashMap<ObjectId, ChainNode>,
        counts: &mut Vec<DirectCount>,
    ) -> Result<(), BatchError> {
        loop {
            let missing = unread_on_chains(buyers, nodes, &absent);
            if missing.is_empty() {
                break;
            }
            let mut pipeline = on_one_job(job_ids);
            pipeline.extend(forest_stages(&missing));
            pipeline.push(doc! {"$project": {"_id": 0, "forest": 1, "counts": 1}});
            let Some(read) = self.load_on_one_job(session, pipeline).await? else {
                break;
            };
            let read_ids: HashSet<ObjectId> = read.forest.iter().map(|n| n.id).collect();
            absent.extend(missing.into_iter().filter(|id| !read_ids.contains(id)));
            nodes.extend(read.forest.into_iter().map(|n| (n.id, n)));
            counts.extend(read.counts);
        }
        self.links()
            .learn(nodes.values().map(|n| (n.id, n.parent_customer)));
        Ok(())
    }

    /// The gifts pool as the app computes it from the ledger (Σ completed `gifts_reward` −
    /// Σ completed `signup_gifts_reward` − Σ completed `level_gift_reward`), added up here
    /// exactly (never by the server in floating point). Read once, by the first batch that needs
    /// the pool, in its transaction's snapshot; the pool's document keeps it from then on.
    async fn gifts_pool_from_ledger(
        &self,
        session: &mut ClientSession,
    ) -> Result<MilliPoints, BatchError> {
        let types: Vec<&str> = GIFTS_POOL_TYPES.iter().map(|t| t.as_str()).collect();
        let mut cursor = self
            .database()
            .collection::<Document>(collections::TRANSACTIONS)
            .find(doc! {"type": {"$in": types}, "status": ENTRY_COMPLETED})
            .projection(doc! {"_id": 0, "type": 1, "amount": 1})
            .session(&mut *session)
            .await?;
        let mut balance = MilliPoints::ZERO;
        while let Some(entry) = cursor.next(&mut *session).await.transpose()? {
            let amount = entry
                .get("amount")
                .map(crate::amount::from_bson)
                .transpose()
                .map_err(|e| {
                    BatchError::Refused(Attempt::Retryable(format!(
                        "a gifts pool entry's amount cannot be read: {e}"
                    )))
                })?
                .unwrap_or_default();
            let income = entry.get_str("type") == Ok(TransactionType::GiftsReward.as_str());
            balance = if income {
                balance.checked_add(amount)
            } else {
                balance.checked_sub(amount)
            }
            .map_err(|e| BatchError::Refused(Attempt::Retryable(e.to_string())))?;
        }
        tracing::info!(balance = %balance, "the gifts pool was built from the ledger");
        Ok(balance)
    }

    /// The gifts pool's new balance, in the batch's transaction: two batches that move it
    /// conflict, and one of them plans again on the other's balance, so no concurrency can
    /// overdraw it.
    async fn keep_gifts_pool(
        &self,
        session: &mut ClientSession,
        balance: MilliPoints,
        built: bool,
        now: DateTime,
    ) -> Result<(), BatchError> {
        let amount = crate::amount::to_bson(balance)
            .map_err(|e| BatchError::Refused(Attempt::Retryable(e.to_string())))?;
        let mut set = doc! {"balance": amount, "updatedAt": now};
        if built {
            set.insert("builtAt", now);
        }
        self.database()
            .collection::<Document>(collections::REWARD_POOLS)
            .update_one(doc! {"_id": GIFTS_POOL_ID}, doc! {"$set": set})
            .upsert(true)
            .session(&mut *session)
            .await?;
        Ok(())
    }

    /// Every customer's merged write of the batch in one `update` command: a promotion (`$max`
    /// on the letter, so levels never go down), a touch of a promoted customer's parent, and a
    /// credit, which sets the exact new balance conditional on the balance the load read.
    async fn credit_and_promote(
        &self,
        session: &mut ClientSession,
        writes: &mut BatchWrites,
    ) -> Result<(), BatchError> {
        let updates = std::mem::take(&mut writes.customers).into_statements();
        if updates.is_empty() {
            return Ok(());
        }
        let expected = updates.len();
        let reply = self
            .database()
            .run_command(
                doc! {"update": collections::CUSTOMERS, "updates": updates, "ordered": true},
            )
            .session(&mut *session)
            .await?;
        if let Ok(errors) = reply.get_array("writeErrors") {
            if !errors.is_empty() {
                return Err(BatchError::Refused(Attempt::Retryable(format!(
                    "crediting the chain failed: {errors:?}"
                ))));
            }
        }
        let matched = crate::documents::number(&reply, "n").unwrap_or(0);
        if usize::try_from(matched).ok() != Some(expected) {
            // A wallet no longer holds what we read (or its customer is gone): read again.
            return Err(BatchError::Conflict(
                "a wallet changed under the batch".into(),
            ));
        }
        Ok(())
    }
}

/// `Ok` when an `update` command's reply has no write error and matched every statement.
fn refused_unless_all_matched(
    reply: &Document,
    expected: usize,
    otherwise: &str,
) -> Result<(), BatchError> {
    let errors = reply
        .get_array("writeErrors")
        .map(|errors| !errors.is_empty())
        .unwrap_or(false);
    let matched = crate::documents::number(reply, "n").unwrap_or(0);
    if errors || usize::try_from(matched).ok() != Some(expected) {
        return Err(BatchError::Refused(Attempt::Retryable(otherwise.into())));
    }
    Ok(())
}

/// Plans one job on the batch's view, the gifts pool holding `pool` (when the batch keeps it);
/// every reason it cannot be paid is its own, permanent.
/// Steps a chain is followed above its buyer: one more than it may have, so a longer chain is
/// seen as such and its job fails.
const MAX_CHAIN_STEPS: usize = MAX_ANCESTORS as usize + 1;

/// A pipeline's start on one of the batch's jobs, to hang lookups on.
fn on_one_job(job_ids: &[ObjectId]) -> Vec<Document> {
    vec![
        doc! {"$match": {"_id": {"$in": job_ids}}},
        doc! {"$limit": 1},
    ]
}

/// Ids per `$lookup` of [`forest_stages`]: some servers match a list of ids in time that grows
/// faster than the list (the local server: 480 ids in one list 170 ms, in lists of 64 74 ms).
const IDS_PER_LOOKUP: usize = 64;

/// Stages that read the given customers by `_id` (`forest`: one probe each) and count their
/// directs per (parent, letter) on the `parentCustomer` index (`counts`), on the server, in
/// lookups of at most [`IDS_PER_LOOKUP`] ids.
fn forest_stages(customers: &[ObjectId]) -> Vec<Document> {
    let mut stages = Vec::new();
    let (mut forests, mut counts) = (Vec::new(), Vec::new());
    for (part, ids) in customers.chunks(IDS_PER_LOOKUP).enumerate() {
        let (ids_field, forest, count) = (
            format!("ids{part}"),
            format!("forest{part}"),
            format!("counts{part}"),
        );
        stages.extend([
            doc! {"$set": {&ids_field: {"$literal": ids}}},
            doc! {"$lookup": {
                "from": collections::CUSTOMERS,
                "localField": &ids_field, "foreignField": "_id",
                "pipeline": [{"$project": {
                    "points": 1, "username": 1, "email": 1, "parentCustomer": 1,
                    "levelLetter": 1, "referralStatus": 1, "isVerified": 1,
                }}],
                "as": &forest,
            }},
            doc! {"$lookup": {
                "from": collections::CUSTOMERS,
                "localField": &ids_field, "foreignField": "parentCustomer",
                "pipeline": [
                    // (A server may match an empty list of ids with the roots' null.)
                    {"$match": {"parentCustomer": {"$type": "objectId"}}},
                    {"$group": {
                        "_id": {"p": "$parentCustomer", "l": {"$ifNull": ["$levelLetter", "A"]}},
                        "n": {"$sum": 1},
                    }},
                    {"$project": {"_id": 0, "p": "$_id.p", "l": "$_id.l", "n": 1}},
                ],
                "as": &count,
            }},
        ]);
        forests.push(format!("${forest}"));
        counts.push(format!("${count}"));
    }
    stages.push(doc! {"$set": {
        "forest": {"$concatArrays": forests},
        "counts": {"$concatArrays": counts},
    }});
    stages
}

/// The chain members the snapshot's parents name that were not read (nor found absent),
/// following each buyer's chain through what was read.
fn unread_on_chains(
    buyers: &[ObjectId],
    nodes: &HashMap<ObjectId, ChainNode>,
    absent: &HashSet<ObjectId>,
) -> Vec<ObjectId> {
    let mut seen = HashSet::new();
    let mut missing = Vec::new();
    for &buyer in buyers {
        let mut current = buyer;
        for _ in 0..=MAX_CHAIN_STEPS {
            if !seen.insert(current) {
                break;
            }
            match nodes.get(&current) {
                Some(node) => match node.parent_customer {
                    Some(parent) => current = parent,
                    None => break,
                },
                None => {
                    if !absent.contains(&current) {
                        missing.push(current);
                    }
                    break;
                }
            }
        }
    }
    missing
}

fn plan_job(
    loaded: &Loaded,
    balances: &HashMap<ObjectId, MilliPoints>,
    pool: Option<MilliPoints>,
    job: &CheckoutJobDoc,
    settings: &QueueSettings,
) -> Result<PlannedJob, String> {
    let buyer = job.customer_id;
    let facts = RunTimeFacts {
        first_purchase: match loaded.buyer_purchases.get(&buyer) {
            None => true,
            // No completed purchase other than this one (the app's own rule).
            Some(p) => p.n == 0 || (p.n == 1 && p.first == Some(job.checkout_transaction_id)),
        },
        settings: loaded.settings.settings.clone(),
        level_gifts_allowed: settings.level_gifts_allowed,
    };
    let terms = job.payload.paying_terms(&facts)?;
    let chain = loaded.view.chain(&buyer).map_err(|e| match e {
        ChainError::Cycle(id) => format!("the referral chain has a cycle through {id}"),
        ChainError::UnknownBuyer(id) => format!("the buyer {id} does not exist"),
    })?;
    if let Some(problem) = chain
        .members()
        .iter()
        .find_map(|m| loaded.corrupt.get(&m.id))
    {
        return Err(problem.clone());
    }
    let ancestors = i64::try_from(chain.ancestors().len()).unwrap_or(i64::MAX);
    if ancestors > MAX_ANCESTORS
        || (ancestors == MAX_ANCESTORS && !matches!(chain.end(), ChainEnd::Root))
    {
        return Err(format!(
            "the referral chain is longer than {MAX_ANCESTORS} ancestors"
        ));
    }
    let plan = loaded
        .view
        .plan_job(
            &terms,
            job.payload.reward_points,
            &buyer,
            pool.unwrap_or_default(),
        )
        .map_err(|e| match e {
            BatchPlanError::Chain(e) => e.to_string(),
            other => other.to_string(),
        })?;
    if let ChainEnd::MissingParent(parent) = &plan.chain_end {
        tracing::warn!(job_id = %job.id, %parent, "the referral chain ends at a missing parent");
    }
    let mut new_balances: Vec<(ObjectId, MilliPoints)> = Vec::new();
    for (id, amount) in credits(&plan) {
        let node = loaded
            .nodes
            .get(&id)
            .ok_or_else(|| format!("customer {id} left the chain"))?;
        let unreadable = |e: String| format!("customer {}: points: {e}", node.id);
        let current = match new_balances.iter().find(|(known, _)| *known == id) {
            Some((_, balance)) => *balance,
            None => match balances.get(&id) {
                Some(balance) => *balance,
                None => crate::amount::wallet_or_default(&node.points)
                    .map_err(|e| unreadable(e.to_string()))?,
            },
        };
        let after = current
            .checked_add(amount)
            .map_err(|e| unreadable(e.to_string()))?;
        // Refused here, not at the write, so that only this job fails.
        crate::amount::to_bson(after).map_err(|e| unreadable(e.to_string()))?;
        match new_balances.iter_mut().find(|(known, _)| *known == id) {
            Some((_, balance)) => *balance = after,
            None => new_balances.push((id, after)),
        }
    }
    Ok(PlannedJob {
        plan,
        terms,
        balances: new_balances,
    })
}

/// Every wallet credit of a plan: the tree payouts, the direct-referral share, the pool's gifts.
fn credits(plan: &RewardPlan<ObjectId>) -> impl Iterator<Item = (ObjectId, MilliPoints)> + '_ {
    plan.payouts
        .iter()
        .map(|p| (p.id, p.amount))
        .chain(plan.direct.iter().map(|d| (d.id, d.amount)))
        .chain(plan.gifts.iter().map(|g| (g.id, g.amount)))
}

impl BatchWrites {
    /// Adds a planned job's writes: its promotions (and their parents), its credits, its
    /// entries and its purchase's log.
    fn add(
        &mut self,
        planned: &PlannedJob,
        job: &CheckoutJobDoc,
        loaded: &Loaded,
        now: DateTime,
    ) -> Result<(), String> {
        let plan = &planned.plan;
        for promotion in &plan.promotions {
            let update = self.customers.of(promotion.id, now);
            let letter = promotion.to.to_string();
            let higher = match update
                .get_document("$max")
                .and_then(|m| m.get_str("levelLetter"))
            {
                Ok(already) if already >= letter.as_str() => None,
                _ => Some(letter),
            };
            if let Some(letter) = higher {
                update.insert("$max", doc! {"levelLetter": letter});
            }
            // The parent's promotion depends on this customer's level: writing the parent too
            // makes two batches that promote siblings conflict, so one re-reads the other's
            // promotion and the result is that of a serial order (never a promotion lost).
            if let Some(parent) = loaded
                .nodes
                .get(&promotion.id)
                .and_then(|m| m.parent_customer)
                .filter(|p| loaded.nodes.contains_key(p))
            {
                self.customers.of(parent, now);
            }
        }
        for (id, balance) in &planned.balances {
            let written = crate::amount::to_bson(*balance).map_err(|e| e.to_string())?;
            // The new balance from the balance this snapshot read: anyone writing the wallet
            // since makes this write conflict, and the batch reads it again.
            let update = self.customers.of(*id, now);
            if let Ok(set) = update.get_document_mut("$set") {
                set.insert("points", written);
            }
            self.balances.insert(*id, *balance);
        }
        if let Some(pool) = self.pool {
            self.pool = Some(plan.pool_after(pool).map_err(|e| e.to_string())?);
        }
        self.entries
            .extend(reward_entries(plan, job, &loaded.nodes, now));
        let log = TreeDistributionDoc::from_plan(plan, planned.terms.rules(), now);
        let log = mongodb::bson::to_bson(&log).map_err(|e| e.to_string())?;
        let distribution = mongodb::bson::to_bson(&tree_distribution(plan, &loaded.nodes))
            .map_err(|e| e.to_string())?;
        let gifts_final = crate::amount::to_bson(plan.gifts_final).map_err(|e| e.to_string())?;
        let mut set = doc! {
            "treeDistribution": distribution,
            "rewardLog": log,
            "giftsPointsShare": gifts_final,
            "rewardsStatus": rewards_status(RewardsStatus::Completed),
            "updatedAt": now,
        };
        if let JobTerms::Today(_) = planned.terms {
            // As the app's reports read it: the final app amount (with the unused tree points).
            set.insert(
                "appPointsShare",
                crate::amount::to_bson(plan.app_final).map_err(|e| e.to_string())?,
            );
        }
        // This snapshot read the purchase unpaid (PurchaseState::Open); a payment since would
        // make this write conflict.
        self.purchases.push(doc! {
            "q": {"_id": job.checkout_transaction_id},
            "u": {"$set": set},
        });
        Ok(())
    }
}

/// One update statement per customer, in the order customers were first touched.
#[derive(Default)]
struct CustomerUpdates {
    order: Vec<ObjectId>,
    by_customer: HashMap<ObjectId, Document>,
}

impl CustomerUpdates {
    /// The customer's update (by `_id`), created on first use.
    fn of(&mut self, id: ObjectId, now: DateTime) -> &mut Document {
        self.by_customer.entry(id).or_insert_with(|| {
            self.order.push(id);
            doc! {"$set": {"updatedAt": now}}
        })
    }

    fn into_statements(mut self) -> Vec<Document> {
        self.order
            .iter()
            .filter_map(|id| {
                self.by_customer
                    .remove(id)
                    .map(|u| doc! {"q": {"_id": id}, "u": u})
            })
            .collect()
    }
}

/// The purchase's `treeDistribution` as the app lists it: one line per payout.
fn tree_distribution(
    plan: &RewardPlan<ObjectId>,
    members: &HashMap<ObjectId, ChainNode>,
) -> Vec<TreeDistributionEntryDoc> {
    plan.payouts
        .iter()
        .map(|p| TreeDistributionEntryDoc {
            recipient_id: p.id,
            recipient_username: members
                .get(&p.id)
                .map(|m| m.username.clone())
                .unwrap_or_default(),
            amount: p.amount,
            level: p.level.to_string(),
        })
        .collect()
}

/// The `transactions` entries of a plan, as the original worker wrote them (plus the purchase
/// they belong to): one per payout, then the gifts and app pools. No entry of amount 0.
fn reward_entries(
    plan: &RewardPlan<ObjectId>,
    job: &CheckoutJobDoc,
    members: &HashMap<ObjectId, ChainNode>,
    now: DateTime,
) -> Vec<RewardEntryDoc> {
    let entry =
        |kind, customer_id, (user_name, user_email): (String, String), amount, description| {
            let id = ObjectId::new();
            RewardEntryDoc {
                id,
                kind,
                customer_id,
                user_name,
                user_email,
                amount,
                currency: CURRENCY.to_owned(),
                status: ENTRY_COMPLETED.to_owned(),
                description,
                reference: reference_of(id),
                processed_at: now,
                pool: None,
                related_transaction: job.checkout_transaction_id,
                level: None,
                shared_with: None,
                created_at: now,
                updated_at: now,
            }
        };
    let user = |id: &ObjectId| {
        members
            .get(id)
            .map(|m| (m.username.clone(), m.email.clone()))
            .unwrap_or_default()
    };
    let mut entries: Vec<RewardEntryDoc> = plan
        .payouts
        .iter()
        .map(|p| match p.kind {
            PayoutKind::Level => RewardEntryDoc {
                level: Some(p.level),
                ..entry(
                    TransactionType::TreeReward,
                    p.id,
                    user(&p.id),
                    p.amount,
                    format!("Tree reward - Level {}", p.level),
                )
            },
            PayoutKind::Shared { members } => RewardEntryDoc {
                level: Some(p.level),
                shared_with: Some(i32::try_from(members).unwrap_or(i32::MAX)),
                ..entry(
                    TransactionType::TreeRewardShared,
                    p.id,
                    user(&p.id),
                    p.amount,
                    format!("Tree reward - Level {} shared ({members})", p.level),
                )
            },
        })
        .collect();
    if let Some(direct) = &plan.direct {
        let buyer = members
            .get(&job.customer_id)
            .map(|m| m.username.clone())
            .unwrap_or_default();
        let description = match direct.kind {
            DirectKind::Referral => {
                format!("Direct Referral Reward - First purchase bonus for referring {buyer}")
            }
            DirectKind::Cashback => {
                "Cashback - Direct referral share returned on a repeat purchase".to_owned()
            }
        };
        entries.push(entry(
            TransactionType::DirectReferralReward,
            direct.id,
            user(&direct.id),
            direct.amount,
            description,
        ));
    }
    for gift in &plan.gifts {
        entries.push(match gift.kind {
            GiftKind::Signup => entry(
                TransactionType::SignupGiftsReward,
                gift.id,
                user(&gift.id),
                gift.amount,
                "Signup Bonus - Welcome gift (Deducted from Gifts Pool)".to_owned(),
            ),
            GiftKind::Level(level) => RewardEntryDoc {
                level: Some(level),
                ..entry(
                    TransactionType::LevelGiftReward,
                    gift.id,
                    user(&gift.id),
                    gift.amount,
                    format!(
                        "Level Upgrade Gift - Reached Level {level} (Deducted from Global Gifts \
                         Pool)"
                    ),
                )
            },
        });
    }
    let today = plan.direct.is_some() || !plan.split.referral.is_zero() || !plan.gifts.is_empty();
    let (gifts_description, app_description) = if today {
        (
            "Income to Gifts Pool from checkout split",
            "App revenue split from checkout",
        )
    } else {
        (
            "Gifts points from checkout",
            "App revenue points from checkout",
        )
    };
    let system = || (SYSTEM_USER_NAME.to_owned(), SYSTEM_USER_EMAIL.to_owned());
    for (kind, pool, amount, description) in [
        (
            TransactionType::GiftsReward,
            Pool::Gifts,
            plan.gifts_final,
            gifts_description,
        ),
        (
            TransactionType::AppReward,
            Pool::App,
            plan.app_final,
            app_description,
        ),
    ] {
        if !amount.is_zero() {
            entries.push(RewardEntryDoc {
                pool: Some(pool),
                ..entry(
                    kind,
                    job.customer_id,
                    system(),
                    amount,
                    description.to_owned(),
                )
            });
        }
    }
    entries
}

/// The reward batches: load, plan and write a batch of claimed jobs in one transaction.
#[derive(Clone, Copy, Debug)]
pub struct Rewards<'a> {
    pub(crate) store: &'a Store,
}

impl Store {
    /// The reward batches: load, plan and write a batch of claimed jobs in one transaction.
    pub fn rewards(&self) -> Rewards<'_> {
        Rewards { store: self }
    }
}

impl Rewards<'_> {
    /// Processes one claimed job to its outcome (a batch of one).
    pub async fn process_claimed(
        self,
        claimed: &ClaimedJob,
        now: DateTime,
        settings: &QueueSettings,
    ) -> Result<JobOutcome, StoreError> {
        let report = self
            .process_batch(std::slice::from_ref(claimed), now, settings)
            .await?;
        Ok(report
            .outcomes
            .first()
            .copied()
            .unwrap_or(JobOutcome::LostLease))
    }

    /// Processes claimed jobs (in claim order) to their outcomes: completed, retried later,
    /// dead, or left alone because the claim was lost. `Err` only when the database could not
    /// even record a failure (those jobs' leases then expire and another worker takes them).
    pub async fn process_batch(
        self,
        jobs: &[ClaimedJob],
        now: DateTime,
        settings: &QueueSettings,
    ) -> Result<BatchReport, StoreError> {
        // `now` is when the batch began: each attempt's time is `now` plus the time since then
        // (learning chains and waiting for the turn included), so committed jobs' `completedAt`
        // follow their commits.
        let started = std::time::Instant::now();
        let mut outcomes: Vec<Option<JobOutcome>> = vec![None; jobs.len()];
        let mut attempts: Vec<Option<Attempt>> = vec![None; jobs.len()];
        let mut report = BatchReport::default();
        let mut live = Vec::with_capacity(jobs.len());
        for (i, claimed) in jobs.iter().enumerate() {
            if claimed.attempt() > claimed.job.max_attempts {
                outcomes[i] = Some(self.store.past_its_attempts(claimed, now, settings).await?);
            } else {
                live.push(i);
            }
        }
        // The buyers' chains learned before the transaction (a warm environment knows them):
        // the transaction then reads them all in its one load.
        let buyers: Vec<ObjectId> = live.iter().map(|&i| jobs[i].job.customer_id).collect();
        let customers = self
            .store
            .database()
            .collection::<Document>(collections::CUSTOMERS);
        let learned = self
            .store
            .links()
            .learn_chains(&customers, &buyers, MAX_CHAIN_STEPS)
            .await;
        if let Err(error) = learned {
            // The batch's own reads find the chains (slower, in its snapshot).
            tracing::warn!(%error, "learning the buyers' referral chains failed");
        }
        // Groups still to run, the next at the end: splitting keeps the claim order.
        let mut groups = vec![live];
        let split = |group: &mut Vec<usize>, groups: &mut Vec<Vec<usize>>| {
            let second = group.split_off(group.len() / 2);
            groups.push(second);
            groups.push(std::mem::take(group));
        };
        while let Some(mut group) = groups.pop() {
            if group.is_empty() {
                continue;
            }
            let retry = if group.len() > 1 {
                TransactionRetry::background().attempts(BATCH_ATTEMPTS_BEFORE_SPLIT)
            } else {
                TransactionRetry::background()
            };
            let mut longest = std::time::Duration::ZERO;
            let ran = self
                .store
                .in_transaction(
                    &retry,
                    &mut (self.store, jobs, group.as_slice(), settings, &mut longest),
                    |session, (store, jobs, group, settings, longest)| {
                        // Each attempt writes its own time: the committed jobs' `completedAt`
                        // orders them as their commits are ordered wherever the order matters
                        // (an attempt that conflicts with another reads after the other commits).
                        let attempt_at = add(now, started.elapsed());
                        Box::pin(async move {
                            let began = std::time::Instant::now();
                            let applied = store
                                .apply_batch(session, jobs, group, attempt_at, settings)
                                .await;
                            if !matches!(applied, Err(BatchError::Busy)) {
                                **longest = (**longest).max(began.elapsed());
                            }
                            applied
                        })
                    },
                )
                .await;
            report.longest_transaction = report.longest_transaction.max(longest);
            let mut every = |attempt: Attempt, group: &[usize]| {
                for &i in group {
                    attempts[i] = Some(attempt.clone());
                }
            };
            match ran {
                Ok(committed) => {
                    report.conflicts += usize::try_from(committed.attempts - 1).unwrap_or(0);
                    report.waits += usize::try_from(committed.waits).unwrap_or(0);
                    every(Attempt::Done, &group);
                    for (i, failure) in committed.value {
                        attempts[i] = Some(failure);
                    }
                }
                #[cfg(feature = "failpoints")]
                Err(TransactionFailure::Stopped(BatchError::Died)) => every(Attempt::Died, &group),
                Err(TransactionFailure::Stopped(BatchError::LostLease)) => {
                    let held = self.store.still_held(jobs, &group).await?;
                    if held.len() == group.len() {
                        // The snapshot saw a claim lost that the database now shows held (a
                        // claim moved twice meanwhile): contention; never loop on it.
                        report.conflicts += 1;
                        if group.len() > 1 {
                            report.splits += 1;
                            split(&mut group, &mut groups);
                        } else {
                            every(Attempt::Contended, &group);
                        }
                        continue;
                    }
                    let lost: Vec<usize> = group
                        .iter()
                        .copied()
                        .filter(|i| !held.contains(i))
                        .collect();
                    every(Attempt::Lost, &lost);
                    group.retain(|i| held.contains(i));
                    groups.push(group);
                }
                Err(TransactionFailure::Stopped(BatchError::TooSlow)) => {
                    // Only a group of several jobs is cut (one job's chain is bounded).
                    tracing::warn!(
                        jobs = group.len(),
                        budget_ms = settings.batch_time_budget.as_millis(),
                        "a batch ran past its time budget: cutting it in halves"
                    );
                    report.splits += 1;
                    report.cuts += 1;
                    split(&mut group, &mut groups);
                }
                // The turn stayed taken for the runner's whole patience: try again later.
                Err(TransactionFailure::Stopped(BatchError::Busy))
                | Err(TransactionFailure::Exhausted {
                    last: Some(BatchError::Busy),
                    ..
                }) => every(Attempt::Contended, &group),
                Err(TransactionFailure::Stopped(BatchError::Refused(failure)))
                    if group.len() > 1 =>
                {
                    tracing::warn!(jobs = group.len(), error = ?failure,
                                   "a batch was refused: splitting it");
                    report.splits += 1;
                    split(&mut group, &mut groups);
                }
                Err(TransactionFailure::Stopped(
                    BatchError::Refused(failure) | BatchError::Unavailable(failure),
                )) => every(failure, &group),
                // The runner retries conflicts and never stops on one; were it to, the jobs
                // would be tried again later.
                Err(TransactionFailure::Stopped(BatchError::Conflict(why))) => {
                    every(Attempt::Retryable(why), &group)
                }
                // Committed or not: if it was, the jobs are completed and the fenced failure
                // finds them so (a lost lease); if not, they are retried.
                Err(TransactionFailure::CommitUnknown(err)) => every(
                    Attempt::Retryable(format!("the commit's outcome is unknown: {err}")),
                    &group,
                ),
                Err(TransactionFailure::Exhausted {
                    attempts: tries, ..
                }) => {
                    report.conflicts += usize::try_from(tries).unwrap_or(0);
                    if group.len() > 1 {
                        report.splits += 1;
                        split(&mut group, &mut groups);
                    } else {
                        every(Attempt::Contended, &group);
                    }
                }
            }
        }
        for (i, claimed) in jobs.iter().enumerate() {
            if outcomes[i].is_none() {
                let attempt = attempts[i].take().unwrap_or(Attempt::Lost);
                outcomes[i] = Some(
                    self.store
                        .queue()
                        .settle(claimed, attempt, now, settings)
                        .await?,
                );
            }
        }
        report.outcomes = outcomes
            .into_iter()
            .map(|o| o.unwrap_or(JobOutcome::LostLease))
            .collect();
        Ok(report)
    }
}
