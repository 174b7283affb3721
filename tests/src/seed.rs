//! Seeding a test database: customers, products, carts, and whole referral trees written in the
//! simulator's scenario format (SPEC §9), so a test can compare what the worker did with what the
//! pure rules say.

use std::collections::HashMap;

use mall_domain::Level;
use mall_store::bson::{doc, oid::ObjectId, to_bson, DateTime, Document};
use mall_store::testing::documents::{CartItemDoc, CustomerDoc, ProductDoc, REFERRAL_ACTIVE};
use mall_store::Store;
use serde_json::Value;

/// A verified, active root customer at level A with `points` (a decimal such as `"5000"`).
pub async fn customer(store: &Store, points: &str) -> ObjectId {
    let now = DateTime::now();
    let customer = CustomerDoc {
        id: ObjectId::new(),
        name: Some("Buyer".into()),
        username: "buyer".into(),
        email: "buyer@example.com".into(),
        points: points.parse().unwrap(),
        parent_customer: None,
        level_letter: Level::A,
        referral_status: REFERRAL_ACTIVE.into(),
        is_verified: true,
        address: None,
        created_at: now,
        updated_at: now,
    };
    store.customers().insert_one(&customer).await.unwrap();
    customer.id
}

/// A checkout of `buyer`'s cart straight through the store (no HTTP), with the default policy
/// and 3 attempts for its job.
pub async fn checkout(store: &Store, buyer: ObjectId) -> mall_store::CheckoutReceipt {
    store
        .checkouts()
        .checkout(&mall_store::CheckoutCommand {
            customer_id: buyer,
            request: &mall_domain::checkout::CheckoutRequest::default(),
            idempotency_key: None,
            policy: &mall_domain::RewardPolicy::default(),
            economy: mall_store::testing::checkout::Economy::Split,
            job_max_attempts: 3,
        })
        .await
        .unwrap()
}

/// Makes `referrer` the referrer (`parentCustomer`) of `customer`.
pub async fn refer(store: &Store, customer: ObjectId, referrer: ObjectId) {
    store
        .customers()
        .update_one(
            doc! {"_id": customer},
            doc! {"$set": {"parentCustomer": referrer}},
        )
        .await
        .unwrap();
}

/// A product at `price` that earns `reward` points per unit (decimals such as `"12.5"`).
pub async fn product(store: &Store, price: &str, reward: &str, active: bool) -> ObjectId {
    let product = ProductDoc {
        id: ObjectId::new(),
        name: "Dates box".into(),
        name_arabic: "علبة تمر".into(),
        price: price.parse().unwrap(),
        reward_points: reward.parse().unwrap(),
        is_active: active,
    };
    store.products().insert_one(&product).await.unwrap();
    product.id
}

/// Sets the customer's cart to these `(product, quantity)` lines, creating it if needed, as the
/// app's cart screen writes it: the product id as a hex string, and a client-side price of 1
/// point that the checkout must ignore.
pub async fn fill_cart(store: &Store, customer: ObjectId, lines: &[(ObjectId, i64)]) {
    let items: Vec<CartItemDoc> = lines
        .iter()
        .map(|&(product_id, quantity)| CartItemDoc {
            product_id: product_id.to_hex(),
            product_name: Some("Dates box".into()),
            price: Some(mall_domain::MilliPoints::from_milli(1_000)),
            quantity: i32::try_from(quantity).unwrap(),
        })
        .collect();
    let total_items: i64 = lines.iter().map(|(_, q)| q).sum();
    store
        .carts()
        .update_one(
            doc! {"customerId": customer},
            doc! {"$set": {"items": to_bson(&items).unwrap(), "totalAmount": total_items,
                           "totalItems": total_items, "status": "active"},
            "$setOnInsert": {"_id": ObjectId::new()}},
        )
        .upsert(true)
        .await
        .unwrap();
}

/// A cart with one raw line (for quantities of other BSON types than a whole number).
pub async fn raw_cart(store: &Store, customer: ObjectId, item: Document) {
    store
        .database()
        .collection::<Document>("carts")
        .insert_one(doc! {"_id": ObjectId::new(), "customerId": customer, "items": [item]})
        .await
        .unwrap();
}

/// Inserts the `customers` of a scenario (`id`, `parent`, `level`, `active`, `verified`), each
/// with `wallet` points, and returns the scenario's ids mapped to the new ObjectIds. A parent that
/// is not in the scenario becomes an ObjectId of nobody (a missing parent).
pub async fn scenario_customers(
    store: &Store,
    scenario: &Value,
    wallet: &str,
) -> HashMap<String, ObjectId> {
    let customers = scenario["customers"].as_array().unwrap();
    let ids: HashMap<String, ObjectId> = customers
        .iter()
        .map(|c| (c["id"].as_str().unwrap().to_owned(), ObjectId::new()))
        .collect();
    let now = DateTime::now();
    let docs: Vec<CustomerDoc> = customers
        .iter()
        .map(|c| {
            let name = c["id"].as_str().unwrap();
            CustomerDoc {
                id: ids[name],
                name: Some(name.to_owned()),
                username: name.to_owned(),
                email: format!("{name}@example.com"),
                points: wallet.parse().unwrap(),
                parent_customer: c["parent"]
                    .as_str()
                    .map(|p| ids.get(p).copied().unwrap_or_else(ObjectId::new)),
                level_letter: c["level"].as_str().unwrap_or("A").parse().unwrap(),
                referral_status: if c["active"] == Value::Bool(true) {
                    REFERRAL_ACTIVE.into()
                } else {
                    "suspended".into()
                },
                is_verified: c["verified"] == Value::Bool(true),
                address: None,
                created_at: now,
                updated_at: now,
            }
        })
        .collect();
    store.customers().insert_many(docs).await.unwrap();
    ids
}

/// A job the ORIGINAL system's worker is processing right now, as it writes one: no claim token
/// or lease of ours, `startedAt` now, the payload in points without a policy. Returns its id.
pub async fn original_job_in_progress(store: &Store) -> ObjectId {
    let id = ObjectId::new();
    store
        .database()
        .collection::<Document>("checkoutjobs")
        .insert_one(doc! {
            "_id": id, "customerId": ObjectId::new(), "checkoutTransactionId": ObjectId::new(),
            "status": "processing", "attempts": 1, "maxAttempts": 3, "createdAt": DateTime::now(),
            "startedAt": DateTime::now(),
            "payload": {"treePointsShare": 5, "appPointsShare": 3.5, "giftsPointsShare": 1.5,
                        "totalRewardPoints": 10},
        })
        .await
        .unwrap();
    id
}
