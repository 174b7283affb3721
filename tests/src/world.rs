//! A world for the store's and the worker's tests: a fresh database of the real test server
//! with every command counted, a referral tree seeded from a simulator scenario (SPEC §9
//! format), and jobs created by the real checkout transaction.

use std::collections::HashMap;

use crate::db::{self, CommandLog};
use crate::seed;
use mall_domain::checkout::CheckoutRequest;
use mall_domain::{MilliPoints, RewardPolicy};
use mall_store::bson::{doc, oid::ObjectId};
use mall_store::testing::documents::{CustomerDoc, PurchaseDoc, RewardEntryDoc};
use mall_store::{CheckoutCommand, CheckoutReceipt, Store};
use serde_json::{json, Value};

pub use crate::db::test_mongodb_uri as test_uri;

pub struct World {
    pub store: Store,
    pub commands: CommandLog,
    pub database: String,
    /// Scenario ids to ObjectIds.
    pub ids: HashMap<String, ObjectId>,
}

impl World {
    pub async fn new() -> Self {
        let (store, commands, database) = db::fresh_counted_store().await;
        World {
            store,
            commands,
            database,
            ids: HashMap::new(),
        }
    }

    /// Another store (another worker) on the same database.
    pub async fn other_worker(&self) -> Store {
        db::store_on(&self.database).await
    }

    pub fn id(&self, name: &str) -> ObjectId {
        self.ids[name]
    }

    /// The scenario id of a customer.
    pub fn name_of(&self, id: ObjectId) -> String {
        self.ids
            .iter()
            .find(|(_, v)| **v == id)
            .map(|(k, _)| k.clone())
            .unwrap()
    }

    /// Seeds the customers of a scenario, each with `wallet` points.
    pub async fn seed_customers(&mut self, scenario: &Value, wallet: &str) {
        let ids = seed::scenario_customers(&self.store, scenario, wallet).await;
        self.ids.extend(ids);
    }

    pub async fn product(&self, price: &str, reward: &str) -> ObjectId {
        seed::product(&self.store, price, reward, true).await
    }

    /// One unit of `product` in the buyer's cart, checked out through the real checkout
    /// transaction.
    pub async fn checkout(
        &self,
        buyer: ObjectId,
        product: ObjectId,
        policy: &RewardPolicy,
    ) -> CheckoutReceipt {
        seed::fill_cart(&self.store, buyer, &[(product, 1)]).await;
        self.store
            .checkouts()
            .checkout(&CheckoutCommand {
                customer_id: buyer,
                request: &CheckoutRequest::default(),
                idempotency_key: None,
                policy,
                economy: mall_store::testing::checkout::Economy::Split,
                job_max_attempts: 3,
            })
            .await
            .unwrap()
    }

    /// One unit of `product` checked out in the app's current economy (the admin's settings read
    /// in the checkout's transaction).
    pub async fn checkout_current(&self, buyer: ObjectId, product: ObjectId) -> CheckoutReceipt {
        seed::fill_cart(&self.store, buyer, &[(product, 1)]).await;
        self.store
            .checkouts()
            .checkout(&CheckoutCommand {
                customer_id: buyer,
                request: &CheckoutRequest::default(),
                idempotency_key: None,
                policy: &RewardPolicy::preset(mall_domain::PolicyPreset::Current),
                economy: mall_store::testing::checkout::Economy::Current {
                    level_gifts_allowed: true,
                },
                job_max_attempts: 3,
            })
            .await
            .unwrap()
    }

    /// The admin's settings document, replaced.
    pub async fn set_reward_settings(&self, settings: mall_store::bson::Document) {
        let collection = self
            .store
            .database()
            .collection::<mall_store::bson::Document>("rewardsettings");
        collection.delete_many(doc! {}).await.unwrap();
        collection.insert_one(settings).await.unwrap();
    }

    /// A `gifts_reward` entry the app wrote (no link to a purchase): income of the gifts pool.
    pub async fn app_gifts_income(&self, points: &str) {
        let amount = mall_store::testing::amount::to_bson(points.parse().unwrap()).unwrap();
        self.store
            .database()
            .collection::<mall_store::bson::Document>("transactions")
            .insert_one(doc! {
                "customerId": ObjectId::new(), "userName": "System", "userEmail": "system@mall.com",
                "amount": amount, "type": "gifts_reward", "status": "completed",
                "description": "Income to Gifts Pool from checkout split",
            })
            .await
            .unwrap();
    }

    /// The gifts pool's document balance (none until a batch built it).
    pub async fn gifts_pool(&self) -> Option<MilliPoints> {
        self.store
            .database()
            .collection::<mall_store::bson::Document>("rewardpools")
            .find_one(doc! {"_id": "gifts"})
            .await
            .unwrap()
            .map(|pool| {
                mall_store::testing::amount::from_bson(pool.get("balance").unwrap()).unwrap()
            })
    }

    pub async fn customer(&self, id: ObjectId) -> CustomerDoc {
        self.store
            .customers()
            .find_one(doc! {"_id": id})
            .await
            .unwrap()
            .unwrap()
    }

    pub async fn purchase(&self, id: ObjectId) -> PurchaseDoc {
        self.store
            .purchases()
            .find_one(doc! {"_id": id})
            .await
            .unwrap()
            .unwrap()
    }

    pub async fn wallet(&self, name: &str) -> MilliPoints {
        self.customer(self.id(name)).await.points
    }

    pub async fn entries_of(&self, purchase: ObjectId) -> Vec<RewardEntryDoc> {
        db::in_id_order(
            &self.store.reward_entries(),
            doc! {"relatedTransaction": purchase},
        )
        .await
    }

    pub async fn customers(&self) -> Vec<CustomerDoc> {
        db::in_id_order(&self.store.customers(), doc! {}).await
    }

    /// Every purchase's id, oldest first.
    pub async fn purchases_in_order(&self) -> Vec<ObjectId> {
        db::in_id_order(&self.store.purchases(), doc! {"type": "purchase"})
            .await
            .into_iter()
            .map(|p| p.id)
            .collect()
    }

    /// One checkout by each of the named customers, in order.
    pub async fn checkout_each(&self, names: &[String], product: ObjectId) -> Vec<CheckoutReceipt> {
        let mut receipts = Vec::new();
        for name in names {
            receipts.push(
                self.checkout(self.id(name), product, &RewardPolicy::default())
                    .await,
            );
        }
        receipts
    }

    /// Σ of every wallet, in milli-points.
    pub async fn total_wallets(&self) -> i128 {
        self.customers()
            .await
            .iter()
            .map(|c| i128::from(c.points.as_milli()))
            .sum()
    }
}

/// One buyer at A under one root at B.
pub fn buyer_under_root() -> Value {
    serde_json::json!({"customers": [
        {"id": "root", "parent": null, "level": "B", "active": true, "verified": true},
        {"id": "buyer", "parent": "root", "level": "A", "active": true, "verified": true},
    ]})
}

/// P (inactive, so never paid) has two directs X and Y at A; each of them has two directs at B.
/// A job under X promotes X to C, one under Y promotes Y to C; only both together lift P (the
/// second-highest of its directs' levels) from B to D — and neither job pays or promotes P alone.
pub fn siblings() -> Value {
    serde_json::json!({"customers": [
        {"id": "P", "parent": null, "level": "B", "active": false, "verified": true},
        {"id": "X", "parent": "P", "level": "A", "active": true, "verified": true},
        {"id": "Y", "parent": "P", "level": "A", "active": true, "verified": true},
        {"id": "x1", "parent": "X", "level": "B", "active": true, "verified": true},
        {"id": "x2", "parent": "X", "level": "B", "active": true, "verified": true},
        {"id": "y1", "parent": "Y", "level": "B", "active": true, "verified": true},
        {"id": "y2", "parent": "Y", "level": "B", "active": true, "verified": true},
    ]})
}

/// Checks that a completed purchase's entries and pools add up to its R, to the milli-point.
pub async fn assert_conserved(world: &World, purchase: ObjectId) {
    let p = world.purchase(purchase).await;
    let entries = world.entries_of(purchase).await;
    let total: i64 = entries.iter().map(|e| e.amount.as_milli()).sum();
    assert_eq!(
        total,
        p.reward_points_earned.as_milli(),
        "entries add up to R for {purchase}"
    );
    let log = p.reward_log.expect("a completed purchase has its log");
    let paid: i64 = log.payouts.iter().map(|x| x.amount.as_milli()).sum();
    assert_eq!(
        log.app_final.as_milli() + log.gifts_final.as_milli() + paid,
        p.reward_points_earned.as_milli()
    );
    assert_eq!(p.gifts_points_share, log.gifts_final);
}

/// A deterministic forest of `n` customers in which promotions happen often: each joins under
/// one of the few customers before it, levels A to D, one in nine inactive, one in eleven
/// unverified.
pub fn forest(n: usize) -> Value {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |below: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % below as u64) as usize
    };
    let customers: Vec<Value> = (0..n)
        .map(|i| {
            let parent = if i < 3 {
                Value::Null
            } else {
                json!(format!("c{}", i.saturating_sub(1 + next(6))))
            };
            json!({"id": format!("c{i}"), "parent": parent,
                   "level": (["A", "B", "C", "D"][next(4)]),
                   "active": i % 9 != 4, "verified": i % 11 != 6})
        })
        .collect();
    json!({ "customers": customers })
}

/// The forest's names of customers `c{i}`.
pub fn names(indexes: &[usize]) -> Vec<String> {
    indexes.iter().map(|i| format!("c{i}")).collect()
}

pub fn spec_scenario() -> Value {
    serde_json::from_str(include_str!("../../infra/scenarios/spec-section-9.json")).unwrap()
}

/// The §9 tree, seeded; the buyer `u0` checks out a product whose reward is 100 points.
pub async fn spec_world() -> (World, mall_store::CheckoutReceipt) {
    let mut world = World::new().await;
    world.seed_customers(&spec_scenario(), "1000").await;
    let product = world.product("400", "100").await;
    let receipt = world
        .checkout(world.id("u0"), product, &RewardPolicy::default())
        .await;
    (world, receipt)
}
