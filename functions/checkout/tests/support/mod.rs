//! Test support: the checkout app on a fresh database of the real test server, with every
//! database command it sends counted through the driver's command monitoring.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use checkout::auth::Authenticator;
use checkout::App;
use futures_util::TryStreamExt;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use lambda_http::{Body, Request, Response};
use mall_domain::{Level, MilliPoints, RewardPolicy};
use mall_store::bson::{doc, oid::ObjectId, DateTime, Document};
use mall_store::documents::{CartDoc, CartItemDoc, CustomerDoc, ProductDoc, REFERRAL_ACTIVE};
use mall_store::Store;
use mongodb::event::command::CommandEvent;
use mongodb::event::EventHandler;
use mongodb::options::ClientOptions;
use serde_json::Value;

pub const SECRET: &str = "test-secret-for-local-tokens";

/// Every command sent, by name, in order.
#[derive(Clone, Default)]
pub struct CommandLog(Arc<Mutex<Vec<String>>>, Arc<AtomicUsize>);

impl CommandLog {
    pub fn names(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    /// Commands that can change data.
    pub fn writes(&self) -> Vec<String> {
        self.names()
            .into_iter()
            .filter(|n| {
                matches!(
                    n.as_str(),
                    "insert"
                        | "update"
                        | "delete"
                        | "findAndModify"
                        | "bulkWrite"
                        | "commitTransaction"
                )
            })
            .collect()
    }
}

pub struct TestApp {
    pub app: App,
    pub store: Store,
    pub commands: CommandLog,
}

pub fn test_uri() -> String {
    std::env::var("MALL_TEST_MONGODB_URI").expect(
        "MALL_TEST_MONGODB_URI is not set: run the tests with `make test` \
         (or `infra/with-test-services.sh cargo test`), which starts the test database",
    )
}

/// A store on a fresh database of the test server, counting its commands.
pub async fn counted_store(uri: &str, database: &str) -> (Store, CommandLog) {
    let log = CommandLog::default();
    let mut options = ClientOptions::parse(uri).await.unwrap();
    let sink = log.clone();
    options.command_event_handler = Some(EventHandler::callback(move |event: CommandEvent| {
        if let CommandEvent::Started(started) = event {
            sink.0.lock().unwrap().push(started.command_name);
            sink.1.fetch_add(1, Ordering::Relaxed);
        }
    }));
    (Store::with_options(options, database).unwrap(), log)
}

impl TestApp {
    pub async fn new() -> Self {
        Self::on(&test_uri()).await
    }

    pub async fn on(uri: &str) -> Self {
        let database = format!("test_{}", ObjectId::new().to_hex());
        let (store, commands) = counted_store(uri, &database).await;
        store.ensure_indexes().await.unwrap();
        let app = App {
            store: store.clone(),
            auth: Authenticator::new("sub", Some(SECRET)),
            events: None,
            policy: RewardPolicy::default(),
            job_max_attempts: 3,
        };
        commands.clear();
        TestApp {
            app,
            store,
            commands,
        }
    }

    pub async fn send(&self, request: Request) -> Response<Body> {
        self.app.handle(request).await
    }

    /// A customer with `points` in the wallet (and no cart).
    pub async fn customer(&self, points: &str) -> ObjectId {
        let now = DateTime::now();
        let customer = CustomerDoc {
            id: ObjectId::new(),
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
        self.store.customers().insert_one(&customer).await.unwrap();
        customer.id
    }

    pub async fn product(&self, price: &str, reward: &str, active: bool) -> ObjectId {
        let product = ProductDoc {
            id: ObjectId::new(),
            name: "Dates box".into(),
            name_arabic: "علبة تمر".into(),
            price: price.parse().unwrap(),
            reward_points: reward.parse().unwrap(),
            is_active: active,
        };
        self.store.products().insert_one(&product).await.unwrap();
        product.id
    }

    /// Sets the customer's cart to these lines (creating it if needed).
    pub async fn fill_cart(&self, customer: ObjectId, lines: &[(ObjectId, i64)]) {
        let items: Vec<CartItemDoc> = lines
            .iter()
            .map(|(product_id, quantity)| CartItemDoc {
                product_id: *product_id,
                quantity: *quantity,
            })
            .collect();
        let items = mall_store::bson::to_bson(&items).unwrap();
        self.store
            .carts()
            .update_one(
                doc! {"customerId": customer},
                doc! {"$set": {"items": items}, "$setOnInsert": {"_id": ObjectId::new()}},
            )
            .upsert(true)
            .await
            .unwrap();
    }

    /// Sets one raw cart line (for quantities of other BSON types).
    pub async fn fill_cart_raw(&self, customer: ObjectId, item: Document) {
        let cart = doc! {"_id": ObjectId::new(), "customerId": customer, "items": [item]};
        self.store
            .database()
            .collection::<Document>("carts")
            .insert_one(cart)
            .await
            .unwrap();
    }

    pub async fn wallet(&self, customer: ObjectId) -> MilliPoints {
        self.store
            .customers()
            .find_one(doc! {"_id": customer})
            .await
            .unwrap()
            .unwrap()
            .points
    }

    pub async fn cart(&self, customer: ObjectId) -> Option<CartDoc> {
        self.store
            .carts()
            .find_one(doc! {"customerId": customer})
            .await
            .unwrap()
    }

    pub async fn count(&self, collection: &str, filter: Document) -> u64 {
        self.store
            .database()
            .collection::<Document>(collection)
            .count_documents(filter)
            .await
            .unwrap()
    }

    /// Every document of every collection the checkout touches, to compare before and after.
    pub async fn snapshot(&self) -> Vec<(String, Vec<Document>)> {
        let mut all = vec![];
        for name in [
            "customers",
            "products",
            "carts",
            "transactions",
            "checkoutjobs",
        ] {
            let docs: Vec<Document> = self
                .store
                .database()
                .collection::<Document>(name)
                .find(doc! {})
                .sort(doc! {"_id": 1})
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            all.push((name.to_owned(), docs));
        }
        all
    }
}

pub fn token_for(customer: ObjectId) -> String {
    token_with(serde_json::json!({"sub": customer.to_hex(), "exp": in_an_hour()}))
}

pub fn token_with(claims: Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

pub fn in_an_hour() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600
}

pub fn checkout_request(customer: ObjectId, body: &str, key: Option<&str>) -> Request {
    let mut builder = lambda_http::http::Request::builder()
        .method("POST")
        .uri("https://api.example.com/api/cart/checkout")
        .header("authorization", format!("Bearer {}", token_for(customer)))
        .header("content-type", "application/json");
    if let Some(key) = key {
        builder = builder.header("idempotency-key", key);
    }
    builder.body(Body::from(body.to_owned())).unwrap()
}

pub fn get_request(customer: ObjectId, transaction_id: &str) -> Request {
    lambda_http::http::Request::builder()
        .method("GET")
        .uri(format!(
            "https://api.example.com/api/cart/checkout/{transaction_id}"
        ))
        .header("authorization", format!("Bearer {}", token_for(customer)))
        .body(Body::Empty)
        .unwrap()
}

pub fn json(response: &Response<Body>) -> Value {
    serde_json::from_slice(response.body().as_ref()).unwrap()
}

pub fn amount(value: &Value) -> MilliPoints {
    value.to_string().parse().unwrap()
}

pub const SHORT: Duration = Duration::from_millis(10);
