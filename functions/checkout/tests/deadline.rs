//! A checkout that cannot finish within `CHECKOUT_DEADLINE_MS` is answered `503 UNAVAILABLE`
//! with `Retry-After` at the deadline, not when the database gives up: the API's throttle
//! counts on every request leaving the function within it (README "Connection budget").

mod support;

use std::time::{Duration, Instant};

use checkout::auth::Authenticator;
use checkout::App;
use mall_store::bson::oid::ObjectId;
use support::{checkout_request, SECRET};

#[tokio::test]
async fn a_checkout_past_its_deadline_answers_503_with_retry_after_at_the_deadline() {
    // A server that never answers: the driver would wait out its 5 s server selection.
    let options =
        mongodb::options::ClientOptions::parse("mongodb://127.0.0.1:1/?directConnection=true")
            .await
            .unwrap();
    let deadline = Duration::from_millis(300);
    let app = App {
        store: mall_store::Store::with_options(options, "unused").unwrap(),
        auth: Authenticator::app_tokens("Customer_id", SECRET.as_bytes()),
        events: None,
        policy: checkout::policy::PolicySource::loaded(mall_domain::RewardPolicy::default()),
        economy: mall_store::testing::checkout::Economy::Split,
        job_max_attempts: 3,
        deadline,
    };
    let started = Instant::now();
    let response = app
        .handle(checkout_request(ObjectId::new(), "{}", Some("deadline-1")))
        .await;
    let took = started.elapsed();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(body["error"]["code"], "UNAVAILABLE");
    assert!(
        took >= deadline && took < Duration::from_secs(2),
        "answered after {took:?}, the deadline is {deadline:?}"
    );
}
