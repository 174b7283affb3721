//! Random malformed, oversized, wrong-typed and hostile requests (bodies, `Idempotency-Key`
//! headers, tokens) against the real handler and database: every one gets a 4xx with a JSON error
//! body, and not one write command reaches the database.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use lambda_http::{Body, Request};
use mall_testkit::hostile::{hostile_request, HostileRequest};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};
use support::*;

const CASES: u32 = 1_000;

/// The plain request of the shared hostile strategy as the handler receives it.
fn build(case: &HostileRequest) -> Request {
    let mut builder = lambda_http::http::Request::builder()
        .method(case.method)
        .uri(case.path.as_str());
    for (name, value) in &case.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder.body(Body::from(case.body.clone())).unwrap()
}

#[test]
fn hostile_requests_get_a_4xx_and_write_nothing() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (t, buyer) = runtime.block_on(async {
        let t = TestApp::new().await;
        let buyer = t.customer("5000").await;
        let product = t.product("500", "50", true).await;
        t.fill_cart(buyer, &[(product, 2)]).await;
        (t, buyer)
    });
    let before = runtime.block_on(t.snapshot());

    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let statuses = std::cell::RefCell::new(std::collections::BTreeMap::new());
    runner
        .run(&hostile_request(buyer), |case| {
            t.commands.clear();
            let response = runtime.block_on(t.send(build(&case)));
            let status = response.status().as_u16();
            *statuses.borrow_mut().entry(status).or_insert(0u32) += 1;
            prop_assert!((400..500).contains(&status), "{case:?} → {status}");
            let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
            prop_assert_eq!(&body["success"], &json!(false));
            prop_assert!(body["error"]["code"].is_string());
            prop_assert!(
                t.commands.writes().is_empty(),
                "{case:?} wrote {:?}",
                t.commands.writes()
            );
            Ok(())
        })
        .unwrap();

    assert_eq!(
        runtime.block_on(t.snapshot()),
        before,
        "the database is exactly as it was"
    );
    // The generator really reached every kind of refusal.
    let statuses = statuses.into_inner();
    // (404: hostile GET paths and unknown customers; 405: other methods, ~9 % of draws.)
    for (status, at_least) in [(400, 100), (401, 100), (404, 10), (405, 10)] {
        assert!(
            statuses.get(&status).copied().unwrap_or(0) >= at_least,
            "{statuses:?}"
        );
    }
}
