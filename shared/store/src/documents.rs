//! Typed documents of every collection (SPEC §4 and §6.1), as stored.
//!
//! The shapes are the running mall app's own (the team's `APP-DATA.md`): its field names
//! (`Address`, `percentage`, carts' string `productId`, its transaction fields), and amounts in
//! points as a BSON Double, converted exactly to and from [`MilliPoints`] by [`crate::amount`].
//! Our own fields sit beside the app's. Ids are ObjectIds and times BSON dates; optional fields
//! of ours are left out when empty, except `parentCustomer`, whose null means "a root".

use mall_domain::reward::SkipReason;
use mall_domain::{
    ChainEnd, DirectKind, GiftKind, JobTerms, Level, MilliPoints, PayoutKind, PolicyOverrides,
    PolicyPreset, PoolGift, RewardPlan, RewardPolicy, RewardSplit, TodayTerms,
};
use mongodb::bson::{oid::ObjectId, Bson, DateTime, Document};
use serde::{Deserialize, Serialize};

/// The one value of `customers.referralStatus` that makes an ancestor eligible for payouts.
pub const REFERRAL_ACTIVE: &str = "active";

/// `transactions.currency` as the app's schema defaults it.
pub const CURRENCY: &str = "USD";
/// `transactions.paymentMethod` of a purchase paid from the wallet.
pub const PAID_FROM_WALLET: &str = "wallet";
/// `transactions.status` of every entry we write: the app lists and sums `completed` ones.
pub const ENTRY_COMPLETED: &str = "completed";
/// Who the original worker named on pool entries (`gifts_reward`, `app_reward`).
pub const SYSTEM_USER_NAME: &str = "System";
pub const SYSTEM_USER_EMAIL: &str = "system@mall.com";

/// A customer as the app's signup, wallet and admin screens write it; we read the fields the
/// checkout and the worker need and leave every other field alone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerDoc {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub username: String,
    pub email: String,
    /// The wallet in points (Int32 or Double as the app writes it); never negative.
    #[serde(with = "crate::amount::wallet")]
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
    /// The delivery address (the app's field is spelled with a capital A).
    #[serde(rename = "Address", default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub created_at: DateTime,
    pub updated_at: DateTime,
}

/// A product as the admin dashboard writes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductDoc {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    pub name: String,
    #[serde(default)]
    pub name_arabic: String,
    /// Price of one unit, in points.
    #[serde(with = "crate::amount::points")]
    pub price: MilliPoints,
    /// Reward points of one unit (the app calls this field `percentage`: `R = Σ percentage ×
    /// quantity`).
    #[serde(rename = "percentage", with = "crate::amount::points")]
    pub reward_points: MilliPoints,
    #[serde(default = "active_by_default")]
    pub is_active: bool,
}

fn active_by_default() -> bool {
    true
}

/// A cart as the app's cart screen writes it (only `customerId` and `items` matter to us).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CartDoc {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    /// Unique: one cart per customer.
    pub customer_id: ObjectId,
    #[serde(default)]
    pub items: Vec<CartItemDoc>,
    /// Σ price × quantity at the client's prices, kept by the app's pre-save hook.
    #[serde(default, with = "crate::amount::points")]
    pub total_amount: MilliPoints,
    #[serde(default)]
    pub total_items: i32,
}

/// A cart line as the app stores it. `productId` is the product's ObjectId as a hex STRING;
/// `price` is the client's and is ignored: prices come from `products`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CartItemDoc {
    pub product_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    #[serde(
        default,
        with = "crate::amount::optional_points",
        skip_serializing_if = "Option::is_none"
    )]
    pub price: Option<MilliPoints>,
    pub quantity: i32,
}

/// The ledger types of the app's gifts pool formula: income, then the two spends.
pub const GIFTS_POOL_TYPES: [TransactionType; 3] = [
    TransactionType::GiftsReward,
    TransactionType::SignupGiftsReward,
    TransactionType::LevelGiftReward,
];

/// `transactions.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionType {
    Purchase,
    TreeReward,
    TreeRewardShared,
    GiftsReward,
    AppReward,
    /// The app's current economy: D to the parent (first purchase) or the buyer (cashback).
    DirectReferralReward,
    /// The signup gift, from the gifts pool.
    SignupGiftsReward,
    /// A level gift, from the gifts pool.
    LevelGiftReward,
}

impl TransactionType {
    /// The app's type string.
    pub const fn as_str(self) -> &'static str {
        match self {
            TransactionType::Purchase => "purchase",
            TransactionType::TreeReward => "tree_reward",
            TransactionType::TreeRewardShared => "tree_reward_shared",
            TransactionType::GiftsReward => "gifts_reward",
            TransactionType::AppReward => "app_reward",
            TransactionType::DirectReferralReward => "direct_referral_reward",
            TransactionType::SignupGiftsReward => "signup_gifts_reward",
            TransactionType::LevelGiftReward => "level_gift_reward",
        }
    }

    /// Paid out of the gifts pool (outside R).
    #[cfg(feature = "operators")]
    pub const fn spends_the_gifts_pool(self) -> bool {
        matches!(
            self,
            TransactionType::SignupGiftsReward | TransactionType::LevelGiftReward
        )
    }
}

/// `transactions.rewardsStatus` of a purchase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewardsStatus {
    Processing,
    Completed,
    Failed,
}

/// A reference in the app's `TXN…` form, unique by construction (the entry's own ObjectId), so
/// the app's unique `reference` index never refuses one of ours.
pub fn reference_of(id: ObjectId) -> String {
    format!("TXN{}", id.to_hex().to_uppercase())
}

/// The purchase, written as the app's checkout wrote its transaction (every field its listings
/// and reports read, amounts in points, `amount = cartTotal`), with our own fields beside it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PurchaseDoc {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    /// Always [`TransactionType::Purchase`].
    #[serde(rename = "type")]
    pub kind: TransactionType,
    pub customer_id: ObjectId,
    pub user_name: String,
    pub user_email: String,
    /// What the wallet paid: the cart total, in points (the app's reports sum it).
    #[serde(with = "crate::amount::points")]
    pub amount: MilliPoints,
    pub currency: String,
    /// `completed`: the payment itself is done (the rewards have their own status).
    pub status: String,
    pub description: String,
    pub payment_method: String,
    /// `TXN…`, unique.
    pub reference: String,
    pub items: Vec<PurchaseLineDoc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_address: Option<ShippingAddressDoc>,
    pub processed_at: DateTime,
    #[serde(with = "crate::amount::points")]
    pub cart_total: MilliPoints,
    /// R: Σ percentage × quantity.
    #[serde(with = "crate::amount::points")]
    pub reward_points_earned: MilliPoints,
    /// The split made at checkout: `app + gifts + tree = R`. App and tree never change.
    #[serde(with = "crate::amount::points")]
    pub app_points_share: MilliPoints,
    /// The gifts share at checkout; the job replaces it with the final gifts pool.
    #[serde(with = "crate::amount::points")]
    pub gifts_points_share: MilliPoints,
    #[serde(with = "crate::amount::points")]
    pub tree_points_share: MilliPoints,
    /// The app's payout list, filled in by the job (empty until then).
    #[serde(default)]
    pub tree_distribution: Vec<TreeDistributionEntryDoc>,
    // Ours.
    /// The split as made at checkout (the job later rewrites the app's share fields with the
    /// final pools; this stays what the buyer was told).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward_split: Option<RewardSplitDoc>,
    pub rewards_status: RewardsStatus,
    /// The reward job created with this purchase.
    pub job_id: ObjectId,
    /// The wallet balance right after the charge.
    #[serde(with = "crate::amount::points")]
    pub wallet_balance_after: MilliPoints,
    /// The client's `Idempotency-Key`, kept for as long as the purchase: a unique index on
    /// `(customerId, idempotencyKey)` lets only one purchase per key commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The fingerprint of the request that used the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_fingerprint: Option<String>,
    /// What the job decided and why (promotions, payouts, skipped ancestors, the pools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward_log: Option<TreeDistributionDoc>,
    pub created_at: DateTime,
    pub updated_at: DateTime,
}

/// The split of R made at checkout, in points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RewardSplitDoc {
    #[serde(with = "crate::amount::points")]
    pub app: MilliPoints,
    #[serde(with = "crate::amount::points")]
    pub gifts: MilliPoints,
    #[serde(with = "crate::amount::points")]
    pub tree: MilliPoints,
    #[serde(with = "crate::amount::points")]
    pub referral: MilliPoints,
}

impl From<RewardSplit> for RewardSplitDoc {
    fn from(split: RewardSplit) -> Self {
        RewardSplitDoc {
            app: split.app,
            gifts: split.gifts,
            tree: split.tree,
            referral: split.referral,
        }
    }
}

impl From<RewardSplitDoc> for RewardSplit {
    fn from(split: RewardSplitDoc) -> Self {
        RewardSplit {
            app: split.app,
            gifts: split.gifts,
            tree: split.tree,
            referral: split.referral,
        }
    }
}

/// A cart line as bought, in the app's shape, with the unit reward beside it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PurchaseLineDoc {
    /// The product's ObjectId as hex, as the app stores it.
    pub product_id: String,
    pub product_name: String,
    pub quantity: i64,
    /// Unit price.
    #[serde(with = "crate::amount::points")]
    pub price: MilliPoints,
    #[serde(with = "crate::amount::points")]
    pub subtotal: MilliPoints,
    /// Reward points of one unit (the product's `percentage` at the time).
    #[serde(rename = "percentage", with = "crate::amount::points")]
    pub unit_reward_points: MilliPoints,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShippingAddressDoc {
    pub street: String,
}

/// One line of the purchase's `treeDistribution`, as the app lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TreeDistributionEntryDoc {
    pub recipient_id: ObjectId,
    #[serde(default)]
    pub recipient_username: String,
    #[serde(with = "crate::amount::points")]
    pub amount: MilliPoints,
    pub level: String,
}

/// A reward entry as the original worker wrote it — a credit to an ancestor's wallet
/// (`tree_reward`, `tree_reward_shared`, `customerId` the recipient) or a pool entry
/// (`gifts_reward`, `app_reward`, `customerId` the buyer, user "System") — with our link to the
/// purchase. A unique index makes a second entry of one kind for one recipient and purchase
/// impossible.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RewardEntryDoc {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    #[serde(rename = "type")]
    pub kind: TransactionType,
    /// The credited customer; the buyer on pool entries.
    pub customer_id: ObjectId,
    pub user_name: String,
    pub user_email: String,
    #[serde(with = "crate::amount::points")]
    pub amount: MilliPoints,
    pub currency: String,
    pub status: String,
    pub description: String,
    /// `TXN…`, unique.
    pub reference: String,
    pub processed_at: DateTime,
    // Ours.
    /// The credited pool, on pool entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<Pool>,
    /// The purchase.
    pub related_transaction: ObjectId,
    /// The letter paid for (customer entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    /// How many J ancestors shared the J bucket (`tree_reward_shared`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_with: Option<i32>,
    pub created_at: DateTime,
    pub updated_at: DateTime,
}

impl RewardEntryDoc {
    /// Whether this entry credits a customer's wallet (not a pool).
    #[cfg(feature = "test-support")]
    pub fn credits_a_wallet(&self) -> bool {
        matches!(
            self.kind,
            TransactionType::TreeReward
                | TransactionType::TreeRewardShared
                | TransactionType::DirectReferralReward
                | TransactionType::SignupGiftsReward
                | TransactionType::LevelGiftReward
        )
    }
}

/// Which pool a pool entry credits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pool {
    Gifts,
    App,
}

/// The purchase's `rewardLog`: what the job decided, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TreeDistributionDoc {
    pub promotions: Vec<PromotionLogDoc>,
    pub payouts: Vec<PayoutLogDoc>,
    pub skipped: Vec<SkipLogDoc>,
    #[serde(with = "crate::amount::points")]
    pub tree_distributed: MilliPoints,
    #[serde(with = "crate::amount::points")]
    pub tree_unused: MilliPoints,
    #[serde(with = "crate::amount::points")]
    pub j_remainder: MilliPoints,
    #[serde(with = "crate::amount::points")]
    pub gifts_final: MilliPoints,
    #[serde(with = "crate::amount::points")]
    pub app_final: MilliPoints,
    /// The walk ended at a parent that does not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_parent: Option<ObjectId>,
    /// The policy that paid the job (a legacy job's is the original's preset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyOverrides>,
    /// The direct-referral share paid to a wallet (the current economy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct: Option<DirectLogDoc>,
    /// Gifts paid from the gifts pool (outside R).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gifts: Vec<GiftLogDoc>,
    /// Gifts due that the pool did not cover (not paid).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gifts_uncovered: Vec<GiftLogDoc>,
    pub processed_at: DateTime,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectLogDoc {
    pub customer_id: ObjectId,
    /// `referral` (the parent, at a first purchase) or `cashback` (the buyer).
    pub kind: String,
    #[serde(with = "crate::amount::points")]
    pub amount: MilliPoints,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GiftLogDoc {
    pub customer_id: ObjectId,
    /// `signup` or `level`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    #[serde(with = "crate::amount::points")]
    pub amount: MilliPoints,
}

impl GiftLogDoc {
    fn of(gift: &PoolGift<ObjectId>) -> Self {
        let (kind, level) = match gift.kind {
            GiftKind::Signup => ("signup", None),
            GiftKind::Level(level) => ("level", Some(level)),
        };
        GiftLogDoc {
            customer_id: gift.id,
            kind: kind.to_owned(),
            level,
            amount: gift.amount,
        }
    }
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
    #[serde(with = "crate::amount::points")]
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
    pub fn from_plan(
        plan: &RewardPlan<ObjectId>,
        policy: &RewardPolicy,
        processed_at: DateTime,
    ) -> Self {
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
            policy: Some(policy.to_overrides()),
            direct: plan.direct.as_ref().map(|d| DirectLogDoc {
                customer_id: d.id,
                kind: match d.kind {
                    DirectKind::Referral => "referral",
                    DirectKind::Cashback => "cashback",
                }
                .to_owned(),
                amount: d.amount,
            }),
            gifts: plan.gifts.iter().map(GiftLogDoc::of).collect(),
            gifts_uncovered: plan.gifts_uncovered.iter().map(GiftLogDoc::of).collect(),
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

/// A reward job (SPEC §6.1), one per purchase, in the shape the app's jobs dashboard reads
/// (`status`, `attempts`, `payload.*` in points, `startedAt`, `completedAt`, `error.message`)
/// with our queue fields beside it. The original system's own jobs read as this type too: they
/// have no `runAfter` (due at once), no claim and no `payload.policy`.
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
    /// Claims so far by any worker (the app's jobs dashboard reads it; the app's own worker adds
    /// two per claim).
    pub attempts: i32,
    /// Our own claims so far: what `maxAttempts` counts. Absent until our first claim of a job the
    /// app queued (its attempts are the app's worker's, not ours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<i32>,
    /// When our last claim was made (it also sets `startedAt`: a `startedAt` that differs was
    /// written by another worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_at: Option<DateTime>,
    #[serde(default = "default_max_attempts")]
    pub max_attempts: i32,
    /// When the job is due; absent on the original's jobs (due at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_after: Option<DateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until: Option<DateTime>,
    /// The current claim; every write after a claim is fenced by `{_id, claimToken}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_token: Option<ObjectId>,
    pub payload: JobPayloadDoc,
    /// The app's view of the last error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<LastErrorDoc>,
    /// The last 20 attempts' errors, oldest first.
    #[serde(default)]
    pub errors: Vec<JobErrorDoc>,
    #[serde(default)]
    pub redrives: Vec<RedriveDoc>,
    pub created_at: DateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime>,
    /// When the job last finished an attempt (the app's field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_at: Option<DateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<DateTime>,
    /// When a TTL index may delete the job (set on completion, for retention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime>,
}

fn default_max_attempts() -> i32 {
    3
}

impl CheckoutJobDoc {
    /// Written by the app's own checkout, of either era (it carries no policy of ours).
    pub fn is_legacy(&self) -> bool {
        self.payload.policy.is_none()
    }
}

/// What checkout computed, in points, so the job pays exactly what the buyer was shown. Every
/// job we write satisfies the app's current job schema (its five payload numbers), so the app's
/// jobs dashboard — and, after a rollback, its worker — can read and pay it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobPayloadDoc {
    /// R.
    #[serde(rename = "totalRewardPoints", with = "crate::amount::points")]
    pub reward_points: MilliPoints,
    #[serde(with = "crate::amount::points")]
    pub app_points_share: MilliPoints,
    #[serde(with = "crate::amount::points")]
    pub gifts_points_share: MilliPoints,
    #[serde(with = "crate::amount::points")]
    pub tree_points_share: MilliPoints,
    /// D, the direct-referral share: required by the app's current job schema (0 under a fixed
    /// split); absent on the seed era's jobs.
    #[serde(
        default,
        with = "crate::amount::optional_points",
        skip_serializing_if = "Option::is_none"
    )]
    pub direct_referral_share: Option<MilliPoints>,
    /// The tree rules in force at checkout, every field set; absent on the app's own jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyOverrides>,
    /// `current`: a job of the app's current economy made by our checkout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub economy: Option<String>,
    /// The buyer had no earlier purchase (decided in the checkout's transaction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_purchase: Option<bool>,
    /// The admin's settings at checkout, in the app's `rewardsettings` shape: the gifts this job
    /// pays, whatever the admin changes later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<Document>,
}

/// A purchase's place in the first-purchase rule's order ([`mall_domain::is_first_purchase`]):
/// when it was created, then its id — as MongoDB sorts `{createdAt: 1, _id: 1}`, a missing
/// time first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub struct PurchaseOrder {
    #[serde(default, rename = "createdAt")]
    pub created_at: Option<DateTime>,
    #[serde(rename = "_id")]
    pub id: ObjectId,
}

impl PurchaseOrder {
    pub fn of(purchase: &PurchaseDoc) -> Self {
        PurchaseOrder {
            created_at: Some(purchase.created_at),
            id: purchase.id,
        }
    }
}

/// `payload.economy` of a job of the app's current economy.
pub const ECONOMY_CURRENT: &str = "current";

/// Who wrote a job, and so what it pays by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobEra {
    /// Ours, with a fixed basis-point split (`payload.policy`).
    OursSplit,
    /// Ours, in the app's current economy (`payload.economy: current`).
    OursCurrent,
    /// The app's current checkout (`payload.directReferralShare`, no policy of ours): the current
    /// economy from its recorded payload, first purchase and gifts decided when it runs.
    AppCurrent,
    /// The seed era's app (neither): the `original` preset.
    SeedEra,
}

/// What a job of the app's own checkout is paid with that it did not record: decided when the
/// job runs, as the app decides it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunTimeFacts {
    /// The buyer has no other completed purchase.
    pub first_purchase: bool,
    /// The settings in force now.
    pub settings: mall_domain::AppSettings,
    /// The deployment allows level gifts.
    pub level_gifts_allowed: bool,
}

impl JobEra {
    /// Its jobs may pay gifts from the gifts pool (the current economy's).
    pub fn spends_gifts_pool(self) -> bool {
        matches!(self, JobEra::OursCurrent | JobEra::AppCurrent)
    }
}

impl JobPayloadDoc {
    pub fn era(&self) -> JobEra {
        match (
            &self.policy,
            self.economy.as_deref(),
            self.direct_referral_share,
        ) {
            (Some(_), Some(ECONOMY_CURRENT), _) => JobEra::OursCurrent,
            (Some(_), _, _) => JobEra::OursSplit,
            (None, _, Some(_)) => JobEra::AppCurrent,
            (None, _, None) => JobEra::SeedEra,
        }
    }

    /// What pays this job: the terms recorded at checkout, or for the app's own jobs its
    /// era's rules (the facts of `at_run_time` for the app's current jobs).
    pub fn paying_terms(&self, at_run_time: &RunTimeFacts) -> Result<JobTerms, String> {
        match self.era() {
            JobEra::OursSplit => self.paying_policy().map(JobTerms::Split),
            JobEra::SeedEra => Ok(JobTerms::Recorded {
                rules: self.recorded_policy()?,
                split: RewardSplit::recorded(
                    self.reward_points,
                    self.tree_points_share,
                    self.gifts_points_share,
                    MilliPoints::ZERO,
                )
                .map_err(|_| self.split_not_whole(MilliPoints::ZERO))?,
            }),
            JobEra::OursCurrent => {
                let rules = self.recorded_policy()?;
                let settings = match &self.settings {
                    Some(copy) => crate::settings::raw_settings(copy).resolve().map_err(|p| {
                        format!(
                            "the job's settings cannot be read: {}",
                            p.iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join("; ")
                        )
                    })?,
                    None => return Err("the job records no settings".into()),
                };
                Ok(JobTerms::Today(TodayTerms {
                    rules,
                    split: self.recorded_split(true)?,
                    first_purchase: self
                        .first_purchase
                        .ok_or("the job does not record whether it was a first purchase")?,
                    signup_gift: settings.signup_gift,
                    level_gifts: settings.payable_level_gifts(),
                }))
            }
            JobEra::AppCurrent => Ok(JobTerms::Today(TodayTerms {
                rules: RewardPolicy::preset(PolicyPreset::Current),
                split: self.recorded_split(false)?,
                first_purchase: at_run_time.first_purchase,
                signup_gift: at_run_time.settings.signup_gift,
                level_gifts: at_run_time
                    .settings
                    .payable_level_gifts()
                    .filter(|_| at_run_time.level_gifts_allowed),
            })),
        }
    }

    /// The split a job of the current economy recorded. Ours add up to R exactly; the app's
    /// checkout multiplied doubles by shares that need not add up to 1, so for its jobs the
    /// app's part is what the other three leave of R (never below zero).
    fn recorded_split(&self, exact: bool) -> Result<RewardSplit, String> {
        let referral = self.direct_referral_share.unwrap_or_default();
        let parts = [
            self.tree_points_share,
            self.gifts_points_share,
            referral,
            self.app_points_share,
        ];
        if parts.iter().any(|p| p.is_negative()) || self.reward_points.is_negative() {
            return Err("the job's payload has a negative amount".into());
        }
        let rest = self
            .reward_points
            .checked_sub(self.tree_points_share)
            .and_then(|r| r.checked_sub(self.gifts_points_share))
            .and_then(|r| r.checked_sub(referral))
            .map_err(|e| e.to_string())?;
        if rest.is_negative() || (exact && rest != self.app_points_share) {
            return Err(self.split_not_whole(referral));
        }
        Ok(RewardSplit {
            app: rest,
            gifts: self.gifts_points_share,
            tree: self.tree_points_share,
            referral,
        })
    }

    fn split_not_whole(&self, referral: MilliPoints) -> String {
        format!(
            "the job's split (tree {} + gifts {} + direct referral {} + app {}) does not add up \
             to R = {}",
            self.tree_points_share,
            self.gifts_points_share,
            referral,
            self.app_points_share,
            self.reward_points
        )
    }

    fn recorded_policy(&self) -> Result<RewardPolicy, String> {
        match &self.policy {
            Some(policy) => policy
                .resolve()
                .map_err(|e| format!("the job's policy is invalid: {e}")),
            None => Ok(RewardPolicy::preset(PolicyPreset::Original)),
        }
    }

    /// The policy that pays a job of ours with a fixed split: the one recorded at checkout.
    pub fn paying_policy(&self) -> Result<RewardPolicy, String> {
        if self.policy.is_none() {
            return Err("the job was queued by the app's checkout: no policy of ours".into());
        }
        self.recorded_policy()
    }
}

/// The app's `error` field of a job: the last error's message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastErrorDoc {
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<DateTime>,
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

/// Reads a stored document as `T`, or says at which field it fails and why
/// (`payload.totalRewardPoints: a string is not an amount of points`).
pub fn read_document<T: serde::de::DeserializeOwned>(doc: Document) -> Result<T, String> {
    let deserializer = mongodb::bson::Deserializer::new(Bson::Document(doc));
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        if path == "." {
            err.into_inner().to_string()
        } else {
            format!("{path}: {}", err.into_inner())
        }
    })
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
