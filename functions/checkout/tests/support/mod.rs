//! The checkout app on a fresh database of the real test server, every command it sends
//! counted; requests as API Gateway would deliver them. Built on `mall-testkit`.

#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)] // shared by several test binaries

use checkout::auth::Authenticator;
use checkout::App;
use lambda_http::{Body, Request, Response};
use mall_domain::{MilliPoints, RewardPolicy};
use mall_store::bson::{doc, oid::ObjectId, Document};
use mall_store::testing::documents::CartDoc;
use mall_store::Store;
use mall_testkit::db::{self, CommandLog};
use mall_testkit::seed;
use serde_json::Value;

pub use mall_testkit::auth::LOCAL_JWT_SECRET as SECRET;
pub use mall_testkit::auth::{in_an_hour, local_token as token_for, token_with};

pub struct TestApp {
    pub app: App,
    pub store: Store,
    pub commands: CommandLog,
}

/// The checkout app as `main` builds it, on `store`.
pub fn app_on(store: Store) -> App {
    App {
        store,
        auth: Authenticator::app_tokens("Customer_id", SECRET.as_bytes()),
        events: None,
        policy: checkout::policy::PolicySource::loaded(RewardPolicy::default()),
        economy: mall_store::testing::checkout::Economy::Split,
        job_max_attempts: 3,
        deadline: std::time::Duration::from_secs(2),
    }
}

impl TestApp {
    pub async fn new() -> Self {
        let (store, commands, _) = db::fresh_counted_store().await;
        TestApp {
            app: app_on(store.clone()),
            store,
            commands,
        }
    }

    pub async fn send(&self, request: Request) -> Response<Body> {
        self.app.handle(request).await
    }

    pub async fn customer(&self, points: &str) -> ObjectId {
        seed::customer(&self.store, points).await
    }

    pub async fn product(&self, price: &str, reward: &str, active: bool) -> ObjectId {
        seed::product(&self.store, price, reward, active).await
    }

    pub async fn fill_cart(&self, customer: ObjectId, lines: &[(ObjectId, i64)]) {
        seed::fill_cart(&self.store, customer, lines).await;
    }

    pub async fn fill_cart_raw(&self, customer: ObjectId, item: Document) {
        seed::raw_cart(&self.store, customer, item).await;
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

    pub async fn snapshot(&self) -> Vec<(String, Vec<Document>)> {
        db::snapshot(&self.store).await
    }
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

/// The local AWS services' endpoint, which `infra/with-test-services.sh` starts (moto).
pub fn local_aws_endpoint() -> String {
    std::env::var("MALL_TEST_EVENTBRIDGE_ENDPOINT").expect(
        "MALL_TEST_EVENTBRIDGE_ENDPOINT is not set: run the tests with `make test` \
         (infra/with-test-services.sh starts the local AWS services)",
    )
}

/// The AWS configuration the checkout builds (its own loader and HTTPS client), pointed at
/// `endpoint` with test credentials.
pub async fn aws_config_at(endpoint: &str) -> aws_config::SdkConfig {
    checkout::events::aws_config_loader()
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_eventbridge::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .load()
        .await
}
