//! The batch's reads (step 1 of [`super`]): every buyer's chain, the levels of the chain
//! members' directs, each job's purchase and fence, the gifts pool and, for the app's own
//! current jobs, the settings and the buyers' earlier purchases — in one aggregation of the
//! batch's snapshot, plus one round trip a level only when the learned parent links missed a
//! member. Reads only; nothing here writes.

use std::collections::{HashMap, HashSet};

use mall_domain::level::ParseLevelError;
use mall_domain::{ForestView, Level, LevelCounts, MilliPoints, ViewMember};
use mongodb::bson::{doc, oid::ObjectId, Bson, DateTime, Document};
use mongodb::ClientSession;
use serde::Deserialize;

use super::error::BatchError;
use super::Rewards;
use crate::chains::walk_chains;
use crate::collections;
use crate::documents::{
    CheckoutJobDoc, JobEra, PurchaseOrder, RewardsStatus, TransactionType, ENTRY_COMPLETED,
    REFERRAL_ACTIVE,
};
use crate::error::StoreError;
use crate::failpoints::Failpoint;
use crate::gifts_pool::{ForeignEntry, PoolDocument, PoolError};
use crate::queue::{Attempt, ClaimedJob};

/// A customer as the chain query returns it; lenient about legacy documents.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ChainNode {
    #[serde(rename = "_id")]
    pub(super) id: ObjectId,
    /// The wallet exactly as stored.
    #[serde(default)]
    pub(super) points: Bson,
    #[serde(default)]
    pub(super) username: String,
    #[serde(default)]
    pub(super) email: String,
    #[serde(default)]
    pub(super) parent_customer: Option<ObjectId>,
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
    /// The completed pool entries others wrote above the pool document's `through`.
    #[serde(default, rename = "poolForeign")]
    pool_foreign: Vec<Document>,
    /// The admin's settings (only when the batch holds jobs of the app's own current checkout).
    #[serde(default)]
    settings: Vec<Document>,
    /// The earliest completed purchase of each buyer of those jobs (`{_id: buyer, earliest}`).
    #[serde(default, rename = "buyerPurchases")]
    buyer_purchases: Vec<BuyerPurchases>,
}

/// A buyer's earliest completed purchase (the first-purchase rule's order).
#[derive(Deserialize)]
pub(super) struct BuyerPurchases {
    #[serde(rename = "_id")]
    buyer: ObjectId,
    pub(super) earliest: PurchaseOrder,
}

/// Who holds a job, as the snapshot has it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct JobFence {
    #[serde(rename = "_id")]
    id: ObjectId,
    #[serde(default)]
    pub(super) status: Option<String>,
    #[serde(default)]
    pub(super) claim_token: Option<ObjectId>,
}

/// What a purchase says about its rewards.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PurchaseRecord {
    #[serde(rename = "_id")]
    id: ObjectId,
    /// `purchase`; an id of any other transaction is no purchase.
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    rewards_status: Option<String>,
    /// When it was created (the first-purchase rule's order).
    #[serde(default)]
    pub(super) created_at: Option<mongodb::bson::DateTime>,
    /// Lines of the app's payout list (the original's purchases have no status of ours).
    #[serde(default)]
    paid_lines: i64,
    /// Our distribution log is there: we paid it.
    #[serde(default)]
    pub(super) logged: bool,
}

/// Whether a job still has to be applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum PurchaseState {
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
    pub(super) fn of(record: Option<&PurchaseRecord>, job: &CheckoutJobDoc) -> Self {
        match record.filter(|p| p.kind.as_deref() == Some(TransactionType::Purchase.as_str())) {
            None => PurchaseState::Missing,
            Some(p)
                if p.rewards_status.as_deref() == Some(RewardsStatus::Completed.as_str())
                    || p.paid_lines > 0
                    || p.logged
                    || (job.is_legacy() && job.completed_at.is_some()) =>
            {
                PurchaseState::Applied
            }
            Some(p) => match p.rewards_status.as_deref() {
                None => PurchaseState::Open,
                Some(word) => match RewardsStatus::parse(word) {
                    Some(RewardsStatus::Processing) => PurchaseState::Open,
                    _ => PurchaseState::Closed(word.to_owned()),
                },
            },
        }
    }
}

/// The purchase's state as the loads read it: `$lookup` and `$project` stages that project it.
fn purchase_projection() -> Document {
    doc! {"_id": 1, "type": 1, "rewardsStatus": 1, "createdAt": 1,
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

fn level_of(letter: Option<&str>) -> Result<Level, ParseLevelError> {
    letter.map_or(Ok(Level::A), str::parse)
}

/// What the batch's transaction read: the view the rules plan on, the customers as stored, and
/// the purchases' states.
pub(super) struct Loaded {
    pub(super) view: ForestView<ObjectId>,
    pub(super) nodes: HashMap<ObjectId, ChainNode>,
    /// Customers whose level letter cannot be read: a job whose chain meets one fails alone.
    pub(super) corrupt: HashMap<ObjectId, ParseLevelError>,
    pub(super) purchases: HashMap<ObjectId, PurchaseRecord>,
    /// Each job's holder (status, claim token) in this transaction's snapshot.
    pub(super) fences: HashMap<ObjectId, JobFence>,
    /// The gifts pool's document: `Ok(None)` when there is none, or one an earlier version
    /// wrote (which counted no entry of others: the pool is counted from the ledger again).
    pub(super) pool: Result<Option<PoolDocument>, PoolError>,
    /// A gifts pool document exists (of this version or an earlier one).
    pub(super) pool_exists: bool,
    /// The completed pool entries others wrote above the pool document's `through`, read for
    /// a batch whose jobs may spend the pool (none otherwise).
    pub(super) pool_foreign: Option<Result<Vec<ForeignEntry>, PoolError>>,
    /// The admin's settings now (for the app's own current jobs).
    pub(super) settings: crate::settings::SettingsReading,
    /// The earliest completed purchase of each buyer of the app's own current jobs.
    pub(super) buyer_purchases: HashMap<ObjectId, BuyerPurchases>,
}

impl Rewards<'_> {
    /// Whether the job's purchase was paid already (read outside any transaction: only on the
    /// rare path of a job reclaimed past its attempts).
    pub(super) async fn already_applied(self, job: &CheckoutJobDoc) -> Result<bool, StoreError> {
        use futures_util::TryStreamExt;
        let records: Vec<Document> = self
            .store
            .database()
            .collection::<Document>(collections::TRANSACTIONS)
            .aggregate(vec![
                doc! {"$match": {"_id": job.checkout_transaction_id, "type": TransactionType::Purchase}},
                doc! {"$project": purchase_projection()},
            ])
            .await?
            .try_collect()
            .await?;
        let records: Vec<PurchaseRecord> = records
            .into_iter()
            .map(crate::documents::read_document)
            .collect::<Result<_, _>>()?;
        Ok(PurchaseState::of(records.first(), job) == PurchaseState::Applied)
    }

    /// Every buyer's chain, the level counts of every loaded customer's directs, every job's
    /// purchase and fence, and the gifts pool, in one aggregation: the chains are read by `_id`
    /// as the environment's parent links name them ([`crate::chains`]), then confirmed against
    /// the parents this snapshot holds (a member the links missed is read in one more round trip
    /// a level).
    ///
    /// The walk is bounded explicitly by [`MAX_ANCESTORS`]: a chain cut short would pay the wrong
    /// people, so one more step is followed and a job whose chain is longer fails.
    pub(super) async fn load_batch(
        self,
        session: &mut ClientSession,
        jobs: &[ClaimedJob],
        group: &[usize],
    ) -> Result<Loaded, BatchError> {
        if self.store.failpoints().is_armed(Failpoint::JobSlowLoad) {
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
            .store
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
            "jobIds": {"$literal": &job_ids}, "poolIds": [collections::GIFTS_POOL_ID]}},
            doc! {"$lookup": {
                "from": collections::REWARD_POOLS,
                "localField": "poolIds", "foreignField": "_id",
                "as": "pool",
            }},
        ]);
        // What others wrote to the pool since its document last counted (crate::gifts_pool),
        // for a batch whose jobs may spend it: others pay only from then on.
        let spends = group
            .iter()
            .any(|&i| jobs[i].job.payload.era().spends_gifts_pool());
        if spends {
            pipeline.extend(crate::gifts_pool::lookup_foreign_entries("poolForeign"));
        }
        pipeline.extend([
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
                    {"$match": {"type": TransactionType::Purchase, "status": ENTRY_COMPLETED}},
                    {"$sort": {"createdAt": 1, "_id": 1}},
                    {"$group": {"_id": "$customerId",
                        "earliest": {"$first": {"_id": "$_id", "createdAt": "$createdAt"}}}},
                ],
                "as": "buyerPurchases",
            }});
        }
        pipeline.push(
            doc! {"$project": {"_id": 0, "forest": 1, "counts": 1, "purchases": 1, "jobs": 1,
            "pool": 1, "poolForeign": 1, "settings": 1, "buyerPurchases": 1}},
        );
        let loaded: LoadedDoc = match self.load_on_one_job(session, pipeline).await? {
            Some(loaded) => loaded,
            None => LoadedDoc {
                forest: vec![],
                counts: vec![],
                purchases: vec![],
                jobs: vec![],
                pool: vec![],
                pool_foreign: vec![],
                settings: vec![],
                buyer_purchases: vec![],
            },
        };
        let pool_exists = !loaded.pool.is_empty();
        let pool = match loaded.pool.first() {
            Some(stored) => PoolDocument::read(stored),
            None => Ok(None),
        };
        let pool_foreign = spends.then(|| {
            loaded
                .pool_foreign
                .iter()
                .map(ForeignEntry::read)
                .collect::<Result<Vec<_>, _>>()
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
                pool_exists,
                pool_foreign,
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
            pool_exists,
            pool_foreign,
            settings,
            buyer_purchases,
        })
    }

    /// Runs a load pipeline started by [`on_one_job`] in the batch's transaction: its one
    /// document, or none when no job of the batch is left.
    async fn load_on_one_job(
        self,
        session: &mut ClientSession,
        pipeline: Vec<Document>,
    ) -> Result<Option<LoadedDoc>, BatchError> {
        let mut cursor = self
            .store
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
        self,
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
        self.store
            .links()
            .learn(nodes.values().map(|n| (n.id, n.parent_customer)));
        Ok(())
    }

    /// The gifts pool as the app computes it from the ledger (Σ completed `gifts_reward` −
    /// Σ completed `signup_gifts_reward` − Σ completed `level_gift_reward`), added up here
    /// exactly (never by the server in floating point), in this transaction's snapshot: by the
    /// first batch that keeps the pool (and after an earlier version's document); the pool's
    /// document counts from then on ([`crate::gifts_pool`]).
    pub(super) async fn gifts_pool_from_ledger(
        self,
        session: &mut ClientSession,
        now: DateTime,
    ) -> Result<PoolDocument, BatchError> {
        let mut cursor = self
            .store
            .database()
            .collection::<Document>(collections::TRANSACTIONS)
            .find(
                doc! {"type": {"$in": crate::gifts_pool::pool_types()}, "status": ENTRY_COMPLETED},
            )
            .projection(doc! {"_id": 1, "type": 1, "amount": 1, "relatedTransaction": 1})
            .session(&mut *session)
            .await?;
        let refused = |e: String| BatchError::Refused(Attempt::Retryable(e));
        let mut balance = MilliPoints::ZERO;
        let mut others = Vec::new();
        while let Some(entry) = cursor.next(&mut *session).await.transpose()? {
            let change =
                crate::gifts_pool::change_of(&entry).map_err(|e| refused(e.to_string()))?;
            balance = balance
                .checked_add(change)
                .map_err(|e| refused(e.to_string()))?;
            match entry.get_object_id("_id") {
                Ok(id) if !entry.contains_key("relatedTransaction") => others.push(id),
                _ => {}
            }
        }
        tracing::info!(balance = %balance, "the gifts pool was counted from the ledger");
        Ok(PoolDocument::built(balance, &others, now))
    }
}

/// The most ancestors a buyer's chain may have; a longer one fails its job rather than paying a
/// chain cut short.
pub(super) const MAX_ANCESTORS: i64 = 10_000;

/// Steps a chain is followed above its buyer: one more than it may have, so a longer chain is
/// seen as such and its job fails.
pub(super) const MAX_CHAIN_STEPS: usize = MAX_ANCESTORS as usize + 1;

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
    let mut missing = Vec::new();
    walk_chains(buyers, MAX_CHAIN_STEPS, |current| {
        match nodes.get(&current) {
            Some(node) => node.parent_customer,
            None => {
                if !absent.contains(&current) {
                    missing.push(current);
                }
                None
            }
        }
    });
    missing
}
