#![allow(clippy::unwrap_used, clippy::expect_used)]

//! The real `checkout` binary, built and run by `cargo lambda watch`, on the real test database:
//! over HTTP as a Function URL with the app's own HS256 tokens (identity mode `app-token`, as the
//! phone sends them; an admin's token is 403), and, in identity mode `authorizer`, with an API
//! Gateway HTTP API (payload 2.0) event whose JWT authorizer already verified the caller.

use std::time::{Duration, Instant};

use mall_store::bson::{doc, Bson, Document};
use mall_testkit::auth::{local_token, LOCAL_JWT_SECRET};
use mall_testkit::db::{fresh_database_name, store_on, test_mongodb_uri};
use mall_testkit::emulator::{read_json, LambdaEmulator};
use mall_testkit::seed;
use serde_json::{json, Value};

/// The first request builds the binary: minutes on two cores with a cold target directory.
const READY_TIMEOUT: Duration = Duration::from_secs(600);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

const CHECKOUT_PATH: &str = "/api/cart/checkout";

#[tokio::test]
async fn checkout_binary_under_cargo_lambda_watch_charges_once_and_serves_the_purchase() {
    let uri = test_mongodb_uri();
    let database = fresh_database_name();
    let mut emulator = LambdaEmulator::start(&[
        ("MONGODB_URI", uri.as_str()),
        ("MONGODB_DATABASE", database.as_str()),
        ("LOCAL_JWT_SECRET", LOCAL_JWT_SECRET),
        ("RUST_LOG", "info"),
    ]);

    // Seed while the emulator boots: 5000 points, a product at 500 earning 50, two in the cart.
    let store = store_on(&database).await;
    let buyer = seed::customer(&store, "5000").await;
    let product = seed::product(&store, "500", "50", true).await;
    seed::fill_cart(&store, buyer, &[(product, 2)]).await;

    // Ready when the function itself answers (an unauthenticated GET is a 401 from the handler).
    let started = Instant::now();
    emulator
        .wait_until_ready(&probe_in(&emulator), READY_TIMEOUT, |status, body| {
            status == 401 && body.contains("UNAUTHENTICATED")
        })
        .await;
    eprintln!(
        "checkout answered under cargo lambda watch after {:.1?}",
        started.elapsed()
    );

    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .unwrap();
    let checkout_url = emulator.function_url("checkout", CHECKOUT_PATH);
    let token = local_token(buyer);
    let post_checkout = || {
        http.post(&checkout_url)
            .bearer_auth(&token)
            .header("idempotency-key", "e2e-checkout-key-0001")
            .header("content-type", "application/json")
            .body(r#"{"deliveryAddress": "12 Souq Waqif Street, Doha"}"#)
            .send()
    };

    // The checkout: charged, recorded, queued, cart emptied.
    let response = post_checkout().await.unwrap();
    assert_eq!(
        response.status(),
        200,
        "checkout: {:?}",
        response.text().await
    );
    assert!(response.headers().get("idempotent-replayed").is_none());
    let body: Value = response.json().await.unwrap();
    let data = &body["data"];
    assert_eq!(body["success"], json!(true));
    assert_eq!(data["cartTotal"], json!(1000));
    assert_eq!(data["pointsDeducted"], json!(1000));
    assert_eq!(data["newWalletBalance"], json!(4000));
    assert_eq!(
        data["rewards"],
        json!({
            "totalRewardPoints": 100,
            "appShare": 50,
            "giftsShare": 15,
            "treeShare": 35,
            "referralShare": 0,
            "status": "processing"
        })
    );
    let transaction_id = data["transactionId"].as_str().unwrap().to_owned();
    let job_id = data["jobId"].as_str().unwrap().to_owned();

    let customer: Document = store
        .database()
        .collection::<Document>("customers")
        .find_one(doc! {"_id": buyer})
        .await
        .unwrap()
        .unwrap();
    // The app's wallet in its unit and type, and the address where its profile screen reads it.
    assert_eq!(customer.get("points"), Some(&Bson::Double(4000.0)));
    assert_eq!(
        customer.get_str("Address"),
        Ok("12 Souq Waqif Street, Doha")
    );
    assert_eq!(purchases_of(&store, buyer).await, 1);
    let jobs = store
        .checkout_jobs()
        .count_documents(doc! {"customerId": buyer, "status": "pending"})
        .await
        .unwrap();
    assert_eq!(jobs, 1, "one pending reward job");
    assert_eq!(
        store
            .checkout_jobs()
            .count_documents(doc! {})
            .await
            .unwrap(),
        1
    );
    let cart = store
        .carts()
        .find_one(doc! {"customerId": buyer})
        .await
        .unwrap()
        .unwrap();
    assert!(cart.items.is_empty(), "cart emptied: {:?}", cart.items);

    // The same request again: the same answer, marked as a replay, and no second charge.
    let replay = post_checkout().await.unwrap();
    assert_eq!(replay.status(), 200);
    assert_eq!(
        replay
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["data"]["transactionId"], json!(transaction_id));
    assert_eq!(replay["data"]["newWalletBalance"], json!(4000));
    assert_eq!(purchases_of(&store, buyer).await, 1);

    // No token, no checkout.
    let anonymous = http
        .post(&checkout_url)
        .header("idempotency-key", "e2e-checkout-key-0002")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let anonymous: Value = anonymous.json().await.unwrap();
    assert_eq!(anonymous["error"]["code"], json!("UNAUTHENTICATED"));

    // An admin's token, signed with the same secret: 403, and nothing touched.
    let admin = mall_testkit::auth::token_with(json!({
        "AdminId": buyer.to_hex(), "Customer_id": buyer.to_hex(), "Type": "Admin",
        "exp": mall_testkit::auth::in_an_hour(),
    }));
    let forbidden = http
        .post(&checkout_url)
        .bearer_auth(&admin)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);
    let forbidden: Value = forbidden.json().await.unwrap();
    assert_eq!(forbidden["error"]["code"], json!("FORBIDDEN"));
    assert_eq!(purchases_of(&store, buyer).await, 1);

    // The buyer's view of the purchase: its reward job is still pending (no worker runs here).
    let view = http
        .get(emulator.function_url("checkout", &format!("{CHECKOUT_PATH}/{transaction_id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(view.status(), 200);
    let view: Value = view.json().await.unwrap();
    assert_eq!(view["data"]["transactionId"], json!(transaction_id));
    assert_eq!(view["data"]["job"]["id"], json!(job_id));
    assert_eq!(view["data"]["job"]["status"], json!("pending"));
    assert_eq!(
        view["data"]["deliveryAddress"],
        json!("12 Souq Waqif Street, Doha")
    );

    // The other identity mode: an HTTP API v2 event whose JWT authorizer verified the caller,
    // no bearer token, the customer in `sub` as an OIDC issuer puts it.
    drop(emulator);
    let mut emulator = LambdaEmulator::start(&[
        ("MONGODB_URI", uri.as_str()),
        ("MONGODB_DATABASE", database.as_str()),
        ("IDENTITY_MODE", "authorizer"),
        ("CUSTOMER_ID_CLAIM", "sub"),
        ("RUST_LOG", "info"),
    ]);
    emulator
        .wait_until_ready(&probe_in(&emulator), READY_TIMEOUT, |status, body| {
            status == 401 && body.contains("UNAUTHENTICATED")
        })
        .await;
    let mut event = read_json("infra/events/checkout-get-apigw-v2.json");
    let path = format!("{CHECKOUT_PATH}/{transaction_id}");
    event["rawPath"] = json!(path);
    event["requestContext"]["http"]["path"] = json!(path);
    event["pathParameters"]["transactionId"] = json!(transaction_id);
    event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!(buyer.to_hex());
    assert!(event["headers"].get("authorization").is_none());
    let proxy = invoke(&http, &emulator, &event).await;
    assert_eq!(proxy["statusCode"], json!(200), "invoke: {proxy}");
    let view: Value = serde_json::from_str(proxy["body"].as_str().unwrap()).unwrap();
    assert_eq!(view["data"]["transactionId"], json!(transaction_id));
    assert_eq!(view["data"]["job"]["status"], json!("pending"));

    // The developers' POST event is one the function accepts as authenticated: with the cart now
    // empty, its answer is CART_EMPTY, and nothing is charged.
    let mut event = read_json("infra/events/checkout-post-apigw-v2.json");
    event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!(buyer.to_hex());
    let proxy = invoke(&http, &emulator, &event).await;
    assert_eq!(proxy["statusCode"], json!(400), "invoke: {proxy}");
    let error: Value = serde_json::from_str(proxy["body"].as_str().unwrap()).unwrap();
    assert_eq!(error["error"]["code"], json!("CART_EMPTY"));
    assert_eq!(purchases_of(&store, buyer).await, 1);

    store.database().drop().await.unwrap();
}

/// A URL whose unauthenticated GET the handler itself answers with 401.
fn probe_in(emulator: &LambdaEmulator) -> String {
    emulator.function_url(
        "checkout",
        &format!("{CHECKOUT_PATH}/000000000000000000000000"),
    )
}

/// Posts a raw event to the emulator's Invoke API; the answer is the function's proxy response.
async fn invoke(http: &reqwest::Client, emulator: &LambdaEmulator, event: &Value) -> Value {
    let response = http
        .post(emulator.invoke_url("checkout"))
        .json(event)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the Invoke API itself answers 200");
    response.json().await.unwrap()
}

async fn purchases_of(store: &mall_store::Store, buyer: mall_store::bson::oid::ObjectId) -> u64 {
    store
        .purchases()
        .count_documents(doc! {"customerId": buyer, "type": "purchase"})
        .await
        .unwrap()
}
