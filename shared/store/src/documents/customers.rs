//! `customers`: the app's customer as its signup, wallet and admin screens write it.

use mall_domain::{Level, MilliPoints};
use mongodb::bson::{oid::ObjectId, DateTime};
use serde::{Deserialize, Serialize};

/// The one value of `customers.referralStatus` that makes an ancestor eligible for payouts.
pub const REFERRAL_ACTIVE: &str = "active";

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
