#![allow(clippy::unwrap_used, clippy::expect_used)]

//! The real `reward-worker` and `retry-failed` binaries, built and run by `cargo lambda watch`, on
//! the real test database, invoked with the sample events in `infra/events/` exactly as
//! `cargo lambda invoke --data-file` sends them.

use std::time::Duration;

use mall_domain::checkout::CheckoutRequest;
use mall_domain::RewardPolicy;
use mall_store::bson::doc;
use mall_store::testing::documents::JobStatus;
use mall_store::{CheckoutCommand, Store};
use mall_testkit::db::{fresh_database_name, store_on, test_mongodb_uri};
use mall_testkit::emulator::{read_json, LambdaEmulator};
use mall_testkit::seed;
use serde_json::{json, Value};

const READY_TIMEOUT: Duration = Duration::from_secs(600);

async fn invoke(
    http: &reqwest::Client,
    emulator: &LambdaEmulator,
    function: &str,
    event: &Value,
) -> Value {
    let response = http
        .post(emulator.invoke_url(function))
        .json(event)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "{function}: {:?}",
        response.text().await
    );
    response.json().await.unwrap()
}

async fn checkout(
    store: &Store,
    buyer: mall_store::bson::oid::ObjectId,
) -> mall_store::CheckoutReceipt {
    store
        .checkouts()
        .checkout(&CheckoutCommand {
            customer_id: buyer,
            request: &CheckoutRequest::default(),
            idempotency_key: None,
            policy: &RewardPolicy::default(),
            economy: mall_store::testing::checkout::Economy::Split,
            job_max_attempts: 3,
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn worker_and_operator_binaries_answer_their_sample_events() {
    let uri = test_mongodb_uri();
    let database = fresh_database_name();
    let mut emulator = LambdaEmulator::start(&[
        ("MONGODB_URI", uri.as_str()),
        ("MONGODB_DATABASE", database.as_str()),
        ("RUST_LOG", "info"),
    ]);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();

    // Both binaries answer (built on their first invocation): a drain of an empty queue, a status.
    let manual = read_json("infra/events/worker-manual.json");
    emulator
        .wait_until_invocable("reward-worker", &manual, READY_TIMEOUT, |status, body| {
            status == 200 && body.contains("\"claimed\":0")
        })
        .await;
    let status_event = read_json("infra/events/retry-failed-status.json");
    emulator
        .wait_until_invocable(
            "retry-failed",
            &status_event,
            READY_TIMEOUT,
            |status, body| status == 200 && body.contains("\"ok\":true"),
        )
        .await;

    // A tree, two purchases: one will complete, one will die (its buyer is deleted).
    let store = store_on(&database).await;
    let tree = json!({"customers": [
        {"id": "buyer", "parent": "parent", "level": "A", "active": true, "verified": true},
        {"id": "doomed", "parent": "parent", "level": "A", "active": true, "verified": true},
        {"id": "parent", "parent": null, "level": "B", "active": true, "verified": true}]});
    let ids = seed::scenario_customers(&store, &tree, "100").await;
    let product = seed::product(&store, "10", "100", true).await;
    seed::fill_cart(&store, ids["buyer"], &[(product, 1)]).await;
    let good = checkout(&store, ids["buyer"]).await;
    seed::fill_cart(&store, ids["doomed"], &[(product, 1)]).await;
    let bad = checkout(&store, ids["doomed"]).await;
    store
        .customers()
        .delete_one(doc! {"_id": ids["doomed"]})
        .await
        .unwrap();

    // The worker, woken by the CheckoutJobQueued sample event.
    let queued = read_json("infra/events/worker-checkout-job-queued.json");
    let summary = invoke(&http, &emulator, "reward-worker", &queued).await;
    assert_eq!(
        (
            summary["claimed"].as_u64(),
            summary["completed"].as_u64(),
            summary["failed"].as_u64()
        ),
        (Some(2), Some(1), Some(1)),
        "{summary}"
    );
    assert_eq!(
        store
            .queue()
            .job(good.job_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        JobStatus::Completed
    );
    let parent = store
        .customers()
        .find_one(doc! {"_id": ids["parent"]})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(parent.points, "101.75".parse().unwrap());

    // The operator sees the dead job (with `cargo lambda invoke --data-file`, as the README
    // says), dry-runs a filter, then re-drives it by id.
    let status =
        emulator.cargo_lambda_invoke("retry-failed", "infra/events/retry-failed-status.json");
    assert_eq!(status["status"]["failed"], json!(1), "{status}");
    assert_eq!(
        status["status"]["recentFailures"][0]["jobId"],
        json!(bad.job_id.to_hex())
    );

    let mut dry_run = read_json("infra/events/retry-failed-redrive-all-dry-run.json");
    dry_run["failedBefore"] = json!("2999-01-01T00:00:00Z");
    dry_run["errorContains"] = json!("does not exist");
    let report = invoke(&http, &emulator, "retry-failed", &dry_run).await;
    assert_eq!(report["matched"], json!([bad.job_id.to_hex()]), "{report}");
    assert_eq!(report["redriven"], json!([]));
    assert_eq!(
        store.queue().job(bad.job_id).await.unwrap().unwrap().status,
        JobStatus::Failed
    );

    let mut redrive = read_json("infra/events/retry-failed-redrive.json");
    redrive["jobIds"] = json!([bad.job_id.to_hex(), good.job_id.to_hex()]);
    let report = invoke(&http, &emulator, "retry-failed", &redrive).await;
    assert_eq!(report["redriven"], json!([bad.job_id.to_hex()]), "{report}");
    assert_eq!(
        report["skipped"][0]["reason"],
        json!("notFailed"),
        "the completed job is left alone"
    );
    assert_eq!(
        store.queue().job(bad.job_id).await.unwrap().unwrap().status,
        JobStatus::Pending
    );

    // A bad request is a clear error result, not a crash.
    let bad_request = invoke(
        &http,
        &emulator,
        "retry-failed",
        &json!({"action": "purge"}),
    )
    .await;
    assert_eq!(bad_request["ok"], json!(false));
    assert_eq!(bad_request["error"]["code"], json!("INVALID_REQUEST"));

    store.database().drop().await.unwrap();
}
