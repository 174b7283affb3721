#![allow(clippy::unwrap_used, clippy::expect_used)]

//! HTTP fuzzing of the running `checkout` binary under `cargo lambda watch`: thousands of
//! malformed, oversized, wrong-typed and hostile requests (bodies, headers, tokens, paths, methods;
//! MongoDB operators in every field) from the shared strategy in `mall_testkit::hostile`.
//!
//! Every answer is a 4xx with a JSON error envelope and no internal text, the function never
//! panics, and the database is exactly as it was. `MALL_FUZZ_CASES` sets the number of requests
//! (default 10,000).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mall_testkit::auth::LOCAL_JWT_SECRET;
use mall_testkit::db::{fresh_database_name, snapshot, store_on, test_mongodb_uri};
use mall_testkit::emulator::LambdaEmulator;
use mall_testkit::hostile::{hostile_request, HostileRequest};
use mall_testkit::seed;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestRng, TestRunner};
use serde_json::Value;

const READY_TIMEOUT: Duration = Duration::from_secs(600);
const IN_FLIGHT: usize = 4;
/// Words that would mean an internal error leaked into an answer.
const LEAKS: &[&str] = &[
    "mongodb",
    "panicked",
    "Error {",
    "StoreError",
    "backtrace",
    "src/",
];

fn cases() -> usize {
    std::env::var("MALL_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
}

async fn send(
    http: &reqwest::Client,
    base: &str,
    case: &HostileRequest,
) -> Result<(u16, String), String> {
    let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
    let mut request = http
        .request(method, format!("{base}{}", case.path))
        .body(case.body.clone());
    // The emulator refuses (500, before any function runs) a body that is not UTF-8 under a text
    // content type; API Gateway and the emulator pass binary bodies base64-encoded when the
    // content type says binary, so that is how such a body reaches the function.
    let binary = std::str::from_utf8(&case.body).is_err();
    for (name, value) in &case.headers {
        if !(binary && name == "content-type") {
            request = request.header(name.as_str(), value.as_str());
        }
    }
    if binary {
        request = request.header("content-type", "application/octet-stream");
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let text = response.text().await.map_err(|e| e.to_string())?;
    Ok((status, text))
}

/// What is wrong with an answer to a hostile request, if anything.
fn verdict(status: u16, text: &str) -> Option<String> {
    if !(400..500).contains(&status) {
        return Some(format!("status {status}"));
    }
    let body: Value = match serde_json::from_str(text) {
        Ok(body) => body,
        Err(_) => return Some("the body is not JSON".to_owned()),
    };
    if body["success"] != Value::Bool(false) || !body["error"]["code"].is_string() {
        return Some("not the error envelope".to_owned());
    }
    LEAKS
        .iter()
        .find(|leak| text.contains(*leak))
        .map(|leak| format!("leaks {leak:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_hostile_requests_get_4xx_and_change_nothing() {
    let (uri, database) = (test_mongodb_uri(), fresh_database_name());
    let mut emulator = LambdaEmulator::start(&[
        ("MONGODB_URI", uri.as_str()),
        ("MONGODB_DATABASE", database.as_str()),
        ("LOCAL_JWT_SECRET", LOCAL_JWT_SECRET),
        ("RUST_LOG", "warn"),
    ]);
    let store = store_on(&database).await;
    let buyer = seed::customer(&store, "5000").await;
    let product = seed::product(&store, "500", "50", true).await;
    seed::fill_cart(&store, buyer, &[(product, 2)]).await;

    let base = emulator.function_url("checkout", "");
    let base = base.trim_end_matches('/').to_owned();
    emulator
        .wait_until_ready(
            &format!("{base}/api/cart/checkout/000000000000000000000000"),
            READY_TIMEOUT,
            |status, body| status == 401 && body.contains("UNAUTHENTICATED"),
        )
        .await;
    let before = snapshot(&store).await;

    // A fixed seed: the same requests on every run, so a failure reproduces.
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &[7; 32]),
    );
    let strategy = hostile_request(buyer);
    let requests: Vec<HostileRequest> = (0..cases())
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect();

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let started = Instant::now();
    let answers: Vec<_> = futures_util::stream::iter(&requests)
        .map(|case| {
            let (http, base) = (&http, &base);
            async move { (case, send(http, base, case).await) }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let elapsed = started.elapsed();

    let mut statuses = BTreeMap::new();
    let mut wrong = Vec::new();
    for (case, answer) in &answers {
        match answer {
            Ok((status, text)) => {
                *statuses.entry(*status).or_insert(0u32) += 1;
                if let Some(why) = verdict(*status, text) {
                    wrong.push(format!(
                        "{why}: {} {} (broken: {}; headers {:?}; body {:?}) → {status} {text:.200}",
                        case.method,
                        case.path,
                        case.broken,
                        case.headers,
                        String::from_utf8_lossy(&case.body[..case.body.len().min(120)])
                    ));
                }
            }
            Err(e) => wrong.push(format!(
                "no answer: {} {} (broken: {}): {e}",
                case.method, case.path, case.broken
            )),
        }
    }
    eprintln!(
        "{} hostile requests in {elapsed:.1?} ({:.0}/s): {statuses:?}",
        requests.len(),
        requests.len() as f64 / elapsed.as_secs_f64()
    );
    assert!(
        wrong.is_empty(),
        "{} wrong answers, first: {:#?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    assert_eq!(snapshot(&store).await, before, "the database changed");
    let log = emulator.log_text();
    assert!(
        !log.contains("panicked"),
        "the function panicked\n{}",
        emulator.log_tail(40)
    );
    // Every kind of refusal was reached.
    for status in [400, 401, 404, 405] {
        assert!(
            statuses.get(&status).copied().unwrap_or(0) * 100 >= requests.len() as u32,
            "fewer than 1 % answered {status}: {statuses:?}"
        );
    }
}
