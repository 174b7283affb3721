//! The `CheckoutJobQueued` event (SPEC §5.2 step 10) against a local EventBridge (moto's server on
//! loopback, started by `infra/with-test-services.sh`): a custom bus with a rule that routes the
//! event to an SQS queue, which the test reads. A failing bus never changes the checkout's answer.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::time::{Duration, Instant};

use checkout::events::JobQueuedPublisher;
use mall_store::bson::{doc, oid::ObjectId};
use serde_json::{json, Value};
use support::*;

fn endpoint() -> String {
    local_aws_endpoint()
}

async fn eventbridge(endpoint: &str) -> aws_sdk_eventbridge::Client {
    // The function's own loader, so the events travel through the HTTP client it deploys with.
    aws_sdk_eventbridge::Client::new(&aws_config_at(endpoint).await)
}

/// SQS through its JSON protocol: enough to create a queue and read it. moto reads the service
/// from the credential scope, so the request carries an (unchecked) SigV4-shaped header.
async fn sqs(endpoint: &str, action: &str, body: Value) -> Value {
    reqwest::Client::new()
        .post(endpoint)
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/sqs/aws4_request, \
             SignedHeaders=host, Signature=0",
        )
        .header("x-amz-target", format!("AmazonSQS.{action}"))
        .header("content-type", "application/x-amz-json-1.0")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A fresh bus whose `CheckoutJobQueued` events land in a fresh queue; returns (bus, queue URL).
async fn bus_with_queue(client: &aws_sdk_eventbridge::Client, endpoint: &str) -> (String, String) {
    let name = format!("mall-test-{}", ObjectId::new().to_hex());
    client.create_event_bus().name(&name).send().await.unwrap();
    let queue = sqs(endpoint, "CreateQueue", json!({"QueueName": name})).await;
    let queue_url = queue["QueueUrl"].as_str().unwrap().to_owned();
    client
        .put_rule()
        .name(&name)
        .event_bus_name(&name)
        .event_pattern(r#"{"source": ["mall.checkout"], "detail-type": ["CheckoutJobQueued"]}"#)
        .send()
        .await
        .unwrap();
    client
        .put_targets()
        .rule(&name)
        .event_bus_name(&name)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(format!("arn:aws:sqs:us-east-1:123456789012:{name}"))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    (name, queue_url)
}

async fn received(endpoint: &str, queue_url: &str) -> Vec<Value> {
    let reply = sqs(
        endpoint,
        "ReceiveMessage",
        json!({"QueueUrl": queue_url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 1}),
    )
    .await;
    reply["Messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| serde_json::from_str(m["Body"].as_str().unwrap()).unwrap())
        .collect()
}

async fn seeded(t: &TestApp) -> ObjectId {
    let buyer = t.customer("5000").await;
    let product = t.product("500", "50", true).await;
    t.fill_cart(buyer, &[(product, 2)]).await;
    buyer
}

#[tokio::test]
async fn a_committed_checkout_puts_one_job_queued_event_on_the_bus() {
    let endpoint = endpoint();
    let client = eventbridge(&endpoint).await;
    let (bus, queue_url) = bus_with_queue(&client, &endpoint).await;
    let mut t = TestApp::new().await;
    t.app.events = Some(JobQueuedPublisher::new(client, bus));
    let buyer = seeded(&t).await;

    let response = t
        .send(checkout_request(buyer, "{}", Some("event-key-0001")))
        .await;
    assert_eq!(response.status(), 200);
    let data = json(&response)["data"].clone();

    let events = received(&endpoint, &queue_url).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event["source"], json!("mall.checkout"));
    assert_eq!(event["detail-type"], json!("CheckoutJobQueued"));
    assert_eq!(
        event["detail"],
        json!({"jobId": data["jobId"], "checkoutTransactionId": data["transactionId"]})
    );

    // A replay of the same key commits nothing, so it announces nothing.
    let replay = t
        .send(checkout_request(buyer, "{}", Some("event-key-0001")))
        .await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert!(received(&endpoint, &queue_url).await.is_empty());
}

#[tokio::test]
async fn a_failing_bus_never_changes_the_checkout() {
    let endpoint = endpoint();
    let missing_bus = eventbridge(&endpoint).await;
    let unreachable = eventbridge("http://127.0.0.1:1").await;
    for (client, bus) in [
        (
            missing_bus,
            format!("no-such-bus-{}", ObjectId::new().to_hex()),
        ),
        (unreachable, "mall-events".to_owned()),
    ] {
        let mut t = TestApp::new().await;
        t.app.events = Some(JobQueuedPublisher::new(client, bus));
        let buyer = seeded(&t).await;
        let started = Instant::now();
        let response = t.send(checkout_request(buyer, "{}", None)).await;
        assert_eq!(response.status(), 200);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the publish is bounded in time"
        );
        assert_eq!(t.count("checkoutjobs", doc! {"customerId": buyer}).await, 1);
        assert_eq!(t.wallet(buyer).await, "4000".parse().unwrap());
    }
}
