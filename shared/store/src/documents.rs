//! Typed documents of every collection (SPEC §4 and §6.1), as stored.
//!
//! Field names are the original app's camelCase ones, amounts are [`MilliPoints`] (Int64
//! milli-points in BSON), ids are ObjectIds and times are BSON dates. Optional fields are left out
//! when empty rather than stored as null, except `parentCustomer`, whose null means "a root".

use mall_domain::reward::SkipReason;
use mall_domain::{ChainEnd, Level, MilliPoints, PayoutKind, PolicyOverrides, RewardPlan};
use mongodb::bson::{oid::ObjectId, Bson, DateTime, Document};
use serde::{Deserialize, Serialize};

/// The one value of `customers.referralStatus` that makes an ancestor eligible for payouts.
pub const REFERRAL_ACTIVE: &str = "active";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerDoc {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    pub username: String,
    pub email: String,
    /// The wallet; never negative.
    pub points: MilliPoints,
    /// The referrer, or null for a root of the referral tree.
    #[serde(default)]
    pub parent_customer: Option<ObjectId>,
    #[serde(default)]
    pub level_letter: Level,
    /// `"active"` or anything else.
    #[serde(default)]
    pub referral_status: String,
    #[serde(default)]
    pub is_verified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub created_at: DateTime,
    pub updated_at: DateTime,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductDoc {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    pub name: String,
    #[serde(default)]
    pub name_arabic: String,
    /// Price of one unit.
    pub price: MilliPoints,
    /// Reward points of one unit (the original called this field `percentage`).
    pub reward_points: MilliPoints,
    pub is_active: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CartDoc {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    /// Unique: one cart per customer.
    pub customer_id: ObjectId,
    #[serde(default)]
    pub items: Vec<CartItemDoc>,
}

/// A cart line. Any price a client stored here is ignored: prices come from `products`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CartItemDoc {
    pub product_id: ObjectId,
    pub quantity: i64,
}

/// `transactions.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionType {
    Purchase,
    TreeReward,
    TreeRewardShared,
    GiftsReward,
    AppReward,
}

/// `transactions.rewardsStatus` of a purchase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewardsStatus {
    Processing,
    Completed,
    Failed,
}

/// The purchase: one wallet movement of `-cartTotal`, with what the reward job needs to know.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PurchaseDoc {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    /// Always [`TransactionType::Purchase`].
    #[serde(rename = "type")]
    pub kind: TransactionType,
    pub customer_id: ObjectId,
    /// The wallet movement: minus the cart total.
    pub amount: MilliPoints,
    pub cart_total: MilliPoints,
    pub cart_snapshot: Vec<PurchaseLineDoc>,
    /// The wallet balance right after the charge.
    pub wallet_balance_after: MilliPoints,
    /// R: Σ rewardPoints × quantity.
    pub reward_points_earned: MilliPoints,
    /// The split made at checkout: `app + gifts + tree = R`. App and tree never change.
    pub app_points_share: MilliPoints,
    /// The gifts share at checkout; the job replaces it with the final gifts pool.
    pub gifts_points_share: MilliPoints,
    pub tree_points_share: MilliPoints,
    pub rewards_status: RewardsStatus,
    /// The reward job created with this purchase.
    pub job_id: ObjectId,
    /// The client's `Idempotency-Key`, kept for as long as the purchase: a unique index on
    /// `(customerId, idempotencyKey)` lets only one purchase per key commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The fingerprint of the request that used the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree_distribution: Option<TreeDistributionDoc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_address: Option<String>,
    pub created_at: DateTime,
    pub updated_at: DateTime,
}

/// A cart line as bought, with the prices of that moment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PurchaseLineDoc {
    pub product_id: ObjectId,
    pub name: String,
    pub quantity: i64,
    pub unit_price: MilliPoints,
    pub unit_reward_points: MilliPoints,
    pub line_total: MilliPoints,
}

/// Which pool a pool entry credits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pool {
    Gifts,
    App,
}

/// A reward entry: a credit to an ancestor's wallet (`tree_reward`, `tree_reward_shared`) or to a
/// pool (`gifts_reward`, `app_reward`), always tied to its purchase. A unique index makes a second
/// entry of one kind for one recipient and purchase impossible.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RewardEntryDoc {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    #[serde(rename = "type")]
    pub kind: TransactionType,
    /// The credited customer; absent for pool entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<ObjectId>,
    /// The credited pool; absent for customer entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<Pool>,
    pub amount: MilliPoints,
    /// The purchase.
    pub related_transaction: ObjectId,
    /// The letter paid for (customer entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    /// How many J ancestors shared the J bucket (`tree_reward_shared`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_with: Option<i32>,
    pub created_at: DateTime,
}

/// The purchase's `treeDistribution` log: what the job decided, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TreeDistributionDoc {
    pub promotions: Vec<PromotionLogDoc>,
    pub payouts: Vec<PayoutLogDoc>,
    pub skipped: Vec<SkipLogDoc>,
    pub tree_distributed: MilliPoints,
    pub tree_unused: MilliPoints,
    pub j_remainder: MilliPoints,
    pub gifts_final: MilliPoints,
    pub app_final: MilliPoints,
    /// The walk ended at a parent that does not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_parent: Option<ObjectId>,
    pub processed_at: DateTime,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromotionLogDoc {
    pub customer_id: ObjectId,
    pub from: Level,
    pub to: Level,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PayoutLogDoc {
    pub customer_id: ObjectId,
    pub level: Level,
    /// `level` or `shared`.
    pub kind: String,
    pub amount: MilliPoints,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_with: Option<i32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SkipLogDoc {
    pub customer_id: ObjectId,
    pub reason: SkipReason,
}

impl TreeDistributionDoc {
    pub fn from_plan(plan: &RewardPlan<ObjectId>, processed_at: DateTime) -> Self {
        TreeDistributionDoc {
            promotions: plan
                .promotions
                .iter()
                .map(|p| PromotionLogDoc {
                    customer_id: p.id,
                    from: p.from,
                    to: p.to,
                })
                .collect(),
            payouts: plan
                .payouts
                .iter()
                .map(|p| {
                    let (kind, shared_with) = match p.kind {
                        PayoutKind::Level => ("level", None),
                        PayoutKind::Shared { members } => {
                            ("shared", Some(i32::try_from(members).unwrap_or(i32::MAX)))
                        }
                    };
                    PayoutLogDoc {
                        customer_id: p.id,
                        level: p.level,
                        kind: kind.to_owned(),
                        amount: p.amount,
                        shared_with,
                    }
                })
                .collect(),
            skipped: plan
                .skipped
                .iter()
                .map(|s| SkipLogDoc {
                    customer_id: s.id,
                    reason: s.reason,
                })
                .collect(),
            tree_distributed: plan.tree_distributed,
            tree_unused: plan.tree_unused,
            j_remainder: plan.j_remainder,
            gifts_final: plan.gifts_final,
            app_final: plan.app_final,
            missing_parent: match plan.chain_end {
                ChainEnd::Root => None,
                ChainEnd::MissingParent(id) => Some(id),
            },
            processed_at,
        }
    }
}

/// `checkoutjobs.status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Pending,
    Processing,
    Completed,
    /// Dead: out of attempts, or a permanent error. Only an operator's re-drive revives it.
    Failed,
}

/// A reward job (SPEC §6.1): one per purchase.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutJobDoc {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    /// The purchase; unique.
    pub checkout_transaction_id: ObjectId,
    /// The buyer.
    pub customer_id: ObjectId,
    pub status: JobStatus,
    /// Claims so far, counted when a claim is made.
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_after: DateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until: Option<DateTime>,
    /// The current claim; every write after a claim is fenced by `{_id, claimToken}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_token: Option<ObjectId>,
    pub payload: JobPayloadDoc,
    /// The last 20 attempts' errors, oldest first.
    #[serde(default)]
    pub errors: Vec<JobErrorDoc>,
    #[serde(default)]
    pub redrives: Vec<RedriveDoc>,
    pub created_at: DateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<DateTime>,
    /// When a TTL index may delete the job (set on completion, for retention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime>,
}

/// What checkout computed, so the job pays exactly what the buyer was shown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobPayloadDoc {
    /// R.
    pub reward_points: MilliPoints,
    pub app_points_share: MilliPoints,
    pub gifts_points_share: MilliPoints,
    pub tree_points_share: MilliPoints,
    /// The policy in force at checkout, every field set.
    pub policy: PolicyOverrides,
}

/// Whether retrying can fix an attempt's error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobErrorKind {
    Retryable,
    Permanent,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobErrorDoc {
    pub attempt: i32,
    pub at: DateTime,
    pub kind: JobErrorKind,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RedriveDoc {
    pub at: DateTime,
    pub reason: String,
}

/// A number the server may return as Int32, Int64 or (for averages) Double, as an `i64`
/// (a double is rounded: it is never money, only counts and durations).
pub(crate) fn number(doc: &Document, key: &str) -> Option<i64> {
    match doc.get(key)? {
        Bson::Int32(n) => Some(i64::from(*n)),
        Bson::Int64(n) => Some(*n),
        #[allow(clippy::cast_possible_truncation)]
        Bson::Double(n) if n.is_finite() => Some(n.round() as i64),
        _ => None,
    }
}
