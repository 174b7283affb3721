#![allow(clippy::unwrap_used, clippy::expect_used)]

//! A database outage, with the real `checkout` and `reward-worker` binaries under
//! `cargo lambda watch` on a private on-disk server that the test stops and restarts.
//!
//! While the server is down: checkout answers `503 UNAVAILABLE` with `Retry-After` (and no
//! internal detail), the worker's drain claims nothing and leaves its job claimable, nothing is
//! half-written. After the restart, with the same warm function instances: the refused checkout
//! goes through, the worker completes every job, and the audit is clean.

use std::time::{Duration, Instant};

use mall_store::bson::DateTime;
use mall_store::Store;
use mall_testkit::auth::{local_token, LOCAL_JWT_SECRET};
use mall_testkit::db::{fresh_database_name, snapshot};
use mall_testkit::emulator::{read_json, LambdaEmulator};
use mall_testkit::seed;
use mall_testkit::server::PrivateServer;
use serde_json::{json, Value};

const READY_TIMEOUT: Duration = Duration::from_secs(600);

async fn store_on_server(uri: &str, database: &str) -> Store {
    let options = mongodb::options::ClientOptions::parse(uri).await.unwrap();
    Store::with_options(options, database).unwrap()
}

async fn drain(http: &reqwest::Client, emulator: &LambdaEmulator, event: &Value) -> Value {
    let response = http
        .post(emulator.invoke_url("reward-worker"))
        .json(event)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_refuses_cleanly_and_everything_completes_after_the_restart() {
    let mut server = PrivateServer::start();
    let (uri, database) = (server.uri(), fresh_database_name());
    let mut emulator = LambdaEmulator::start(&[
        ("MONGODB_URI", uri.as_str()),
        ("MONGODB_DATABASE", database.as_str()),
        ("LOCAL_JWT_SECRET", LOCAL_JWT_SECRET),
        ("RUST_LOG", "info"),
    ]);
    let store = store_on_server(&uri, &database).await;
    store.ensure_indexes().await.unwrap();
    let referrer = seed::customer(&store, "0").await;
    let first = seed::customer(&store, "5000").await;
    let second = seed::customer(&store, "5000").await;
    for buyer in [first, second] {
        seed::refer(&store, buyer, referrer).await;
    }
    let dates = seed::product(&store, "500", "50", true).await;
    seed::fill_cart(&store, first, &[(dates, 2)]).await;
    seed::fill_cart(&store, second, &[(dates, 1)]).await;

    // Both functions up and warm while the database is.
    let checkout_url = emulator.function_url("checkout", "/api/cart/checkout");
    emulator
        .wait_until_ready(
            &format!("{checkout_url}/000000000000000000000000"),
            READY_TIMEOUT,
            |status, body| status == 401 && body.contains("UNAUTHENTICATED"),
        )
        .await;
    let scheduled = read_json("infra/events/worker-scheduled.json");
    emulator
        .wait_until_invocable(
            "reward-worker",
            &scheduled,
            READY_TIMEOUT,
            |status, body| status == 200 && body.contains("\"stopped\":\"empty\""),
        )
        .await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let post = |buyer| {
        http.post(&checkout_url)
            .bearer_auth(local_token(buyer))
            .header("content-type", "application/json")
            .body(r#"{"deliveryAddress": "1 Main St"}"#)
            .send()
    };
    let response = post(first).await.unwrap();
    assert_eq!(response.status(), 200);
    let queued: Value = response.json().await.unwrap();
    let first_job = queued["data"]["jobId"].as_str().unwrap().to_owned();

    // The outage.
    let before = snapshot(&store).await;
    server.stop();
    let asked = Instant::now();
    let refused = post(second).await.unwrap();
    let waited = asked.elapsed();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], json!("UNAVAILABLE"));
    assert!(
        !body.to_string().contains("127.0.0.1"),
        "no internal detail: {body}"
    );
    let summary = drain(&http, &emulator, &scheduled).await;
    assert_eq!(summary["claimed"], json!(0), "{summary}");
    assert_eq!(summary["stopped"], json!("database_error"), "{summary}");
    eprintln!("outage: checkout refused after {waited:.1?}; worker: {summary}");

    server.restart();
    assert_eq!(
        snapshot(&store).await,
        before,
        "nothing was written, half or whole, during the outage"
    );
    let job = store
        .queue()
        .job(first_job.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (job.status, job.attempts),
        (mall_store::testing::documents::JobStatus::Pending, 0),
        "the job is claimable as it was"
    );

    // After the restart the same instances recover by themselves.
    let retried = post(second).await.unwrap();
    assert_eq!(retried.status(), 200, "{:?}", retried.text().await);
    let summary = drain(&http, &emulator, &scheduled).await;
    assert_eq!(summary["completed"], json!(2), "{summary}");
    let report = store.operators().audit().await.unwrap();
    assert_eq!(report.violations, vec![]);
    assert_eq!(report.jobs_by_status.completed, 2);
    let status = store
        .operators()
        .queue_status(DateTime::now())
        .await
        .unwrap();
    assert_eq!((status.pending, status.failed), (0, 0));
}

/// A checkout instance that starts while the database is down (its `main` cannot reach the
/// database for the indexes or the reward policy): it still starts, answers `503 UNAVAILABLE`
/// with `Retry-After` — never `500` — and serves normally once the database is back, reading
/// the policy then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_instance_started_during_an_outage_answers_503_then_serves() {
    let mut server = PrivateServer::start();
    let (uri, database) = (server.uri(), fresh_database_name());
    let store = store_on_server(&uri, &database).await;
    store.ensure_indexes().await.unwrap();
    let buyer = seed::customer(&store, "5000").await;
    let dates = seed::product(&store, "500", "50", true).await;
    seed::fill_cart(&store, buyer, &[(dates, 2)]).await;
    server.stop();

    let mut emulator = LambdaEmulator::start(&[
        ("MONGODB_URI", uri.as_str()),
        ("MONGODB_DATABASE", database.as_str()),
        ("LOCAL_JWT_SECRET", LOCAL_JWT_SECRET),
        ("RUST_LOG", "info"),
    ]);
    // The first request starts the instance, with the database down.
    let checkout_url = emulator.function_url("checkout", "/api/cart/checkout");
    emulator
        .wait_until_ready(
            &format!("{checkout_url}/000000000000000000000000"),
            READY_TIMEOUT,
            |status, body| status == 401 && body.contains("UNAUTHENTICATED"),
        )
        .await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let post = || {
        http.post(&checkout_url)
            .bearer_auth(local_token(buyer))
            .body("{}")
            .send()
    };
    let refused = post().await.unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");

    server.restart();
    let mut statuses = Vec::new();
    for _ in 0..40 {
        let response = post().await.unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 200 {
            break;
        }
        assert_eq!(response.status(), 503, "{statuses:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(statuses.last(), Some(&200), "{statuses:?}");
    assert!(
        !emulator.log_text().contains("panicked"),
        "{}",
        emulator.log_tail(40)
    );
}
