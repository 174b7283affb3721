//! The OpenAPI contract (`functions/checkout/openapi.yaml`) against real answers of the handler on
//! the real test database: every route and status the handler can produce here is declared, its
//! body validates (JSON Schema 2020-12, resolved against the whole document) and its headers
//! (`Retry-After`, `Idempotent-Replayed`) are the declared ones.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::collections::BTreeSet;

use lambda_http::{Body, Request, Response};
use mall_store::bson::{doc, oid::ObjectId};
use mall_store::testing::failpoints::Failpoint;
use reward_worker::drain::{DrainLimits, SystemClock};
use serde_json::{json, Value};
use support::*;

const POST: (&str, &str) = ("/api/cart/checkout", "post");
const GET: (&str, &str) = ("/api/cart/checkout/{transactionId}", "get");
/// The headers whose presence the contract decides.
const CONTRACT_HEADERS: &[&str] = &["retry-after", "idempotent-replayed"];

struct Contract {
    document: Value,
    /// `(route, method, status)` checked so far.
    covered: BTreeSet<(String, u16)>,
}

impl Contract {
    fn load() -> Contract {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        Contract {
            document: serde_norway::from_str(&text).unwrap(),
            covered: BTreeSet::new(),
        }
    }

    /// Follows local `$ref`s until a value that is not one.
    fn resolve<'a>(&'a self, mut value: &'a Value) -> &'a Value {
        while let Some(reference) = value.get("$ref").and_then(Value::as_str) {
            let pointer = reference.strip_prefix('#').expect("local $ref");
            value = self
                .document
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling $ref {reference}"));
        }
        value
    }

    /// The declared response of an operation, or of `components/responses/NAME` for answers
    /// the function gives outside the two operations (unknown route, other method).
    fn declared(&self, operation: Result<(&str, &str), &str>, status: u16) -> &Value {
        let declared = match operation {
            Ok((route, method)) => self.document["paths"][route][method]["responses"]
                .get(status.to_string())
                .unwrap_or_else(|| panic!("{method} {route} does not declare {status}")),
            Err(name) => &self.document["components"]["responses"][name],
        };
        self.resolve(declared)
    }

    /// Whether `body` is valid against the schema at `#/components/schemas/...` `reference`.
    fn errors(&self, schema_reference: &str, body: &Value) -> Vec<String> {
        let mut root = self.document.clone();
        root["$ref"] = json!(schema_reference);
        root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
        let validator = jsonschema::draft202012::new(&root)
            .unwrap_or_else(|e| panic!("{schema_reference} does not compile: {e}"));
        validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect()
    }

    fn schema_reference(&self, declared: &Value) -> String {
        declared["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .expect("every response body is a $ref to components/schemas")
            .to_owned()
    }

    /// Checks a real response against the contract; returns its body.
    fn check(&mut self, operation: Result<(&str, &str), &str>, response: &Response<Body>) -> Value {
        let status = response.status().as_u16();
        let declared = self.declared(operation, status).clone();
        let name = match operation {
            Ok((route, method)) => format!("{method} {route}"),
            Err(name) => name.to_owned(),
        };
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{name} {status}"
        );
        let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        let reference = self.schema_reference(&declared);
        let errors = self.errors(&reference, &body);
        assert!(
            errors.is_empty(),
            "{name} {status}: the body does not match {reference}: {errors:#?}\n{body:#}"
        );

        let headers = declared["headers"].as_object().cloned().unwrap_or_default();
        for (header, spec) in &headers {
            let spec = self.resolve(spec);
            let value = response.headers().get(header.to_ascii_lowercase().as_str());
            if spec["required"] == json!(true) {
                assert!(value.is_some(), "{name} {status}: {header} is required");
            }
            if let Some(value) = value {
                let text = value.to_str().unwrap();
                let as_json = match spec["schema"]["type"].as_str() {
                    Some("integer") => json!(text.parse::<i64>().unwrap()),
                    _ => json!(text),
                };
                let schema = spec["schema"].clone();
                let validator = jsonschema::draft202012::new(&schema).unwrap();
                assert!(
                    validator.is_valid(&as_json),
                    "{name} {status}: {header}: {text:?} does not match {schema}"
                );
            }
        }
        for header in CONTRACT_HEADERS {
            if response.headers().contains_key(*header) {
                assert!(
                    headers.keys().any(|h| h.eq_ignore_ascii_case(header)),
                    "{name} {status}: sends {header}, which the contract does not declare"
                );
            }
        }
        self.covered.insert((name, status));
        body
    }
}

fn request(method: &str, path: &str, customer: Option<ObjectId>) -> Request {
    let mut builder = lambda_http::http::Request::builder()
        .method(method)
        .uri(format!("https://api.example.com{path}"));
    if let Some(customer) = customer {
        builder = builder.header("authorization", format!("Bearer {}", token_for(customer)));
    }
    builder.body(Body::Empty).unwrap()
}

#[tokio::test]
async fn real_responses_match_the_openapi_contract() {
    let mut contract = Contract::load();
    let t = TestApp::new().await;
    let dates = t.product("500", "50", true).await;
    let retired = t.product("20", "1", false).await;
    let parent = t.customer("0").await;
    let buyer = t.customer("5000").await;
    mall_testkit::seed::refer(&t.store, buyer, parent).await;

    // POST 200, then the same key again: 200 with Idempotent-Replayed.
    t.fill_cart(buyer, &[(dates, 2)]).await;
    let body = r#"{"deliveryAddress": "12 Souq Waqif, Doha"}"#;
    let first = t
        .send(checkout_request(buyer, body, Some("contract-key-0001")))
        .await;
    assert_eq!(first.status(), 200);
    let receipt = contract.check(Ok(POST), &first);
    let replay = t
        .send(checkout_request(buyer, body, Some("contract-key-0001")))
        .await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    contract.check(Ok(POST), &replay);
    let transaction_id = receipt["data"]["transactionId"]
        .as_str()
        .unwrap()
        .to_owned();

    // 422: the key again with another body.
    let reused = t
        .send(checkout_request(buyer, "{}", Some("contract-key-0001")))
        .await;
    assert_eq!(reused.status(), 422);
    contract.check(Ok(POST), &reused);

    // 400: a bad body, an empty cart, too few points.
    for (customer, body, code) in [
        (
            buyer,
            r#"{"deliveryAddress": {"$gt": ""}}"#,
            "INVALID_REQUEST",
        ),
        (buyer, "{}", "CART_EMPTY"),
    ] {
        let response = t.send(checkout_request(customer, body, None)).await;
        assert_eq!(contract.check(Ok(POST), &response)["error"]["code"], code);
    }
    t.fill_cart(buyer, &[(dates, 20)]).await;
    let poor = t.send(checkout_request(buyer, "{}", None)).await;
    let poor_body = contract.check(Ok(POST), &poor);
    assert_eq!(poor_body["error"]["code"], "INSUFFICIENT_BALANCE");

    // 409: a product no longer sold; 422: a stored quantity the checkout refuses.
    t.fill_cart(buyer, &[(retired, 1)]).await;
    let unavailable = t.send(checkout_request(buyer, "{}", None)).await;
    assert_eq!(
        contract.check(Ok(POST), &unavailable)["error"]["code"],
        "PRODUCT_UNAVAILABLE"
    );
    let odd = t.customer("100").await;
    t.fill_cart_raw(odd, doc! {"productId": dates.to_hex(), "quantity": 0_i32})
        .await;
    let invalid_cart = t.send(checkout_request(odd, "{}", None)).await;
    assert_eq!(
        contract.check(Ok(POST), &invalid_cart)["error"]["code"],
        "INVALID_CART"
    );

    // 401 without a token, 403 with an admin's, 404 for a customer that does not exist.
    contract.check(Ok(POST), &t.send(request("POST", POST.0, None)).await);
    let admin = mall_testkit::auth::token_with(json!({
        "AdminId": buyer.to_hex(), "Type": "Admin", "exp": mall_testkit::auth::in_an_hour(),
    }));
    let forbidden = t
        .send(
            lambda_http::http::Request::builder()
                .method("POST")
                .uri(format!("https://api.example.com{}", POST.0))
                .header("authorization", format!("Bearer {admin}"))
                .body(Body::Empty)
                .unwrap(),
        )
        .await;
    assert_eq!(forbidden.status(), 403);
    contract.check(Ok(POST), &forbidden);
    let stranger = t.send(checkout_request(ObjectId::new(), "{}", None)).await;
    assert_eq!(stranger.status(), 404);
    contract.check(Ok(POST), &stranger);

    // 500: a failure injected before the commit.
    t.fill_cart(buyer, &[(dates, 1)]).await;
    t.store.failpoints().arm(Failpoint::CheckoutBeforeCommit);
    let internal = t.send(checkout_request(buyer, "{}", None)).await;
    t.store.failpoints().disarm(Failpoint::CheckoutBeforeCommit);
    assert_eq!(internal.status(), 500);
    contract.check(Ok(POST), &internal);

    // GET 200 while the rewards are processing, and once they are completed.
    let path = format!("/api/cart/checkout/{transaction_id}");
    let processing = contract.check(Ok(GET), &t.send(request("GET", &path, Some(buyer))).await);
    assert_eq!(processing["data"]["rewards"]["status"], "processing");
    let queue = mall_store::testing::queue::QueueSettings::default();
    reward_worker::drain_queue(
        &t.store,
        queue,
        DrainLimits::default(),
        std::sync::Arc::new(SystemClock),
    )
    .await;
    let completed = contract.check(Ok(GET), &t.send(request("GET", &path, Some(buyer))).await);
    assert_eq!(completed["data"]["rewards"]["status"], "completed");
    assert!(completed["data"]["distribution"].is_object());

    // GET 401, GET 404 (someone else's purchase), an unknown route, another method.
    contract.check(Ok(GET), &t.send(request("GET", &path, None)).await);
    let foreign = t.send(request("GET", &path, Some(parent))).await;
    assert_eq!(foreign.status(), 404);
    contract.check(Ok(GET), &foreign);
    let unknown = t.send(request("GET", "/api/cart", Some(buyer))).await;
    assert_eq!(unknown.status(), 404);
    contract.check(Err("RouteNotFound"), &unknown);
    let method = t.send(request("DELETE", POST.0, Some(buyer))).await;
    assert_eq!(method.status(), 405);
    contract.check(Err("MethodNotAllowed"), &method);

    // 503 on both routes when the database cannot be reached.
    let mut options =
        mongodb::options::ClientOptions::parse("mongodb://127.0.0.1:1/?directConnection=true")
            .await
            .unwrap();
    options.server_selection_timeout = Some(std::time::Duration::from_millis(300));
    let nowhere = app_on(mall_store::Store::with_options(options, "nowhere").unwrap());
    let down = nowhere.handle(checkout_request(buyer, "{}", None)).await;
    assert_eq!(down.status(), 503);
    contract.check(Ok(POST), &down);
    let down = nowhere.handle(request("GET", &path, Some(buyer))).await;
    assert_eq!(down.status(), 503);
    contract.check(Ok(GET), &down);

    // Every status the handler produced here was declared and checked.
    let covered: Vec<String> = contract
        .covered
        .iter()
        .map(|(name, status)| format!("{name} {status}"))
        .collect();
    assert_eq!(covered.len(), 15, "{covered:#?}");

    // And the check can fail: drift in a real body is caught.
    let mut drifted = receipt.clone();
    drifted["data"]["newWalletBalance"] = json!("4000");
    drifted["data"]["internalNote"] = json!("x");
    assert!(!contract
        .errors("#/components/schemas/CheckoutReceipt", &drifted)
        .is_empty());
    let mut drifted = poor_body;
    drifted.as_object_mut().unwrap().remove("available");
    assert!(!contract
        .errors("#/components/schemas/CheckoutBadRequestError", &drifted)
        .is_empty());
}
