//! Hostile HTTP requests for the checkout routes, as a `proptest` strategy: malformed, oversized,
//! truncated and wrong-typed bodies, MongoDB operator injection (`{"$gt": ""}` and friends) in
//! every field, the path and the token's subject, broken and forged tokens, bad `Idempotency-Key`
//! headers, odd content types and methods.
//!
//! Every request drawn has at least one broken part, so a correct checkout function answers each
//! with a 4xx JSON error and writes nothing. A [`HostileRequest`] is plain data, so the same
//! cases drive the in-process handler and the real binary over HTTP.

use mall_store::bson::oid::ObjectId;
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::auth::{in_an_hour, local_token, token_with};

/// The one body the checkout accepts from the demo buyer.
pub const VALID_BODY: &str = r#"{"deliveryAddress": "1 Main St"}"#;
const CHECKOUT_PATH: &str = "/api/cart/checkout";
/// The body limit of the checkout (16 KiB).
const MAX_BODY: usize = 16 * 1024;

/// One request: method, path (with query), headers, body.
#[derive(Clone, Debug)]
pub struct HostileRequest {
    pub method: &'static str,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// What was broken on purpose, for the failure message.
    pub broken: &'static str,
}

/// MongoDB query and update operators, as a client could smuggle them into any JSON field.
pub fn operator() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(json!({"$gt": ""})),
        Just(json!({"$ne": null})),
        Just(json!({"$where": "sleep(1000)"})),
        Just(json!({"$regex": ".*"})),
        Just(json!({"$set": {"points": 1e9}})),
        Just(json!({"$inc": {"points": 1000000}})),
        Just(json!({"$expr": {"$gt": ["$points", 0]}})),
    ]
    .boxed()
}

fn leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        operator(),
    ]
    .boxed()
}

/// A JSON body the checkout must refuse.
pub fn hostile_json() -> BoxedStrategy<Value> {
    let bad_address = prop_oneof![
        Just(json!("")),
        Just(json!("   ")),
        Just(json!("a\u{0}b")),
        Just(json!("tab\tinside")),
        Just(json!("\n\r\n\u{2028}")),
        Just(json!("eleven\nlines\n".repeat(6))),
        (501usize..700).prop_map(|n| json!("x".repeat(n))),
        operator(),
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        Just(json!(["1 Main St"])),
        Just(json!({"street": "1 Main St"})),
    ];
    // Fields a client might hope to set: identity, prices, wallet, status, the key, a cart.
    let smuggled_field = prop_oneof![
        Just("customerId"),
        Just("userId"),
        Just("points"),
        Just("cartTotal"),
        Just("price"),
        Just("items"),
        Just("rewardsStatus"),
        Just("idempotencyKey"),
        Just("_id"),
        Just("$where"),
        Just("deliveryAddress.$"),
    ];
    prop_oneof![
        // Not an object at all.
        leaf(),
        proptest::collection::vec(leaf(), 0..4).prop_map(Value::from),
        // An object with a bad deliveryAddress.
        bad_address.prop_map(|a| json!({"deliveryAddress": a})),
        // Operators or wrong types in every field a client might try, next to a valid address.
        (smuggled_field, leaf()).prop_map(|(k, v)| json!({"deliveryAddress": "1 Main St", k: v})),
        // Any other field name.
        ("[a-zA-Z$._]{1,12}", leaf()).prop_filter_map("unknown field", |(k, v)| {
            (k != "deliveryAddress").then(|| json!({ k: v }))
        }),
        // Deep nesting (from two levels: one level is the valid body itself).
        (2usize..200).prop_map(|depth| {
            let mut value = json!("1 Main St");
            for _ in 0..depth {
                value = json!({ "deliveryAddress": value });
            }
            value
        }),
    ]
    .boxed()
}

#[derive(Clone, Debug)]
enum Body {
    Valid,
    Bytes(Vec<u8>),
    Json(Value),
    Oversized(usize),
    Truncated(usize),
}

fn hostile_body() -> BoxedStrategy<Body> {
    prop_oneof![
        // Random bytes; a draw that happens to be valid (only whitespace) is dropped.
        proptest::collection::vec(any::<u8>(), 1..300)
            .prop_filter("must be invalid", |b| {
                mall_domain::checkout::CheckoutRequest::parse(b).is_err()
            })
            .prop_map(Body::Bytes),
        hostile_json().prop_map(Body::Json),
        (MAX_BODY + 1..40 * 1024).prop_map(Body::Oversized),
        (1usize..VALID_BODY.len() - 1).prop_map(Body::Truncated),
    ]
    .boxed()
}

fn hostile_key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_-]{0,7}",
        "[A-Za-z0-9_-]{129,160}",
        "[A-Za-z0-9_-]{3,20}[ !#$%&'*+./:;<=>?@^`{|}~\"][A-Za-z0-9_-]{3,20}",
        Just(r#"{"$gt": ""}"#.to_owned()),
    ]
}

#[derive(Clone, Debug)]
enum Auth {
    Valid,
    Missing,
    Garbage(String),
    WrongSecret,
    Expired,
    NoneAlgorithm,
    SubNotAnId(Value),
    /// A valid token signed with the app's secret, but an admin's (`Type: Admin`).
    AdminToken,
    UnknownCustomer,
    WrongScheme,
}

fn hostile_auth() -> BoxedStrategy<Auth> {
    prop_oneof![
        Just(Auth::Missing),
        "[ -~]{0,80}".prop_map(Auth::Garbage),
        Just(Auth::WrongSecret),
        Just(Auth::Expired),
        Just(Auth::NoneAlgorithm),
        prop_oneof![
            operator(),
            Just(json!(42)),
            Just(json!(null)),
            "[ -~]{0,30}".prop_map(Value::from),
        ]
        .prop_map(Auth::SubNotAnId),
        Just(Auth::UnknownCustomer),
        Just(Auth::WrongScheme),
        Just(Auth::AdminToken),
    ]
    .boxed()
}

fn authorization(auth: &Auth, customer: ObjectId) -> Option<String> {
    let b64 = |v: &Value| {
        use std::fmt::Write;
        // base64url without padding, by hand: the test kit needs no base64 crate for one token.
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = v.to_string().into_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                let _ = out.write_char(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            }
        }
        out
    };
    match auth {
        Auth::Valid => Some(format!("Bearer {}", local_token(customer))),
        Auth::Missing => None,
        Auth::Garbage(text) => Some(format!("Bearer {text}")),
        Auth::WrongSecret => Some(format!(
            "Bearer {}",
            jsonwebtoken::encode(
                &jsonwebtoken::Header::default(),
                &json!({"Customer_id": customer.to_hex(), "Type": "Customer", "exp": in_an_hour()}),
                &jsonwebtoken::EncodingKey::from_secret(b"not the secret"),
            )
            .unwrap()
        )),
        Auth::Expired => Some(format!(
            "Bearer {}",
            token_with(
                json!({"Customer_id": customer.to_hex(), "Type": "Customer", "exp": 1_000_000})
            )
        )),
        Auth::NoneAlgorithm => Some(format!(
            "Bearer {}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(
                &json!({"Customer_id": customer.to_hex(), "Type": "Customer", "exp": in_an_hour()})
            )
        )),
        Auth::SubNotAnId(sub) => Some(format!(
            "Bearer {}",
            token_with(json!({"Customer_id": sub, "Type": "Customer", "exp": in_an_hour()}))
        )),
        Auth::UnknownCustomer => Some(format!("Bearer {}", local_token(ObjectId::new()))),
        Auth::WrongScheme => Some(format!("Basic {}", local_token(customer))),
        Auth::AdminToken => Some(format!(
            "Bearer {}",
            token_with(
                json!({"AdminId": customer.to_hex(), "Customer_id": customer.to_hex(),
                              "Type": "Admin", "exp": in_an_hour()})
            )
        )),
    }
}

/// Headers that must not change the outcome of an otherwise refused request.
fn noise_headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let header = prop_oneof![
        Just(("content-type".to_owned(), "text/plain".to_owned())),
        Just((
            "content-type".to_owned(),
            "application/json; charset=utf-16".to_owned()
        )),
        Just(("x-customer-id".to_owned(), r#"{"$gt": ""}"#.to_owned())),
        Just(("x-forwarded-for".to_owned(), "127.0.0.1".to_owned())),
        Just(("accept".to_owned(), "application/xml".to_owned())),
        (1usize..4000).prop_map(|n| ("x-padding".to_owned(), "p".repeat(n))),
        ("[a-z-]{1,20}", "[ -~]{0,60}").prop_map(|(k, v)| (format!("x-{k}"), v)),
    ];
    proptest::collection::vec(header, 0..3)
}

/// A hostile `GET /api/cart/checkout/{id}` path: operators, bad ids, traversal, other routes.
fn hostile_get_path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(format!("{CHECKOUT_PATH}/%7B%22%24gt%22%3A%22%22%7D")),
        Just(format!("{CHECKOUT_PATH}/%24ne")),
        Just(format!("{CHECKOUT_PATH}/..%2F..%2Fcustomers")),
        Just(format!("{CHECKOUT_PATH}/{}?id[$gt]=", "0".repeat(24))),
        "[0-9a-f]{1,23}".prop_map(|id| format!("{CHECKOUT_PATH}/{id}")),
        "[0-9a-f]{25,40}".prop_map(|id| format!("{CHECKOUT_PATH}/{id}")),
        "[g-z]{24}".prop_map(|id| format!("{CHECKOUT_PATH}/{id}")),
        Just(format!("{CHECKOUT_PATH}/{}", ObjectId::new().to_hex())),
        Just("/api/cart".to_owned()),
        Just("/api/customers".to_owned()),
    ]
}

/// A hostile request from (or pretending to be) `customer`, who has a full cart and enough
/// points: at least one part of every request is broken.
pub fn hostile_request(customer: ObjectId) -> impl Strategy<Value = HostileRequest> {
    let any_auth = prop_oneof![Just(Auth::Valid), hostile_auth()];
    let any_key = prop_oneof![
        Just(None),
        Just(Some("fuzz-key-0001".to_owned())),
        hostile_key().prop_map(Some),
    ];
    let any_body = prop_oneof![Just(Body::Valid), hostile_body()];
    let post = (
        0..3u8,
        (any_auth, hostile_auth()),
        (any_key, hostile_key()),
        (any_body, hostile_body()),
        noise_headers(),
    )
        .prop_map(
            move |(broken, (auth, bad_auth), (key, bad_key), (body, bad_body), noise)| {
                let (auth, key, body, what) = match broken {
                    0 => (bad_auth, key, body, "authorization"),
                    1 => (auth, Some(bad_key), body, "idempotency key"),
                    _ => (auth, key, bad_body, "body"),
                };
                let mut headers = noise;
                if let Some(value) = authorization(&auth, customer) {
                    headers.push(("authorization".to_owned(), value));
                }
                if let Some(key) = key {
                    headers.push(("idempotency-key".to_owned(), key));
                }
                let body = match body {
                    Body::Valid => VALID_BODY.as_bytes().to_vec(),
                    Body::Bytes(bytes) => bytes,
                    Body::Json(value) => value.to_string().into_bytes(),
                    Body::Oversized(n) => {
                        format!(r#"{{"deliveryAddress": "{}"}}"#, "a".repeat(n)).into_bytes()
                    }
                    Body::Truncated(n) => VALID_BODY.as_bytes()[..n].to_vec(),
                };
                HostileRequest {
                    method: "POST",
                    path: CHECKOUT_PATH.to_owned(),
                    headers,
                    body,
                    broken: what,
                }
            },
        )
        .boxed();
    let get = (
        hostile_get_path(),
        prop_oneof![Just(Auth::Valid), hostile_auth()],
    )
        .prop_map(move |(path, auth)| HostileRequest {
            method: "GET",
            path,
            headers: authorization(&auth, customer)
                .map(|value| vec![("authorization".to_owned(), value)])
                .unwrap_or_default(),
            body: Vec::new(),
            broken: "path",
        })
        .boxed();
    let other_method = (
        prop_oneof![Just("PUT"), Just("DELETE"), Just("PATCH")],
        any::<bool>(),
    )
        .prop_map(move |(method, valid_body)| HostileRequest {
            method,
            path: CHECKOUT_PATH.to_owned(),
            headers: vec![(
                "authorization".to_owned(),
                format!("Bearer {}", local_token(customer)),
            )],
            body: if valid_body {
                VALID_BODY.as_bytes().to_vec()
            } else {
                Vec::new()
            },
            broken: "method",
        })
        .boxed();
    prop_oneof![8 => post, 2 => get, 1 => other_method].prop_filter(
        "every header must be sendable",
        |request| {
            request.headers.iter().all(|(name, value)| {
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_ok()
                    && reqwest::header::HeaderValue::from_str(value).is_ok()
            })
        },
    )
}
