//! Random malformed, oversized, wrong-typed and hostile requests (bodies, `Idempotency-Key`
//! headers, tokens) against the real handler and database: every one gets a 4xx with a JSON error
//! body, and not one write command reaches the database.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use lambda_http::{Body, Request};
use mall_domain::checkout::CheckoutRequest;
use mall_store::bson::oid::ObjectId;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};
use support::*;

const CASES: u32 = 1_000;

#[derive(Clone, Debug)]
enum Auth {
    Valid,
    Missing,
    Garbage(String),
    WrongSecret,
    Expired,
    SubNotAnId(Value),
    UnknownCustomer,
    WrongScheme,
}

#[derive(Clone, Debug)]
enum Key {
    Absent,
    Valid,
    Invalid(String),
}

#[derive(Clone, Debug)]
enum BodyKind {
    Valid,
    Bytes(Vec<u8>),
    Json(Value),
    Oversized(usize),
    Truncated(usize),
}

fn hostile_json() -> impl Strategy<Value = Value> {
    let operator = prop_oneof![
        Just(json!({"$gt": ""})),
        Just(json!({"$ne": null})),
        Just(json!({"$where": "sleep(1000)"})),
        Just(json!({"$regex": ".*"})),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        operator.clone(),
    ];
    let bad_address = prop_oneof![
        Just(json!("")),
        Just(json!("   ")),
        Just(json!("a\u{0}b")),
        (501usize..700).prop_map(|n| json!("x".repeat(n))),
        operator.clone(),
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        Just(json!(["1 Main St"])),
    ];
    prop_oneof![
        // Not an object at all.
        leaf.clone(),
        proptest::collection::vec(leaf.clone(), 0..4).prop_map(Value::from),
        // An object with a bad deliveryAddress.
        bad_address.prop_map(|a| json!({"deliveryAddress": a})),
        // An object with fields that are not allowed (identity, prices, operators).
        ("[a-zA-Z$._]{1,12}", leaf).prop_filter_map("unknown field", |(k, v)| {
            (k != "deliveryAddress").then(|| json!({ k: v }))
        }),
        operator.prop_map(|o| json!({"customerId": o, "deliveryAddress": "1 Main St"})),
    ]
}

fn body_kind() -> impl Strategy<Value = BodyKind> {
    prop_oneof![
        // Random bytes, except the rare draw that is a valid body (e.g. only whitespace).
        proptest::collection::vec(any::<u8>(), 1..300)
            .prop_filter("must be invalid", |b| CheckoutRequest::parse(b).is_err())
            .prop_map(BodyKind::Bytes),
        hostile_json().prop_map(BodyKind::Json),
        (16 * 1024 + 1..40 * 1024usize).prop_map(BodyKind::Oversized),
        (1usize..30).prop_map(BodyKind::Truncated),
    ]
}

fn bad_key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_-]{0,7}",
        "[A-Za-z0-9_-]{129,160}",
        "[A-Za-z0-9_-]{3,20}[ !#$%&'*+./:;<=>?@^`{|}~][A-Za-z0-9_-]{3,20}",
    ]
}

fn auth_kind() -> impl Strategy<Value = Auth> {
    prop_oneof![
        Just(Auth::Missing),
        "[ -~]{0,80}".prop_map(Auth::Garbage),
        Just(Auth::WrongSecret),
        Just(Auth::Expired),
        prop_oneof![
            Just(json!({"$gt": ""})),
            Just(json!(42)),
            Just(json!(null)),
            "[ -~]{0,30}".prop_map(Value::from),
        ]
        .prop_map(Auth::SubNotAnId),
        Just(Auth::UnknownCustomer),
        Just(Auth::WrongScheme),
    ]
}

/// One request with at least one broken part: the broken part is drawn from the hostile set,
/// each other part is valid or hostile at random.
fn broken_request() -> impl Strategy<Value = (Auth, Key, BodyKind)> {
    let auth = prop_oneof![Just(Auth::Valid), auth_kind()];
    let key = prop_oneof![
        Just(Key::Absent),
        Just(Key::Valid),
        bad_key().prop_map(Key::Invalid)
    ];
    let body = prop_oneof![Just(BodyKind::Valid), body_kind()];
    (0..3u8, auth, key, body, auth_kind(), bad_key(), body_kind()).prop_map(
        |(broken, auth, key, body, bad_auth, bad_key, bad_body)| match broken {
            0 => (bad_auth, key, body),
            1 => (auth, Key::Invalid(bad_key), body),
            _ => (auth, key, bad_body),
        },
    )
}

fn build(customer: ObjectId, (auth, key, body): &(Auth, Key, BodyKind)) -> Request {
    let mut builder = lambda_http::http::Request::builder()
        .method("POST")
        .uri("/api/cart/checkout");
    let authorization = match auth {
        Auth::Valid => Some(format!("Bearer {}", token_for(customer))),
        Auth::Missing => None,
        Auth::Garbage(text) => Some(format!("Bearer {text}")),
        Auth::WrongSecret => Some(format!(
            "Bearer {}",
            jsonwebtoken::encode(
                &jsonwebtoken::Header::default(),
                &json!({"sub": customer.to_hex(), "exp": in_an_hour()}),
                &jsonwebtoken::EncodingKey::from_secret(b"not the secret"),
            )
            .unwrap()
        )),
        Auth::Expired => Some(format!(
            "Bearer {}",
            token_with(json!({"sub": customer.to_hex(), "exp": 1_000_000}))
        )),
        Auth::SubNotAnId(sub) => Some(format!(
            "Bearer {}",
            token_with(json!({"sub": sub, "exp": in_an_hour()}))
        )),
        Auth::UnknownCustomer => Some(format!("Bearer {}", token_for(ObjectId::new()))),
        Auth::WrongScheme => Some(format!("Basic {}", token_for(customer))),
    };
    if let Some(value) = authorization {
        if let Ok(value) = lambda_http::http::HeaderValue::from_str(&value) {
            builder = builder.header("authorization", value);
        }
    }
    match key {
        Key::Absent => {}
        Key::Valid => builder = builder.header("idempotency-key", "fuzz-key-0001"),
        Key::Invalid(text) => {
            if let Ok(value) = lambda_http::http::HeaderValue::from_str(text) {
                builder = builder.header("idempotency-key", value);
            }
        }
    }
    let body = match body {
        BodyKind::Valid => Body::from(r#"{"deliveryAddress": "1 Main St"}"#),
        BodyKind::Bytes(bytes) => Body::from(bytes.clone()),
        BodyKind::Json(value) => Body::from(value.to_string()),
        BodyKind::Oversized(n) => {
            Body::from(format!(r#"{{"deliveryAddress": "{}"}}"#, "a".repeat(*n)))
        }
        BodyKind::Truncated(n) => {
            let full = r#"{"deliveryAddress": "1 Main St"}"#;
            Body::from(full[..(*n).min(full.len() - 1)].to_owned())
        }
    };
    builder.body(body).unwrap()
}

/// A request whose every part is valid can still be refused for another reason that is ours to
/// check here: it must then be one of these.
fn is_valid_everywhere(case: &(Auth, Key, BodyKind)) -> bool {
    matches!(case.0, Auth::Valid)
        && matches!(case.1, Key::Absent | Key::Valid)
        && matches!(case.2, BodyKind::Valid)
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
        .run(&broken_request(), |case| {
            prop_assume!(!is_valid_everywhere(&case));
            t.commands.clear();
            let response = runtime.block_on(t.send(build(buyer, &case)));
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
    // (404, an unknown customer with an otherwise valid request, is drawn ~1.6 % of the time.)
    for (status, at_least) in [(400, 100), (401, 100), (404, 1)] {
        assert!(
            statuses.get(&status).copied().unwrap_or(0) >= at_least,
            "{statuses:?}"
        );
    }
}
