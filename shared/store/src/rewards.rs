//! Processing one claimed reward job (SPEC §6.3) in one transaction: load the buyer's whole
//! referral chain (one `$graphLookup`) and the level counts of every chain member's directs (one
//! `$group`), run the pure promotion and distribution rules, and apply the plan — every credit and
//! promotion in one `update` command, every reward entry in one `insert`, the purchase's log, and
//! the job's fenced completion — then commit. With its claim that is eight commands per job at any
//! depth of the chain.
//!
//! Wallets are points as the app stores them (Int32 or Double). A credit is never a server-side
//! `$inc` of a Double: each recipient's new balance is computed exactly from the balance the chain
//! load read inside this transaction, and written with a compare-and-set on that value. Entries,
//! the purchase's `treeDistribution` and its pools are written in the app's shapes.
//!
//! Exactly once: the payouts and the job's completion commit together, and the completion is
//! fenced by the claim token, so a worker that lost its lease aborts and pays nothing; a unique
//! index refuses a second payout of one kind to one recipient for one purchase all the same. If a
//! worker dies before the commit nothing happened, and the job is claimed again after its lease.

use std::collections::HashMap;
use std::time::Duration;

use mall_domain::{
    plan_rewards, ChainError, ChainMember, Level, LevelCounts, MilliPoints, PayoutKind,
    ReferralChain, RewardPlan,
};
use mongodb::bson::{doc, oid::ObjectId, Bson, DateTime, Document};
use mongodb::error::Error;
use mongodb::options::{ReadConcern, WriteConcern};
use mongodb::ClientSession;
use serde::Deserialize;

use crate::checkout::TransactionRetry;
use crate::documents::{
    reference_of, CheckoutJobDoc, Pool, RewardEntryDoc, RewardsStatus, TransactionType,
    TreeDistributionDoc, TreeDistributionEntryDoc, CURRENCY, ENTRY_COMPLETED, REFERRAL_ACTIVE,
    SYSTEM_USER_EMAIL, SYSTEM_USER_NAME,
};
use crate::error::StoreError;
use crate::failpoints::Failpoint;
use crate::queue::{add, rewards_status, ClaimedJob, FailureOutcome, JobFailure, QueueSettings};
use crate::store::collections;
use crate::Store;

/// The most ancestors a buyer's chain may have; a longer one fails its job rather than paying a
/// chain cut short.
pub const MAX_ANCESTORS: i64 = 10_000;

/// What became of one claimed job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobOutcome {
    Completed,
    /// Failed this time; back to `pending`, due at `run_after`.
    Retried {
        run_after: DateTime,
    },
    /// Dead (`failed`): out of attempts, or a permanent error.
    Failed,
    /// The claim was taken over by another worker: this worker wrote nothing.
    LostLease,
    /// This worker "died" mid-job (a test failpoint): it wrote nothing and left the job to be
    /// claimed again after its lease.
    Abandoned,
}

/// How one attempt of the job's transaction failed.
enum ProcessError {
    /// Retrying cannot fix it (missing buyer or purchase, a cycle, corrupt data).
    Permanent(String),
    /// A later attempt may succeed.
    Retryable(String),
    /// The fence failed: the claim is no longer ours.
    LostLease,
    /// A database error; a write conflict is retried inside this claim.
    Database(Error),
    /// A test failpoint simulated a crash.
    Died,
    /// A wallet changed between the chain load and the credit: retried inside this claim.
    WalletChanged,
}

impl From<Error> for ProcessError {
    fn from(err: Error) -> Self {
        ProcessError::Database(err)
    }
}

/// A customer as the chain query returns it; lenient about legacy documents.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChainNode {
    #[serde(rename = "_id")]
    id: ObjectId,
    /// The wallet exactly as stored: a credit's compare-and-set matches this value.
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

#[derive(Deserialize)]
struct ChainDoc {
    #[serde(flatten)]
    buyer: ChainNode,
    #[serde(default)]
    ancestors: Vec<ChainNode>,
    /// The job's purchase, read in the same aggregation.
    #[serde(default, rename = "jobPurchase")]
    purchase: Vec<PurchaseRecord>,
}

/// What the job's purchase says about its rewards.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PurchaseRecord {
    #[serde(default)]
    rewards_status: Option<String>,
    /// Lines of the app's payout list (the original's purchases have no status of ours).
    #[serde(default)]
    paid_lines: i64,
    /// Our distribution log is there: we paid it.
    #[serde(default)]
    logged: bool,
}

/// Whether the job still has to be applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PurchaseState {
    /// Not paid yet: apply the plan.
    Open,
    /// Already paid (its job completed before, and was put back to `pending` by hand): complete
    /// the job and change nothing else.
    Applied,
    Missing,
}

impl PurchaseState {
    /// Whatever its status says: a purchase with payout lines or our log was paid, and so was
    /// the original's purchase whose (original) job had completed — even with no tree payout.
    fn of(records: &[PurchaseRecord], job: &CheckoutJobDoc) -> Self {
        match records.first() {
            None => PurchaseState::Missing,
            Some(p)
                if p.rewards_status.as_deref() == Some("completed")
                    || p.paid_lines > 0
                    || p.logged
                    || (job.is_legacy() && job.completed_at.is_some()) =>
            {
                PurchaseState::Applied
            }
            Some(_) => PurchaseState::Open,
        }
    }
}

/// The purchase's state as the chain load reads it: `$lookup` stages that project it.
fn purchase_projection() -> Document {
    doc! {"_id": 0, "rewardsStatus": 1,
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

#[derive(Deserialize)]
struct DirectCounts {
    #[serde(default)]
    counts: Vec<DirectCount>,
}

fn level_of(letter: Option<&str>) -> Result<Level, ProcessError> {
    match letter {
        None => Ok(Level::A),
        Some(text) => text
            .parse()
            .map_err(|e| ProcessError::Permanent(format!("corrupt customer data: {e}"))),
    }
}

impl Store {
    /// Processes a claimed job to its outcome: completed, retried later, dead, or left alone
    /// because the claim was lost. `Err` only when the database could not even record a failure
    /// (the job's lease then expires and another worker takes it).
    pub async fn process_claimed(
        &self,
        claimed: &ClaimedJob,
        now: DateTime,
        settings: &QueueSettings,
    ) -> Result<JobOutcome, StoreError> {
        if claimed.attempt() > claimed.job.max_attempts {
            // A job paid on its last attempt and put back to `pending` by hand: it is done.
            if self.already_applied(&claimed.job).await? {
                return self.complete_applied(claimed, now, settings).await;
            }
            // Reclaimed after a worker died on its last attempt: the attempts are spent.
            let failure = JobFailure::retryable("the worker's lease expired on the last attempt");
            return self.finish_failed(claimed, &failure, now, settings).await;
        }
        let retry = TransactionRetry::background();
        let mut last_conflict = String::new();
        for attempt in 1..=retry.max_attempts {
            let mut session = self.client().start_session().await?;
            session
                .start_transaction()
                .read_concern(ReadConcern::snapshot())
                .write_concern(WriteConcern::majority())
                .await?;
            let result = match self.apply_job(&mut session, claimed, now, settings).await {
                Ok(()) => commit(&mut session).await,
                Err(ProcessError::Died) => return Ok(JobOutcome::Abandoned),
                Err(err) => {
                    let _ = session.abort_transaction().await;
                    Err(err)
                }
            };
            let failure = match result {
                Ok(()) => return Ok(JobOutcome::Completed),
                Err(ProcessError::LostLease) => return Ok(JobOutcome::LostLease),
                Err(ProcessError::Died) => return Ok(JobOutcome::Abandoned),
                Err(ProcessError::Permanent(message)) => JobFailure::permanent(message),
                Err(ProcessError::Retryable(message)) => JobFailure::retryable(message),
                Err(ProcessError::Database(err))
                    if err.contains_label(mongodb::error::TRANSIENT_TRANSACTION_ERROR) =>
                {
                    last_conflict = err.to_string();
                    tokio::time::sleep(retry.backoff(attempt)).await;
                    continue;
                }
                Err(ProcessError::WalletChanged) => {
                    last_conflict = "a wallet changed under the job".into();
                    tokio::time::sleep(retry.backoff(attempt)).await;
                    continue;
                }
                Err(ProcessError::Database(err)) => JobFailure::retryable(err.to_string()),
            };
            return self.finish_failed(claimed, &failure, now, settings).await;
        }
        tracing::info!(job_id = %claimed.job.id, conflict = %last_conflict,
                       "reward job released: its customers are busy");
        Ok(match self.release_contended(claimed, now).await? {
            FailureOutcome::Retried { run_after } => JobOutcome::Retried { run_after },
            FailureOutcome::Failed => JobOutcome::Failed,
            FailureOutcome::LostLease => JobOutcome::LostLease,
        })
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
        Ok(PurchaseState::of(&records, job) == PurchaseState::Applied)
    }

    /// Completes a job whose purchase was already paid, fenced, changing nothing else.
    async fn complete_applied(
        &self,
        claimed: &ClaimedJob,
        now: DateTime,
        settings: &QueueSettings,
    ) -> Result<JobOutcome, StoreError> {
        tracing::warn!(job_id = %claimed.job.id, "the job was already applied; completing it");
        let mut session = self.client().start_session().await?;
        session
            .start_transaction()
            .write_concern(WriteConcern::majority())
            .await?;
        match self
            .complete_job(&mut session, claimed, now, settings)
            .await
        {
            Ok(()) => {
                session.commit_transaction().await?;
                Ok(JobOutcome::Completed)
            }
            Err(error) => {
                let _ = session.abort_transaction().await;
                Ok(match error {
                    ProcessError::Database(err) => return Err(err.into()),
                    _ => JobOutcome::LostLease,
                })
            }
        }
    }

    async fn finish_failed(
        &self,
        claimed: &ClaimedJob,
        failure: &JobFailure,
        now: DateTime,
        settings: &QueueSettings,
    ) -> Result<JobOutcome, StoreError> {
        tracing::warn!(
            job_id = %claimed.job.id,
            attempt = claimed.attempt(),
            kind = ?failure.kind,
            error = %failure.message,
            "reward job attempt failed"
        );
        Ok(
            match self
                .record_failure(claimed, failure, now, &settings.retry)
                .await?
            {
                FailureOutcome::Retried { run_after } => JobOutcome::Retried { run_after },
                FailureOutcome::Failed => JobOutcome::Failed,
                FailureOutcome::LostLease => JobOutcome::LostLease,
            },
        )
    }

    async fn apply_job(
        &self,
        session: &mut ClientSession,
        claimed: &ClaimedJob,
        now: DateTime,
        settings: &QueueSettings,
    ) -> Result<(), ProcessError> {
        let job = &claimed.job;
        let policy = job
            .payload
            .paying_policy()
            .map_err(ProcessError::Permanent)?;

        if self.failpoints().is_armed(Failpoint::JobRetryableFailure) {
            return Err(ProcessError::Retryable(
                "injected failure (test failpoint)".into(),
            ));
        }
        let (chain, members, purchase) = self.load_chain(session, job).await?;
        self.die_at(Failpoint::JobAfterChainLoaded)?;
        match purchase {
            PurchaseState::Open => {}
            PurchaseState::Applied => {
                // Paid before: payouts and completion commit together, so the purchase says so.
                tracing::warn!(job_id = %job.id, "the job was already applied; completing it");
                return self.complete_job(session, claimed, now, settings).await;
            }
            PurchaseState::Missing => {
                return Err(ProcessError::Permanent(format!(
                    "the purchase {} does not exist",
                    job.checkout_transaction_id
                )))
            }
        }
        let plan = plan_rewards(&policy, job.payload.reward_points, &chain)
            .map_err(|e| ProcessError::Permanent(e.to_string()))?;
        if !plan.conserves() {
            return Err(ProcessError::Permanent(
                "the reward plan does not add up to R".into(),
            ));
        }
        if let mall_domain::ChainEnd::MissingParent(parent) = &plan.chain_end {
            tracing::warn!(job_id = %job.id, %parent, "the referral chain ends at a missing parent");
        }

        self.credit_and_promote(session, &plan, &members, now)
            .await?;
        self.die_at(Failpoint::JobAfterCredits)?;
        let entries = reward_entries(&plan, job, &members, now);
        if !entries.is_empty() {
            self.reward_entries()
                .insert_many(entries)
                .session(&mut *session)
                .await?;
        }
        self.die_at(Failpoint::JobAfterEntries)?;

        let permanent = |e: String| ProcessError::Permanent(e);
        let log = TreeDistributionDoc::from_plan(&plan, &policy, now);
        let log = mongodb::bson::to_bson(&log).map_err(|e| permanent(e.to_string()))?;
        let distribution = mongodb::bson::to_bson(&tree_distribution(&plan, &members))
            .map_err(|e| permanent(e.to_string()))?;
        let gifts_final =
            crate::amount::to_bson(plan.gifts_final).map_err(|e| permanent(e.to_string()))?;
        let purchase = self
            .database()
            .collection::<Document>(collections::TRANSACTIONS)
            .update_one(
                // Ours are `processing`; the original's carry no status and an empty list
                // until paid, so one it already paid can never be paid again.
                doc! {"_id": job.checkout_transaction_id, "type": "purchase",
                "treeDistribution.0": {"$exists": false}, "rewardLog": {"$exists": false},
                "$or": [
                    {"rewardsStatus": rewards_status(RewardsStatus::Processing)},
                    {"rewardsStatus": {"$exists": false}},
                ]},
                doc! {"$set": {
                    "treeDistribution": distribution,
                    "rewardLog": log,
                    "giftsPointsShare": gifts_final,
                    "rewardsStatus": rewards_status(RewardsStatus::Completed),
                    "updatedAt": now,
                }},
            )
            .session(&mut *session)
            .await?;
        if purchase.matched_count == 0 {
            return Err(ProcessError::Permanent(
                "the purchase is missing or its rewards are not in processing".into(),
            ));
        }
        self.die_at(Failpoint::JobBeforeCompletion)?;
        self.complete_job(session, claimed, now, settings).await
    }

    /// The job's fenced completion, inside the job's transaction.
    async fn complete_job(
        &self,
        session: &mut ClientSession,
        claimed: &ClaimedJob,
        now: DateTime,
        settings: &QueueSettings,
    ) -> Result<(), ProcessError> {
        let completed = self
            .checkout_jobs()
            .update_one(
                claimed.fence(),
                doc! {
                    "$set": {"status": "completed", "completedAt": now, "processedAt": now,
                             "updatedAt": now, "expiresAt": add(now, settings.retention)},
                    "$unset": {"claimToken": "", "leaseUntil": ""},
                },
            )
            .session(&mut *session)
            .await?;
        if completed.matched_count == 0 {
            return Err(ProcessError::LostLease);
        }
        self.die_at(Failpoint::JobBeforeCommit)?;
        Ok(())
    }

    fn die_at(&self, point: Failpoint) -> Result<(), ProcessError> {
        if self.failpoints().is_armed(point) {
            return Err(ProcessError::Died);
        }
        Ok(())
    }

    /// The buyer and all its ancestors with their directs' level counts: two aggregations.
    ///
    /// The walk is bounded explicitly by [`MAX_ANCESTORS`]: mongod's `$graphLookup` has no depth
    /// limit unless told, but a server may set its own (SecantusDB stops at 101 ancestors), and a
    /// chain cut short would pay the wrong people. A chain that reaches the bound is refused.
    #[allow(clippy::type_complexity)]
    async fn load_chain(
        &self,
        session: &mut ClientSession,
        job: &CheckoutJobDoc,
    ) -> Result<
        (
            ReferralChain<ObjectId>,
            HashMap<ObjectId, ChainNode>,
            PurchaseState,
        ),
        ProcessError,
    > {
        let (buyer, purchase) = (job.customer_id, job.checkout_transaction_id);
        let customers = self
            .database()
            .collection::<Document>(collections::CUSTOMERS);
        let pipeline = vec![
            doc! {"$match": {"_id": buyer}},
            doc! {"$graphLookup": {
                "from": collections::CUSTOMERS,
                "startWith": "$parentCustomer",
                "connectFromField": "parentCustomer",
                "connectToField": "_id",
                "as": "ancestors",
                "maxDepth": MAX_ANCESTORS - 1,
            }},
            // The purchase's state in the same round trip: a job already applied pays nothing.
            doc! {"$lookup": {
                "from": collections::TRANSACTIONS,
                "pipeline": [
                    {"$match": {"_id": purchase, "type": "purchase"}},
                    {"$project": purchase_projection()},
                ],
                "as": "jobPurchase",
            }},
        ];
        let mut cursor = customers.aggregate(pipeline).session(&mut *session).await?;
        let found = cursor.next(&mut *session).await.transpose()?;
        drop(cursor);
        let Some(found) = found else {
            return Err(ProcessError::Permanent(format!(
                "the buyer {buyer} does not exist"
            )));
        };
        let chain: ChainDoc = crate::documents::read_document(found)
            .map_err(|e| ProcessError::Permanent(format!("corrupt customer data: {e}")))?;
        let at_the_bound =
            i64::try_from(chain.ancestors.len()).unwrap_or(i64::MAX) >= MAX_ANCESTORS;
        let purchase_state = PurchaseState::of(&chain.purchase, job);

        let mut nodes: HashMap<ObjectId, ChainNode> = HashMap::new();
        for node in std::iter::once(chain.buyer).chain(chain.ancestors) {
            nodes.insert(node.id, node);
        }
        let ids: Vec<ObjectId> = nodes.keys().copied().collect();
        let pipeline = vec![
            doc! {"$match": {"parentCustomer": {"$in": ids}}},
            doc! {"$group": {
                "_id": {"p": "$parentCustomer", "l": {"$ifNull": ["$levelLetter", "A"]}},
                "n": {"$sum": 1},
            }},
            // One document whatever the chain's length, so one batch and no getMore.
            doc! {"$group": {"_id": Bson::Null, "counts": {"$push": {"p": "$_id.p", "l": "$_id.l", "n": "$n"}}}},
        ];
        let mut cursor = customers.aggregate(pipeline).session(&mut *session).await?;
        let found = cursor.next(&mut *session).await.transpose()?;
        drop(cursor);
        let counts: Vec<DirectCount> = match found {
            Some(found) => {
                mongodb::bson::from_document::<DirectCounts>(found)
                    .map_err(|e| ProcessError::Permanent(format!("corrupt customer data: {e}")))?
                    .counts
            }
            None => vec![],
        };
        let mut directs: HashMap<ObjectId, LevelCounts> = HashMap::new();
        for count in counts {
            let level = level_of(Some(&count.l))?;
            let n = u64::try_from(count.n).unwrap_or(0);
            directs.entry(count.p).or_default().add(level, n);
        }

        let mut bad_level = None;
        let walk = ReferralChain::walk(&buyer, |id| {
            let node = nodes.get(id)?;
            let level = match level_of(node.level_letter.as_deref()) {
                Ok(level) => level,
                Err(err) => {
                    bad_level = Some(err);
                    Level::A
                }
            };
            Some(ChainMember {
                id: node.id,
                parent: node.parent_customer,
                level,
                // Missing means the app's default, `active`.
                active: node.referral_status.as_deref().unwrap_or(REFERRAL_ACTIVE)
                    == REFERRAL_ACTIVE,
                verified: node.is_verified == Some(true),
                directs: directs.get(id).copied().unwrap_or_default(),
            })
        });
        if let Some(err) = bad_level {
            return Err(err);
        }
        if let Ok(walked) = &walk {
            if at_the_bound && matches!(walked.end(), mall_domain::ChainEnd::MissingParent(_)) {
                return Err(ProcessError::Permanent(format!(
                    "the referral chain is longer than {MAX_ANCESTORS} ancestors"
                )));
            }
        }
        let chain = walk.map_err(|e| match e {
            ChainError::Cycle(id) => {
                ProcessError::Permanent(format!("the referral chain has a cycle through {id}"))
            }
            ChainError::UnknownBuyer(id) => {
                ProcessError::Permanent(format!("the buyer {id} does not exist"))
            }
        })?;
        Ok((chain, nodes, purchase_state))
    }

    /// Every wallet credit and promotion of the plan in one `update` command. A credit sets the
    /// exact new balance, conditional on the balance the chain load read.
    async fn credit_and_promote(
        &self,
        session: &mut ClientSession,
        plan: &RewardPlan<ObjectId>,
        members: &HashMap<ObjectId, ChainNode>,
        now: DateTime,
    ) -> Result<(), ProcessError> {
        // Per customer, in chain order: a promotion, a credit, or both, merged into one update.
        let mut updates = CustomerUpdates::default();
        for promotion in &plan.promotions {
            // $max on the letter: levels never go down, even against a concurrent writer.
            let (_, update) = updates.of(promotion.id, now);
            update.insert("$max", doc! {"levelLetter": promotion.to.to_string()});
            // The parent's promotion depends on this customer's level: writing the parent too
            // makes two jobs that promote siblings conflict, so one re-reads the other's
            // promotion and the result is that of a serial order (never a promotion lost).
            if let Some(parent) = members
                .get(&promotion.id)
                .and_then(|m| m.parent_customer)
                .filter(|p| members.contains_key(p))
            {
                updates.of(parent, now);
            }
        }
        let mut credits: HashMap<ObjectId, MilliPoints> = HashMap::new();
        for payout in &plan.payouts {
            let credit = credits.entry(payout.id).or_default();
            *credit = credit
                .checked_add(payout.amount)
                .map_err(|e| ProcessError::Permanent(e.to_string()))?;
        }
        for payout in &plan.payouts {
            let Some(credit) = credits.remove(&payout.id) else {
                continue;
            };
            let node = members.get(&payout.id).ok_or_else(|| {
                ProcessError::Permanent(format!("customer {} left the chain", payout.id))
            })?;
            let unreadable =
                |e: String| ProcessError::Permanent(format!("customer {}: points: {e}", node.id));
            let balance = crate::amount::wallet_or_default(&node.points)
                .map_err(|e| unreadable(e.to_string()))?;
            let new_balance = balance
                .checked_add(credit)
                .map_err(|e| unreadable(e.to_string()))?;
            let new_balance =
                crate::amount::to_bson(new_balance).map_err(|e| unreadable(e.to_string()))?;
            let (filter, update) = updates.of(payout.id, now);
            filter.insert("points", node.points.clone());
            if let Ok(set) = update.get_document_mut("$set") {
                set.insert("points", new_balance);
            }
        }
        let updates = updates.into_statements();
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
                return Err(ProcessError::Retryable(format!(
                    "crediting the chain failed: {errors:?}"
                )));
            }
        }
        let matched = crate::documents::number(&reply, "n").unwrap_or(0);
        if usize::try_from(matched).ok() != Some(expected) {
            // A wallet no longer holds what we read (or its customer is gone): read again.
            return Err(ProcessError::WalletChanged);
        }
        Ok(())
    }
}

/// One update statement per customer, in the order customers were first touched.
#[derive(Default)]
struct CustomerUpdates {
    order: Vec<ObjectId>,
    by_customer: HashMap<ObjectId, (Document, Document)>,
}

impl CustomerUpdates {
    /// The customer's `(filter, update)`, created on first use.
    fn of(&mut self, id: ObjectId, now: DateTime) -> &mut (Document, Document) {
        self.by_customer.entry(id).or_insert_with(|| {
            self.order.push(id);
            (doc! {"_id": id}, doc! {"$set": {"updatedAt": now}})
        })
    }

    fn into_statements(mut self) -> Vec<Document> {
        self.order
            .iter()
            .filter_map(|id| {
                self.by_customer
                    .remove(id)
                    .map(|(q, u)| doc! {"q": q, "u": u})
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
    let system = || (SYSTEM_USER_NAME.to_owned(), SYSTEM_USER_EMAIL.to_owned());
    for (kind, pool, amount, description) in [
        (
            TransactionType::GiftsReward,
            Pool::Gifts,
            plan.gifts_final,
            "Gifts points from checkout",
        ),
        (
            TransactionType::AppReward,
            Pool::App,
            plan.app_final,
            "App revenue points from checkout",
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

async fn commit(session: &mut ClientSession) -> Result<(), ProcessError> {
    for _ in 0..3 {
        match session.commit_transaction().await {
            Ok(()) => return Ok(()),
            Err(err) if err.contains_label(mongodb::error::UNKNOWN_TRANSACTION_COMMIT_RESULT) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(err) => return Err(ProcessError::Database(err)),
        }
    }
    Err(ProcessError::Retryable(
        "the commit's outcome stayed unknown".into(),
    ))
}
