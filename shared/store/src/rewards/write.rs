//! The batch's writes (step 3 of [`super`]): the turn first, then the planned jobs merged into
//! one command per collection — customers' credits and promotions, reward entries, purchases'
//! logs, the gifts pool — and the jobs' fenced completions. Every write is by `_id`, fenced by
//! the snapshot the load read (or by the claim in its filter), so nothing is paid twice.

use std::collections::HashMap;

use mall_domain::{DirectKind, GiftKind, JobTerms, MilliPoints, PayoutKind, RewardPlan};
use mongodb::bson::{doc, oid::ObjectId, DateTime, Document};
use mongodb::ClientSession;

use super::error::{BatchError, Unpayable};
use super::load::{ChainNode, Loaded};
use super::plan::PlannedJob;
use super::Rewards;
use crate::collections;
use crate::documents::{
    reference_of, CheckoutJobDoc, JobStatus, Pool, RewardEntryDoc, TransactionType,
    TreeDistributionDoc, TreeDistributionEntryDoc, CURRENCY, ENTRY_COMPLETED, SYSTEM_USER_EMAIL,
    SYSTEM_USER_NAME,
};
use crate::gifts_pool::PoolDocument;
use crate::queue::{purchase_mirror, Attempt, ClaimedJob, QueueSettings};

/// How a job's write is fenced by its claim.
#[derive(Clone, Copy)]
pub(super) enum Fenced {
    /// The transaction's snapshot showed the claim (and a later claim would conflict): the
    /// write is by `_id` alone.
    BySnapshot,
    /// The write's filter carries the claim token.
    ByFilter,
}

/// Everything a batch writes, merged.
#[derive(Default)]
pub(super) struct BatchWrites {
    customers: CustomerUpdates,
    /// Each customer's balance after the batch's credits so far (absent: not credited).
    pub(super) balances: HashMap<ObjectId, MilliPoints>,
    pub(super) entries: Vec<RewardEntryDoc>,
    purchases: Vec<Document>,
    /// Jobs to complete (indexes into the batch).
    pub(super) completed: Vec<usize>,
    /// The gifts pool's balance after the batch's jobs so far, when the batch keeps it.
    pub(super) pool: Option<MilliPoints>,
}

impl Rewards<'_> {
    /// Takes the batches' turn: one write to one small document, the transaction's first. A
    /// write conflict there means another batch's transaction holds it: [`BatchError::Busy`].
    pub(super) async fn take_turn(
        self,
        session: &mut ClientSession,
        now: DateTime,
    ) -> Result<(), BatchError> {
        let taken = self
            .store
            .database()
            .collection::<Document>(collections::REWARD_TURNS)
            .update_one(
                doc! {"_id": collections::BATCH_TURN_ID},
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
    pub(super) async fn log_purchases(
        self,
        session: &mut ClientSession,
        writes: &mut BatchWrites,
    ) -> Result<(), BatchError> {
        let statements = std::mem::take(&mut writes.purchases);
        if statements.is_empty() {
            return Ok(());
        }
        let expected = statements.len();
        let reply = self
            .store
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
    pub(super) async fn complete_jobs(
        self,
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
            .store
            .checkout_jobs()
            .update_many(filter, crate::queue::completion(now, settings.retention))
            .session(&mut *session)
            .await?;
        if usize::try_from(done.matched_count).ok() != Some(completed.len()) {
            return Err(BatchError::LostLease);
        }
        Ok(())
    }

    /// The gifts pool's new balance and how far it counted others' entries, in the batch's
    /// transaction: two batches that move it conflict, and one of them plans again on the
    /// other's balance, so no concurrency can overdraw it.
    pub(super) async fn keep_gifts_pool(
        self,
        session: &mut ClientSession,
        pool: &PoolDocument,
        built: bool,
        now: DateTime,
    ) -> Result<(), BatchError> {
        let mut set = pool
            .fields()
            .map_err(|e| BatchError::Refused(Attempt::Retryable(e.to_string())))?;
        set.insert("updatedAt", now);
        if built {
            set.insert("builtAt", now);
        }
        self.store
            .database()
            .collection::<Document>(collections::REWARD_POOLS)
            .update_one(doc! {"_id": collections::GIFTS_POOL_ID}, doc! {"$set": set})
            .upsert(true)
            .session(&mut *session)
            .await?;
        Ok(())
    }

    /// Every customer's merged write of the batch in one `update` command: a promotion (`$max`
    /// on the letter, so levels never go down), a touch of a promoted customer's parent, and a
    /// credit, which sets the exact new balance conditional on the balance the load read.
    pub(super) async fn credit_and_promote(
        self,
        session: &mut ClientSession,
        writes: &mut BatchWrites,
    ) -> Result<(), BatchError> {
        let updates = std::mem::take(&mut writes.customers).into_statements();
        if updates.is_empty() {
            return Ok(());
        }
        let expected = updates.len();
        let reply = self
            .store
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

impl BatchWrites {
    /// Adds a planned job's writes: its promotions (and their parents), its credits, its
    /// entries and its purchase's log.
    pub(super) fn add(
        &mut self,
        planned: &PlannedJob,
        job: &CheckoutJobDoc,
        loaded: &Loaded,
        now: DateTime,
    ) -> Result<(), Unpayable> {
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
            let written = crate::amount::to_bson(*balance)?;
            // The new balance from the balance this snapshot read: anyone writing the wallet
            // since makes this write conflict, and the batch reads it again.
            let update = self.customers.of(*id, now);
            if let Ok(set) = update.get_document_mut("$set") {
                set.insert("points", written);
            }
            self.balances.insert(*id, *balance);
        }
        if let Some(pool) = self.pool {
            self.pool = Some(plan.pool_after(pool)?);
        }
        let today = matches!(planned.terms, JobTerms::Today(_));
        self.entries
            .extend(reward_entries(plan, today, job, &loaded.nodes, now));
        let log = TreeDistributionDoc::from_plan(plan, planned.terms.rules(), now);
        let log = mongodb::bson::to_bson(&log)?;
        let distribution = mongodb::bson::to_bson(&tree_distribution(plan, &loaded.nodes))?;
        let gifts_final = crate::amount::to_bson(plan.gifts_final)?;
        let mut set = purchase_mirror(JobStatus::Completed, now);
        set.insert("treeDistribution", distribution);
        set.insert("rewardLog", log);
        set.insert("giftsPointsShare", gifts_final);
        if let JobTerms::Today(_) = planned.terms {
            // As the app's reports read it: the final app amount (with the unused tree points).
            set.insert("appPointsShare", crate::amount::to_bson(plan.app_final)?);
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

/// The `transactions` entries of a plan, as the app's worker of the job's economy writes them
/// (`today`: the app's current worker; else the seed era's), its descriptions and user names,
/// plus the purchase they belong to: one per payout, then the gifts and app pools. No entry of
/// amount 0.
fn reward_entries(
    plan: &RewardPlan<ObjectId>,
    today: bool,
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
                    if today {
                        // The app's current worker rounds each payout to cents and says so;
                        // ours are exact, in the words customers know.
                        format!("Tree reward - Level {} (Rounded)", p.level)
                    } else {
                        format!("Tree reward - Level {}", p.level)
                    },
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
                    if today {
                        format!("Tree reward - Level {} shared ({members} users)", p.level)
                    } else {
                        format!("Tree reward - Level {} shared ({members})", p.level)
                    },
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
