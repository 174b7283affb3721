//! `transactions`: the app's ledger. A purchase ([`PurchaseDoc`]) and the reward entries its
//! job writes ([`RewardEntryDoc`]) share the envelope the app's schema gives every transaction,
//! declared once by [`transaction_document!`]; the purchase's `rewardLog` and `treeDistribution`
//! follow.

use mall_domain::reward::SkipReason;
use mall_domain::{
    ChainEnd, DirectKind, GiftKind, Level, MilliPoints, PayoutKind, PolicyOverrides, PoolGift,
    RewardPlan, RewardPolicy, RewardSplit,
};
use mongodb::bson::{oid::ObjectId, DateTime};
use serde::{Deserialize, Serialize};

use super::words::{Pool, RewardsStatus, TransactionType};

/// `transactions.currency` as the app's schema defaults it.
pub const CURRENCY: &str = "USD";
/// `transactions.paymentMethod` of a purchase paid from the wallet.
pub const PAID_FROM_WALLET: &str = "wallet";
/// `transactions.status` of every entry we write: the app lists and sums `completed` ones.
pub const ENTRY_COMPLETED: &str = "completed";
/// Who the original worker named on pool entries (`gifts_reward`, `app_reward`).
pub const SYSTEM_USER_NAME: &str = "System";
pub const SYSTEM_USER_EMAIL: &str = "system@mall.com";

/// Declares a `transactions` document: the envelope every transaction of the app carries
/// (written here once: id, type, customer, user, amount in points, currency, status,
/// description, reference, times), then the type's own fields. No `#[serde(flatten)]`: the
/// documents serialise and read field by field, as any other.
macro_rules! transaction_document {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($own:tt)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            #[serde(rename = "_id")]
            pub id: ObjectId,
            #[serde(rename = "type")]
            pub kind: TransactionType,
            /// The buyer; on a reward entry to a customer, the credited customer.
            pub customer_id: ObjectId,
            pub user_name: String,
            pub user_email: String,
            /// In points (the app's reports sum it).
            #[serde(with = "crate::amount::points")]
            pub amount: MilliPoints,
            pub currency: String,
            /// [`ENTRY_COMPLETED`] on everything we write (a purchase's rewards have their own
            /// status).
            pub status: String,
            pub description: String,
            /// `TXN…`, unique.
            pub reference: String,
            pub processed_at: DateTime,
            pub created_at: DateTime,
            pub updated_at: DateTime,
            $($own)*
        }
    };
}

/// A reference in the app's `TXN…` form, unique by construction (the entry's own ObjectId), so
/// the app's unique `reference` index never refuses one of ours.
pub fn reference_of(id: ObjectId) -> String {
    format!("TXN{}", id.to_hex().to_uppercase())
}

transaction_document! {
    /// The purchase, written as the app's checkout wrote its transaction (every field its
    /// listings and reports read, amounts in points, `type: purchase`, `amount = cartTotal`:
    /// what the wallet paid), with our own fields beside it.
    pub struct PurchaseDoc {
        pub payment_method: String,
        pub items: Vec<PurchaseLineDoc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub shipping_address: Option<ShippingAddressDoc>,
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
        /// The split as made at checkout (the job later rewrites the app's share fields with
        /// the final pools; this stays what the buyer was told).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub reward_split: Option<RewardSplitDoc>,
        /// Its job's status, mirrored ([`RewardsStatus::mirroring`]).
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
    }
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

transaction_document! {
    /// A reward entry as the original worker wrote it — a credit to an ancestor's wallet
    /// (`tree_reward`, `tree_reward_shared`, `customerId` the recipient) or a pool entry
    /// (`gifts_reward`, `app_reward`, `customerId` the buyer, user "System") — with our link to
    /// the purchase. A unique index makes a second entry of one kind for one recipient and
    /// purchase impossible.
    pub struct RewardEntryDoc {
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
    }
}

impl RewardEntryDoc {
    /// Whether this entry credits a customer's wallet (not a pool).
    #[cfg(feature = "test-support")]
    pub fn credits_a_wallet(&self) -> bool {
        self.kind.credits_a_wallet()
    }
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
