//! `products`: the catalogue as the admin dashboard writes it.

use mall_domain::MilliPoints;
use mongodb::bson::oid::ObjectId;
use serde::{Deserialize, Serialize};

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
