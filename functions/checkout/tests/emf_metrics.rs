//! The metrics the checkout emits, as CloudWatch will read them: the real handler with the real
//! Embedded Metric Format recorder installed (this test binary is its own process, so the global
//! recorder is this test's alone), flushed and parsed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use checkout::auth::Authenticator;
use checkout::App;
use lambda_http::Body;
use mall_runtime::telemetry;
use serde_json::{json, Value};

#[tokio::test]
async fn a_refused_checkout_is_counted_by_outcome_with_its_latency() {
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(telemetry::NAMESPACE)
        .with_dimension("Service", "checkout")
        .with_timestamp(1_700_000_000_000)
        .init()
        .unwrap();
    telemetry::describe_metrics();

    // No database is needed: an unauthenticated request never reaches it.
    let options =
        mongodb::options::ClientOptions::parse("mongodb://127.0.0.1:1/?directConnection=true")
            .await
            .unwrap();
    let app = App {
        store: mall_store::Store::with_options(options, "unused").unwrap(),
        auth: Authenticator::authorizer("sub"),
        events: None,
        policy: checkout::policy::PolicySource::loaded(mall_domain::RewardPolicy::default()),
        economy: mall_store::testing::checkout::Economy::Split,
        job_max_attempts: 3,
        deadline: std::time::Duration::from_secs(2),
    };
    for _ in 0..2 {
        let request = lambda_http::http::Request::builder()
            .method("POST")
            .uri("/api/cart/checkout")
            .body(Body::from("{}"))
            .unwrap();
        assert_eq!(app.handle(request).await.status(), 401);
    }

    let mut out = Vec::new();
    collector.flush(&mut out).unwrap();
    let documents: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let counted = documents
        .iter()
        .find(|d| d.get("CheckoutsByOutcome").is_some())
        .expect("a document with the outcome counter");
    assert_eq!(counted["CheckoutsByOutcome"], json!(2));
    assert_eq!(counted["Outcome"], json!("UNAUTHENTICATED"));
    assert_eq!(counted["Service"], json!("checkout"));
    let directive = &counted["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], json!("Mall"));
    assert!(directive["Dimensions"][0]
        .as_array()
        .unwrap()
        .contains(&json!("Service")));
    let latency = documents
        .iter()
        .find_map(|d| d.get("CheckoutLatencyMs"))
        .expect("the latency histogram");
    assert_eq!(
        latency.as_array().map(Vec::len),
        Some(2),
        "one latency per request: {latency}"
    );
}
