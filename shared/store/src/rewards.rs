//! Processing one claimed reward job (SPEC §6.3) in one transaction: load the buyer's whole
//! referral chain (one `$graphLookup`) and the level counts of every chain member's directs (one
//! `$group`), run the pure promotion and distribution rules, and apply the plan — every credit and
//! promotion in one `update` command, every reward entry in one `insert`, the purchase's log, and
//! the job's fenced completion — then commit. With its claim that is eight commands per job at any
//! depth of the chain.
//!
//! Exactly once: the payouts and the job's completion commit together, and the completion is
//! fenced by the claim token, so a worker that lost its lease aborts and pays nothing; a unique
//! index refuses a second payout of one kind to one recipient for one purchase all the same. If a
//! worker dies before the commit nothing happened, and the job is claimed again after its lease.

use std::collections::HashMap;
use std::time::Duration;

use mall_domain::{
    plan_rewards, ChainError, ChainMember, Level, LevelCounts, PayoutKind, ReferralChain,
    RewardPlan,
};
use mongodb::bson::{doc, oid::ObjectId, Bson, DateTime, Document};
use mongodb::error::Error;
use mongodb::options::{ReadConcern, WriteConcern};
use mongodb::ClientSession;
use serde::Deserialize;

use crate::checkout::TransactionRetry;
use crate::documents::{
    Pool, RewardEntryDoc, RewardsStatus, TransactionType, TreeDistributionDoc, REFERRAL_ACTIVE,
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
        let policy =
            job.payload.policy.resolve().map_err(|e| {
                ProcessError::Permanent(format!("the job's policy is invalid: {e}"))
            })?;

        if self.failpoints().is_armed(Failpoint::JobRetryableFailure) {
            return Err(ProcessError::Retryable(
                "injected failure (test failpoint)".into(),
            ));
        }
        let chain = self.load_chain(session, job.customer_id).await?;
        self.die_at(Failpoint::JobAfterChainLoaded)?;
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

        self.credit_and_promote(session, &plan, now).await?;
        self.die_at(Failpoint::JobAfterCredits)?;
        let entries = reward_entries(&plan, job.checkout_transaction_id, now);
        if !entries.is_empty() {
            self.reward_entries()
                .insert_many(entries)
                .session(&mut *session)
                .await?;
        }
        self.die_at(Failpoint::JobAfterEntries)?;

        let log = TreeDistributionDoc::from_plan(&plan, now);
        let log =
            mongodb::bson::to_bson(&log).map_err(|e| ProcessError::Permanent(e.to_string()))?;
        let purchase = self
            .database()
            .collection::<Document>(collections::TRANSACTIONS)
            .update_one(
                doc! {"_id": job.checkout_transaction_id, "type": "purchase",
                "rewardsStatus": rewards_status(RewardsStatus::Processing)},
                doc! {"$set": {
                    "treeDistribution": log,
                    "giftsPointsShare": plan.gifts_final.as_milli(),
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

        let completed = self
            .checkout_jobs()
            .update_one(
                claimed.fence(),
                doc! {
                    "$set": {"status": "completed", "completedAt": now,
                             "expiresAt": add(now, settings.retention)},
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
    async fn load_chain(
        &self,
        session: &mut ClientSession,
        buyer: ObjectId,
    ) -> Result<ReferralChain<ObjectId>, ProcessError> {
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
        ];
        let mut cursor = customers.aggregate(pipeline).session(&mut *session).await?;
        let found = cursor.next(&mut *session).await.transpose()?;
        drop(cursor);
        let Some(found) = found else {
            return Err(ProcessError::Permanent(format!(
                "the buyer {buyer} does not exist"
            )));
        };
        let chain: ChainDoc = mongodb::bson::from_document(found)
            .map_err(|e| ProcessError::Permanent(format!("corrupt customer data: {e}")))?;
        let at_the_bound =
            i64::try_from(chain.ancestors.len()).unwrap_or(i64::MAX) >= MAX_ANCESTORS;

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
                active: node.referral_status.as_deref() == Some(REFERRAL_ACTIVE),
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
        walk.map_err(|e| match e {
            ChainError::Cycle(id) => {
                ProcessError::Permanent(format!("the referral chain has a cycle through {id}"))
            }
            ChainError::UnknownBuyer(id) => {
                ProcessError::Permanent(format!("the buyer {id} does not exist"))
            }
        })
    }

    /// Every wallet credit and promotion of the plan in one `update` command.
    async fn credit_and_promote(
        &self,
        session: &mut ClientSession,
        plan: &RewardPlan<ObjectId>,
        now: DateTime,
    ) -> Result<(), ProcessError> {
        // Per customer, in chain order: a promotion, a credit, or both, merged into one update.
        let mut order: Vec<ObjectId> = Vec::new();
        let mut changes: HashMap<ObjectId, Document> = HashMap::new();
        let mut change = |id: ObjectId, operator: &str, field: Document| {
            changes
                .entry(id)
                .or_insert_with(|| {
                    order.push(id);
                    doc! {"$set": {"updatedAt": now}}
                })
                .insert(operator, field);
        };
        for promotion in &plan.promotions {
            // $max on the letter: levels never go down, even against a concurrent writer.
            change(
                promotion.id,
                "$max",
                doc! {"levelLetter": promotion.to.to_string()},
            );
        }
        for payout in &plan.payouts {
            change(payout.id, "$inc", doc! {"points": payout.amount.as_milli()});
        }
        if changes.is_empty() {
            return Ok(());
        }
        let expected = changes.len();
        let updates: Vec<Document> = order
            .iter()
            .filter_map(|id| changes.remove(id).map(|u| doc! {"q": {"_id": *id}, "u": u}))
            .collect();
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
            return Err(ProcessError::Retryable(format!(
                "{matched} of {expected} chain members could be credited"
            )));
        }
        Ok(())
    }
}

/// The `transactions` entries of a plan: one per payout, then the gifts and app pools. No entry
/// of amount 0 is written.
fn reward_entries(
    plan: &RewardPlan<ObjectId>,
    purchase: ObjectId,
    now: DateTime,
) -> Vec<RewardEntryDoc> {
    let entry = |kind, customer_id, pool, amount, level, shared_with| RewardEntryDoc {
        id: ObjectId::new(),
        kind,
        customer_id,
        pool,
        amount,
        related_transaction: purchase,
        level,
        shared_with,
        created_at: now,
    };
    let mut entries: Vec<RewardEntryDoc> = plan
        .payouts
        .iter()
        .map(|p| match p.kind {
            PayoutKind::Level => entry(
                TransactionType::TreeReward,
                Some(p.id),
                None,
                p.amount,
                Some(p.level),
                None,
            ),
            PayoutKind::Shared { members } => entry(
                TransactionType::TreeRewardShared,
                Some(p.id),
                None,
                p.amount,
                Some(p.level),
                Some(i32::try_from(members).unwrap_or(i32::MAX)),
            ),
        })
        .collect();
    for (kind, pool, amount) in [
        (TransactionType::GiftsReward, Pool::Gifts, plan.gifts_final),
        (TransactionType::AppReward, Pool::App, plan.app_final),
    ] {
        if !amount.is_zero() {
            entries.push(entry(kind, None, Some(pool), amount, None, None));
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
