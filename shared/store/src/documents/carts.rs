//! `carts`: one cart per customer, as the app's cart screen writes it.

use mall_domain::MilliPoints;
use mongodb::bson::oid::ObjectId;
use serde::{Deserialize, Serialize};

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
