//! Test support for the worker: a fresh database on the real test server, referral trees seeded
//! from simulator scenarios (SPEC §9 format), and jobs created by the real checkout transaction.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::TryStreamExt;
use mall_domain::checkout::CheckoutRequest;
use mall_domain::{MilliPoints, RewardPolicy};
use mall_store::bson::{doc, oid::ObjectId, DateTime, Document};
use mall_store::documents::{CustomerDoc, ProductDoc, RewardEntryDoc};
use mall_store::{CheckoutCommand, CheckoutReceipt, Store, StoreConfig};
use mongodb::event::command::CommandEvent;
use mongodb::event::EventHandler;
use mongodb::options::ClientOptions;
use serde_json::Value;

/// Commands sent, by name.
#[derive(Clone, Default)]
pub struct CommandLog(Arc<Mutex<Vec<String>>>);

impl CommandLog {
    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
    pub fn names(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

pub struct World {
    pub store: Store,
    pub commands: CommandLog,
    pub database: String,
    /// Scenario ids to ObjectIds.
    pub ids: HashMap<String, ObjectId>,
}

pub fn test_uri() -> String {
    std::env::var("MALL_TEST_MONGODB_URI").expect(
        "MALL_TEST_MONGODB_URI is not set: run the tests with `make test` \
         (infra/with-test-services.sh starts the test database)",
    )
}

impl World {
    pub async fn new() -> Self {
        let database = format!("test_{}", ObjectId::new().to_hex());
        let commands = CommandLog::default();
        let mut options = ClientOptions::parse(test_uri()).await.unwrap();
        let sink = commands.clone();
        options.command_event_handler = Some(EventHandler::callback(move |event: CommandEvent| {
            if let CommandEvent::Started(started) = event {
                sink.0.lock().unwrap().push(started.command_name);
            }
        }));
        let store = Store::with_options(options, &database).unwrap();
        store.ensure_indexes().await.unwrap();
        World {
            store,
            commands,
            database,
            ids: HashMap::new(),
        }
    }

    /// Another store (another worker) on the same database.
    pub async fn other_worker(&self) -> Store {
        Store::connect(&StoreConfig {
            uri: test_uri(),
            database: self.database.clone(),
        })
        .await
        .unwrap()
    }

    pub fn id(&self, name: &str) -> ObjectId {
        self.ids[name]
    }

    /// Seeds the customers of a scenario (each with `wallet` points).
    pub async fn seed_customers(&mut self, scenario: &Value, wallet: &str) {
        let customers = scenario["customers"].as_array().unwrap();
        for c in customers {
            let name = c["id"].as_str().unwrap().to_owned();
            self.ids.entry(name).or_default();
        }
        let now = DateTime::now();
        let docs: Vec<CustomerDoc> = customers
            .iter()
            .map(|c| CustomerDoc {
                id: self.ids[c["id"].as_str().unwrap()],
                username: c["id"].as_str().unwrap().to_owned(),
                email: format!("{}@example.com", c["id"].as_str().unwrap()),
                points: wallet.parse().unwrap(),
                parent_customer: c["parent"]
                    .as_str()
                    .map(|p| *self.ids.get(p).unwrap_or(&ObjectId::new())),
                level_letter: c["level"].as_str().unwrap_or("A").parse().unwrap(),
                referral_status: if c["active"] == Value::Bool(true) {
                    "active".into()
                } else {
                    "suspended".into()
                },
                is_verified: c["verified"] == Value::Bool(true),
                address: None,
                created_at: now,
                updated_at: now,
            })
            .collect();
        self.store.customers().insert_many(docs).await.unwrap();
    }

    /// A product whose reward per unit is `reward` and price `price`.
    pub async fn product(&self, price: &str, reward: &str) -> ObjectId {
        let product = ProductDoc {
            id: ObjectId::new(),
            name: "Gift box".into(),
            name_arabic: String::new(),
            price: price.parse().unwrap(),
            reward_points: reward.parse().unwrap(),
            is_active: true,
        };
        self.store.products().insert_one(&product).await.unwrap();
        product.id
    }

    /// Fills the buyer's cart with one unit of `product` and checks out through the real
    /// checkout transaction.
    pub async fn checkout(
        &self,
        buyer: ObjectId,
        product: ObjectId,
        policy: &RewardPolicy,
    ) -> CheckoutReceipt {
        self.store
            .carts()
            .update_one(
                doc! {"customerId": buyer},
                doc! {"$set": {"items": [{"productId": product, "quantity": 1_i64}]},
                "$setOnInsert": {"_id": ObjectId::new()}},
            )
            .upsert(true)
            .await
            .unwrap();
        self.store
            .checkout(&CheckoutCommand {
                customer_id: buyer,
                request: &CheckoutRequest::default(),
                idempotency_key: None,
                policy,
                job_max_attempts: 3,
            })
            .await
            .unwrap()
    }

    pub async fn customer(&self, id: ObjectId) -> CustomerDoc {
        self.store
            .customers()
            .find_one(doc! {"_id": id})
            .await
            .unwrap()
            .unwrap()
    }

    pub async fn wallet(&self, name: &str) -> MilliPoints {
        self.customer(self.id(name)).await.points
    }

    pub async fn entries_of(&self, purchase: ObjectId) -> Vec<RewardEntryDoc> {
        self.store
            .reward_entries()
            .find(doc! {"relatedTransaction": purchase})
            .sort(doc! {"_id": 1})
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap()
    }

    pub async fn all(&self, collection: &str) -> Vec<Document> {
        self.store
            .database()
            .collection::<Document>(collection)
            .find(doc! {})
            .sort(doc! {"_id": 1})
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap()
    }

    /// Σ of every wallet.
    pub async fn total_wallets(&self) -> i128 {
        self.all("customers")
            .await
            .iter()
            .map(|c| i128::from(c.get_i64("points").unwrap()))
            .sum()
    }
}

/// Checks that a completed purchase's entries and pools add up to its R, to the milli-point.
pub async fn assert_conserved(world: &World, purchase: ObjectId) {
    let p = world
        .store
        .purchases()
        .find_one(doc! {"_id": purchase})
        .await
        .unwrap()
        .unwrap();
    let entries = world.entries_of(purchase).await;
    let total: i64 = entries.iter().map(|e| e.amount.as_milli()).sum();
    assert_eq!(
        total,
        p.reward_points_earned.as_milli(),
        "entries add up to R for {purchase}"
    );
    let log = p
        .tree_distribution
        .expect("a completed purchase has its log");
    let paid: i64 = log.payouts.iter().map(|x| x.amount.as_milli()).sum();
    assert_eq!(
        log.app_final.as_milli() + log.gifts_final.as_milli() + paid,
        p.reward_points_earned.as_milli()
    );
    assert_eq!(p.gifts_points_share, log.gifts_final);
}
