//! The checkout handler against the real test server (SecantusDB), a fresh database per test:
//! the happy path, every row of the error table leaving the database unchanged, round trips,
//! concurrency, idempotency and a failure injected after the charge.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use mall_domain::MilliPoints;
use mall_store::bson::{doc, oid::ObjectId, Bson};
use mall_store::testing::documents::{CheckoutJobDoc, JobStatus, PurchaseDoc, RewardsStatus};
use mall_store::testing::failpoints::Failpoint;
use serde_json::json;
use support::*;

fn points(text: &str) -> MilliPoints {
    text.parse().unwrap()
}

/// The seeds' example: wallet 5000, two units at 500 with 50 reward points each.
async fn seed_example(t: &TestApp) -> (ObjectId, ObjectId) {
    let buyer = t.customer("5000").await;
    let product = t.product("500", "50", true).await;
    t.fill_cart(buyer, &[(product, 2)]).await;
    (buyer, product)
}

#[tokio::test]
async fn a_checkout_charges_records_clears_saves_and_enqueues_in_six_commands() {
    let t = TestApp::new().await;
    let (buyer, product) = seed_example(&t).await;
    t.commands.clear();

    let response = t
        .send(checkout_request(
            buyer,
            r#"{"deliveryAddress": " 123 Main St "}"#,
            None,
        ))
        .await;

    assert_eq!(response.status(), 200);
    assert_eq!(t.commands.count(), 6, "commands: {:?}", t.commands.names());
    let body = json(&response);
    assert_eq!(body["success"], json!(true));
    assert_eq!(body["message"], json!("Checkout successful"));
    let data = &body["data"];
    assert_eq!(data["cartTotal"], json!(1000));
    assert_eq!(data["pointsDeducted"], json!(1000));
    assert_eq!(data["newWalletBalance"], json!(4000));
    assert_eq!(
        data["rewards"],
        json!({"totalRewardPoints": 100, "appShare": 50, "giftsShare": 15, "treeShare": 35,
               "referralShare": 0, "status": "processing"})
    );
    let reference = format!(
        "TXN{}",
        data["transactionId"].as_str().unwrap().to_uppercase()
    );
    assert_eq!(data["reference"], json!(reference));
    assert_eq!(
        data["note"],
        json!("Tree rewards and level upgrades are being processed in the background")
    );

    assert_eq!(t.wallet(buyer).await, points("4000"));
    assert!(t.cart(buyer).await.unwrap().items.is_empty());
    let customer = t
        .store
        .customers()
        .find_one(doc! {"_id": buyer})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(customer.address.as_deref(), Some("123 Main St"));

    let transaction_id = ObjectId::parse_str(data["transactionId"].as_str().unwrap()).unwrap();
    let purchase: PurchaseDoc = t
        .store
        .purchases()
        .find_one(doc! {"_id": transaction_id})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(purchase.customer_id, buyer);
    // The app's transaction: amount is what was paid, in points, and the listing fields are set.
    assert_eq!(purchase.amount, points("1000"));
    assert_eq!(
        (purchase.status.as_str(), purchase.payment_method.as_str()),
        ("completed", "wallet")
    );
    assert_eq!(purchase.user_name, "buyer");
    assert_eq!(purchase.user_email, "buyer@example.com");
    assert!(purchase.reference.starts_with("TXN"));
    assert_eq!(purchase.cart_total, points("1000"));
    assert_eq!(purchase.reward_points_earned, points("100"));
    assert_eq!(
        (
            purchase.app_points_share,
            purchase.gifts_points_share,
            purchase.tree_points_share
        ),
        (points("50"), points("15"), points("35"))
    );
    assert_eq!(purchase.rewards_status, RewardsStatus::Processing);
    assert_eq!(purchase.items.len(), 1);
    assert_eq!(purchase.items[0].product_id, product.to_hex());
    assert_eq!(purchase.items[0].quantity, 2);
    assert_eq!(purchase.items[0].subtotal, points("1000"));
    assert_eq!(
        purchase.shipping_address.map(|a| a.street).as_deref(),
        Some("123 Main St")
    );

    let job: CheckoutJobDoc = t
        .store
        .checkout_jobs()
        .find_one(doc! {"checkoutTransactionId": transaction_id})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.id.to_hex(), data["jobId"].as_str().unwrap());
    assert_eq!(job.status, JobStatus::Pending);
    assert_eq!((job.attempts, job.max_attempts), (0, 3));
    assert_eq!(job.customer_id, buyer);
    assert_eq!(job.payload.reward_points, points("100"));
    assert_eq!(job.payload.tree_points_share, points("35"));
    assert!(job.run_after.unwrap() <= mall_store::bson::DateTime::now());

    // Amounts are points as a Double in the database, as the app reads them; the cart is
    // cleared the way the app clears it.
    let raw = t
        .store
        .database()
        .collection::<mall_store::bson::Document>("customers")
        .find_one(doc! {"_id": buyer})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(raw.get("points"), Some(&Bson::Double(4000.0)));
    assert_eq!(raw.get_str("Address"), Ok("123 Main St"));
    let cart = t
        .store
        .database()
        .collection::<mall_store::bson::Document>("carts")
        .find_one(doc! {"customerId": buyer})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cart.get_array("items").map(Vec::len), Ok(0));
    assert_eq!(cart.get("totalAmount"), Some(&Bson::Int32(0)));
    assert_eq!(cart.get("totalItems"), Some(&Bson::Int32(0)));
}

#[tokio::test]
async fn with_an_idempotency_key_it_is_still_six_commands_and_a_repeat_replays_it() {
    let t = TestApp::new().await;
    let (buyer, product) = seed_example(&t).await;
    t.commands.clear();
    let first = t
        .send(checkout_request(buyer, "{}", Some("key-0001-abcdef")))
        .await;
    assert_eq!(first.status(), 200);
    assert_eq!(t.commands.count(), 6, "commands: {:?}", t.commands.names());
    assert!(first.headers().get("idempotent-replayed").is_none());

    // The mobile client retries: same key, same body (spaced differently), cart refilled.
    t.fill_cart(buyer, &[(product, 2)]).await;
    let before = t.snapshot().await;
    t.commands.clear();
    let again = t
        .send(checkout_request(buyer, "{ }", Some("key-0001-abcdef")))
        .await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(
        json(&again),
        json(&first),
        "the stored response, byte for byte in meaning"
    );
    assert!(t
        .commands
        .writes()
        .iter()
        .all(|w| w != "insert" && w != "findAndModify"));
    assert_eq!(
        t.snapshot().await,
        before,
        "a replay charges nothing and changes nothing"
    );
    assert_eq!(t.wallet(buyer).await, points("4000"));
}

#[tokio::test]
async fn the_same_key_with_another_body_is_refused() {
    let t = TestApp::new().await;
    let (buyer, product) = seed_example(&t).await;
    let first = t
        .send(checkout_request(
            buyer,
            r#"{"deliveryAddress": "1 Souq Rd"}"#,
            Some("reused-key-1"),
        ))
        .await;
    assert_eq!(first.status(), 200);
    t.fill_cart(buyer, &[(product, 1)]).await;
    let before = t.snapshot().await;
    let other = t
        .send(checkout_request(
            buyer,
            r#"{"deliveryAddress": "2 Souq Rd"}"#,
            Some("reused-key-1"),
        ))
        .await;
    assert_eq!(other.status(), 422);
    assert_eq!(
        json(&other)["error"]["code"],
        json!("IDEMPOTENCY_KEY_REUSED")
    );
    assert_eq!(t.snapshot().await, before);
}

#[tokio::test]
async fn keys_belong_to_one_customer() {
    let t = TestApp::new().await;
    let (alice, product) = seed_example(&t).await;
    let bob = t.customer("5000").await;
    t.fill_cart(bob, &[(product, 1)]).await;
    let a = t
        .send(checkout_request(alice, "{}", Some("shared-key-123")))
        .await;
    let b = t
        .send(checkout_request(bob, "{}", Some("shared-key-123")))
        .await;
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    assert_ne!(
        json(&a)["data"]["transactionId"],
        json(&b)["data"]["transactionId"]
    );
    assert_eq!(t.wallet(bob).await, points("4500"));
}

/// Sends a request that must be refused, and checks its status, code and that nothing changed.
async fn assert_refused(t: &TestApp, request: lambda_http::Request, status: u16, code: &str) {
    let before = t.snapshot().await;
    let response = t.send(request).await;
    let body = json(&response);
    assert_eq!(response.status(), status, "{body}");
    assert_eq!(body["success"], json!(false));
    assert_eq!(body["error"]["code"], json!(code), "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert_eq!(t.snapshot().await, before, "{code} must change nothing");
}

#[tokio::test]
async fn bad_requests_are_400_and_change_nothing() {
    let t = TestApp::new().await;
    let (buyer, _) = seed_example(&t).await;
    for body in [
        "{",
        "[]",
        r#"{"deliveryAddress": 12}"#,
        r#"{"deliveryAddress": ""}"#,
        r#"{"deliveryAddress": {"$gt": ""}}"#,
        r#"{"customerId": "someone-else"}"#,
    ] {
        assert_refused(
            &t,
            checkout_request(buyer, body, None),
            400,
            "INVALID_REQUEST",
        )
        .await;
    }
    let long = format!(r#"{{"deliveryAddress": "{}"}}"#, "a".repeat(501));
    assert_refused(
        &t,
        checkout_request(buyer, &long, None),
        400,
        "INVALID_REQUEST",
    )
    .await;
    let huge = format!(r#"{{"deliveryAddress": "{}"}}"#, "a".repeat(20_000));
    assert_refused(
        &t,
        checkout_request(buyer, &huge, None),
        400,
        "INVALID_REQUEST",
    )
    .await;
    for key in ["short", "has spaces in it", &"k".repeat(129)] {
        assert_refused(
            &t,
            checkout_request(buyer, "{}", Some(key)),
            400,
            "INVALID_REQUEST",
        )
        .await;
    }
}

#[tokio::test]
async fn unauthenticated_requests_are_401_without_touching_the_database() {
    let t = TestApp::new().await;
    let (buyer, _) = seed_example(&t).await;
    let expired =
        token_with(json!({"Customer_id": buyer.to_hex(), "Type": "Customer", "exp": 1_000}));
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"Customer_id": buyer.to_hex(), "Type": "Customer", "exp": in_an_hour()}),
        &jsonwebtoken::EncodingKey::from_secret(b"wrong"),
    )
    .unwrap();
    for authorization in [
        None,
        Some("Bearer".to_owned()),
        Some(format!("Bearer {expired}")),
        Some(format!("Bearer {forged}")),
        Some(format!("Basic {}", token_for(buyer))),
    ] {
        let mut builder = lambda_http::http::Request::builder()
            .method("POST")
            .uri("/api/cart/checkout");
        if let Some(value) = &authorization {
            builder = builder.header("authorization", value);
        }
        let request = builder.body(lambda_http::Body::from("{}")).unwrap();
        t.commands.clear();
        assert_refused(&t, request, 401, "UNAUTHENTICATED").await;
        // The snapshot itself reads; count only what the request sent: nothing.
    }
    t.commands.clear();
    let bare = lambda_http::http::Request::builder()
        .method("POST")
        .uri("/api/cart/checkout")
        .body(lambda_http::Body::from("{}"))
        .unwrap();
    assert_eq!(t.send(bare).await.status(), 401);
    assert_eq!(
        t.commands.count(),
        0,
        "no command for an unauthenticated request"
    );
}

#[tokio::test]
async fn cart_customer_and_balance_errors_change_nothing() {
    let t = TestApp::new().await;
    let stranger = ObjectId::new();
    assert_refused(
        &t,
        checkout_request(stranger, "{}", None),
        404,
        "CUSTOMER_NOT_FOUND",
    )
    .await;

    let no_cart = t.customer("100").await;
    assert_refused(&t, checkout_request(no_cart, "{}", None), 400, "CART_EMPTY").await;
    t.fill_cart(no_cart, &[]).await;
    assert_refused(&t, checkout_request(no_cart, "{}", None), 400, "CART_EMPTY").await;

    let poor = t.customer("999.999").await;
    let product = t.product("500", "50", true).await;
    t.fill_cart(poor, &[(product, 2)]).await;
    let before = t.snapshot().await;
    let response = t.send(checkout_request(poor, "{}", None)).await;
    assert_eq!(response.status(), 400);
    let body = json(&response);
    assert_eq!(body["error"]["code"], json!("INSUFFICIENT_BALANCE"));
    assert_eq!(body["required"], json!(1000));
    assert_eq!(body["available"], json!(999.999));
    assert_eq!(t.snapshot().await, before);
}

#[tokio::test]
async fn unavailable_products_are_409_with_their_ids() {
    let t = TestApp::new().await;
    let buyer = t.customer("5000").await;
    let active = t.product("1", "0", true).await;
    let retired = t.product("1", "0", false).await;
    let missing = ObjectId::new();
    t.fill_cart(buyer, &[(active, 1), (retired, 1), (missing, 1)])
        .await;
    let before = t.snapshot().await;
    let response = t.send(checkout_request(buyer, "{}", None)).await;
    assert_eq!(response.status(), 409);
    let body = json(&response);
    assert_eq!(body["error"]["code"], json!("PRODUCT_UNAVAILABLE"));
    assert_eq!(
        body["productIds"],
        json!([retired.to_hex(), missing.to_hex()])
    );
    assert_eq!(t.snapshot().await, before);
}

#[tokio::test]
async fn invalid_quantities_and_overflowing_totals_are_422() {
    let t = TestApp::new().await;
    let product = t.product("1", "0.5", true).await;
    for quantity in [
        Bson::Int32(0),
        Bson::Int64(1000),
        Bson::Double(1.5),
        Bson::String("2".into()),
    ] {
        let buyer = t.customer("5000").await;
        t.fill_cart_raw(
            buyer,
            doc! {"productId": product.to_hex(), "quantity": quantity.clone()},
        )
        .await;
        assert_refused(&t, checkout_request(buyer, "{}", None), 422, "INVALID_CART").await;
    }
    // A whole-number double from legacy data is a whole quantity.
    let legacy = t.customer("5000").await;
    t.fill_cart_raw(
        legacy,
        doc! {"productId": product.to_hex(), "quantity": 3.0_f64},
    )
    .await;
    assert_eq!(
        t.send(checkout_request(legacy, "{}", None)).await.status(),
        200
    );
    assert_eq!(t.wallet(legacy).await, points("4997"));

    // A price the app could store (a JS number, here an Int64) whose total overflows.
    let pricey = t.product("1", "0", true).await;
    t.store
        .database()
        .collection::<mall_store::bson::Document>("products")
        .update_one(
            doc! {"_id": pricey},
            doc! {"$set": {"price": 9_000_000_000_000_000_i64}},
        )
        .await
        .unwrap();
    let buyer = t.customer("5000").await;
    t.fill_cart(buyer, &[(pricey, 999)]).await;
    assert_refused(&t, checkout_request(buyer, "{}", None), 422, "INVALID_CART").await;
}

#[tokio::test]
async fn a_key_whose_first_request_is_still_running_is_409_in_progress() {
    let t = TestApp::new().await;
    let (buyer, _) = seed_example(&t).await;
    // A first request with the key, still inside its transaction: it has recorded its purchase
    // under the key (and charged the buyer), uncommitted.
    let mut first = t.store.client().start_session().await.unwrap();
    first.start_transaction().await.unwrap();
    let purchase = doc! {"_id": ObjectId::new(), "type": "purchase", "customerId": buyer,
    "idempotencyKey": "in-flight-key"};
    t.store
        .database()
        .collection::<mall_store::bson::Document>("transactions")
        .insert_one(purchase)
        .session(&mut first)
        .await
        .unwrap();
    t.store
        .customers()
        .update_one(doc! {"_id": buyer}, doc! {"$set": {"points": 4000.0}})
        .session(&mut first)
        .await
        .unwrap();

    let before = t.snapshot().await;
    let response = t
        .send(checkout_request(buyer, "{}", Some("in-flight-key")))
        .await;
    assert_eq!(response.status(), 409);
    assert_eq!(
        json(&response)["error"]["code"],
        json!("IDEMPOTENCY_IN_PROGRESS")
    );
    assert_eq!(response.headers()["retry-after"], "1");
    first.abort_transaction().await.unwrap();
    assert_eq!(t.snapshot().await, before);
}

#[tokio::test]
async fn a_checkout_blocked_by_another_writer_of_the_buyer_is_503_with_or_without_a_key() {
    let t = TestApp::new().await;
    let (buyer, _) = seed_example(&t).await;
    // A reward job crediting this buyer (an ancestor of someone else), still in its
    // transaction: contention on the wallet, not on any key.
    let mut job = t.store.client().start_session().await.unwrap();
    job.start_transaction().await.unwrap();
    t.store
        .customers()
        .update_one(doc! {"_id": buyer}, doc! {"$set": {"points": 5001.75}})
        .session(&mut job)
        .await
        .unwrap();
    let before = t.snapshot().await;
    for key in [Some("never-used-key-1"), None] {
        let response = t.send(checkout_request(buyer, "{}", key)).await;
        assert_eq!(response.status(), 503, "key {key:?}");
        assert_eq!(json(&response)["error"]["code"], json!("UNAVAILABLE"));
        assert_eq!(response.headers()["retry-after"], "1");
    }
    job.abort_transaction().await.unwrap();
    assert_eq!(t.snapshot().await, before);
}

#[tokio::test]
async fn an_unknown_commit_outcome_is_503_with_retry_after_and_the_key_then_replays_or_runs() {
    let t = TestApp::new().await;
    let (buyer, _) = seed_example(&t).await;
    t.store.failpoints().arm(Failpoint::CommitOutcomeUnknown);
    let response = t
        .send(checkout_request(buyer, "{}", Some("unknown-outcome-key")))
        .await;
    assert_eq!(response.status(), 503, "{}", json(&response));
    assert_eq!(json(&response)["error"]["code"], json!("UNAVAILABLE"));
    assert_eq!(response.headers()["retry-after"], "1");
    t.store.failpoints().disarm(Failpoint::CommitOutcomeUnknown);
    // The client asks again with its key: exactly one charge in the end.
    let again = t
        .send(checkout_request(buyer, "{}", Some("unknown-outcome-key")))
        .await;
    assert_eq!(again.status(), 200);
    assert_eq!(t.wallet(buyer).await, points("4000"));
    assert_eq!(t.count("transactions", doc! {"customerId": buyer}).await, 1);
}

#[tokio::test]
async fn a_product_that_cannot_be_priced_is_409_naming_it_and_nothing_is_charged() {
    let t = TestApp::new().await;
    let buyer = t.customer("5000").await;
    let fine = t.product("100", "10", true).await;
    let negative = t.product("1", "0", true).await;
    let unreadable = t.product("1", "0", true).await;
    let not_finite = t.product("1", "0", true).await;
    let products = t
        .store
        .database()
        .collection::<mall_store::bson::Document>("products");
    for (id, set) in [
        (negative, doc! {"price": -90}),
        (unreadable, doc! {"percentage": "10"}),
        (not_finite, doc! {"price": f64::INFINITY}),
    ] {
        products
            .update_one(doc! {"_id": id}, doc! {"$set": set})
            .await
            .unwrap();
    }
    t.fill_cart(
        buyer,
        &[(fine, 1), (negative, 1), (unreadable, 1), (not_finite, 1)],
    )
    .await;
    let before = t.snapshot().await;
    let response = t.send(checkout_request(buyer, "{}", None)).await;
    assert_eq!(response.status(), 409);
    let body = json(&response);
    assert_eq!(body["error"]["code"], json!("PRODUCT_UNAVAILABLE"));
    assert_eq!(
        body["productIds"],
        json!([negative.to_hex(), unreadable.to_hex(), not_finite.to_hex()])
    );
    assert_eq!(t.snapshot().await, before);
}

#[tokio::test]
async fn a_malformed_cart_is_a_clear_4xx_and_changes_nothing() {
    let t = TestApp::new().await;
    let product = t.product("100", "10", true).await;
    let carts = t
        .store
        .database()
        .collection::<mall_store::bson::Document>("carts");
    let cases = [
        (Bson::Null, 400, "CART_EMPTY"),
        (Bson::String("2 boxes".into()), 422, "INVALID_CART"),
        (
            Bson::Array(vec![Bson::String("x".into())]),
            422,
            "INVALID_CART",
        ),
        (
            Bson::Array(vec![Bson::Document(
                doc! {"productId": "zz", "quantity": 1},
            )]),
            422,
            "INVALID_CART",
        ),
        (
            Bson::Array(vec![Bson::Document(doc! {"productId": 5, "quantity": 1})]),
            422,
            "INVALID_CART",
        ),
        (
            Bson::Array(vec![Bson::Document(
                doc! {"productId": product.to_hex(), "quantity": 1},
            )]),
            200,
            "",
        ),
    ];
    for (items, status, code) in cases {
        let buyer = t.customer("5000").await;
        carts
            .insert_one(doc! {"_id": ObjectId::new(), "customerId": buyer, "items": items.clone()})
            .await
            .unwrap();
        let before = t.snapshot().await;
        let response = t.send(checkout_request(buyer, "{}", None)).await;
        assert_eq!(response.status(), status, "{items:?}: {}", json(&response));
        if status != 200 {
            assert_eq!(json(&response)["error"]["code"], json!(code), "{items:?}");
            assert_eq!(t.snapshot().await, before, "{items:?}");
        }
    }
}

#[tokio::test]
async fn a_multi_line_address_is_saved_with_its_line_breaks_alike() {
    let t = TestApp::new().await;
    for (body, stored) in [
        (
            r#"{"deliveryAddress": "Building 5\n12 Souq Waqif St\r\nDoha"}"#,
            "Building 5\n12 Souq Waqif St\nDoha",
        ),
        (
            r#"{"deliveryAddress": "Building 5\u2028 12 Souq Waqif St \u2029Doha"}"#,
            "Building 5\n12 Souq Waqif St\nDoha",
        ),
    ] {
        let (buyer, _) = seed_example(&t).await;
        let response = t.send(checkout_request(buyer, body, None)).await;
        assert_eq!(response.status(), 200, "{body}: {}", json(&response));
        let customer = t
            .store
            .customers()
            .find_one(doc! {"_id": buyer})
            .await
            .unwrap()
            .unwrap();
        assert_eq!(customer.address.as_deref(), Some(stored), "{body}");
    }
    let (buyer, _) = seed_example(&t).await;
    let response = t
        .send(checkout_request(
            buyer,
            r#"{"deliveryAddress": "a\tb"}"#,
            None,
        ))
        .await;
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn an_unreachable_database_is_503_with_retry_after() {
    // Nothing listens on port 1.
    let mut options =
        mongodb::options::ClientOptions::parse("mongodb://127.0.0.1:1/?directConnection=true")
            .await
            .unwrap();
    options.server_selection_timeout = Some(std::time::Duration::from_millis(300));
    let store = mall_store::Store::with_options(options, "nowhere").unwrap();
    let app = app_on(store);
    let response = app
        .handle(checkout_request(ObjectId::new(), "{}", None))
        .await;
    assert_eq!(response.status(), 503);
    let body = json(&response);
    assert_eq!(body["error"]["code"], json!("UNAVAILABLE"));
    assert!(
        !body.to_string().contains("127.0.0.1"),
        "no internal detail: {body}"
    );
    assert_eq!(response.headers()["retry-after"], "1");
}

#[tokio::test]
async fn a_failure_after_the_charge_leaves_nothing_behind() {
    for failpoint in [
        Failpoint::CheckoutBeforeJobInsert,
        Failpoint::CheckoutBeforeCommit,
    ] {
        let t = TestApp::new().await;
        let (buyer, _) = seed_example(&t).await;
        let before = t.snapshot().await;
        t.store.failpoints().arm(failpoint);
        let response = t.send(checkout_request(buyer, "{}", None)).await;
        assert_eq!(response.status(), 500, "{failpoint:?}");
        assert_eq!(json(&response)["error"]["code"], json!("INTERNAL"));
        assert_eq!(
            t.snapshot().await,
            before,
            "{failpoint:?}: wallet, purchase, cart, job"
        );
        assert_eq!(t.wallet(buyer).await, points("5000"));

        // Once the fault is gone the same checkout goes through, whole.
        t.store.failpoints().disarm(failpoint);
        assert_eq!(
            t.send(checkout_request(buyer, "{}", None)).await.status(),
            200
        );
        assert_eq!(t.count("checkoutjobs", doc! {}).await, 1);
        assert_eq!(t.count("transactions", doc! {"type": "purchase"}).await, 1);
    }
}

#[tokio::test]
async fn twenty_concurrent_checkouts_against_a_wallet_for_five_charge_exactly_five() {
    let t = std::sync::Arc::new(TestApp::new().await);
    let buyer = t.customer("5250").await; // five at 1000, not six
    let product = t.product("1000", "10", true).await;

    let mut tasks = vec![];
    for _ in 0..20 {
        let t = std::sync::Arc::clone(&t);
        tasks.push(tokio::spawn(async move {
            // Each client puts the item in the cart and checks out; if another client's
            // checkout emptied the cart first, it puts the item back and tries again.
            loop {
                t.fill_cart(buyer, &[(product, 1)]).await;
                let response = t.send(checkout_request(buyer, "{}", None)).await;
                let code = json(&response)["error"]["code"].as_str().map(str::to_owned);
                match (response.status().as_u16(), code.as_deref()) {
                    (200, _) => return true,
                    (400, Some("INSUFFICIENT_BALANCE")) => return false,
                    (400, Some("CART_EMPTY")) | (503, _) => continue,
                    (status, code) => panic!("unexpected {status} {code:?}"),
                }
            }
        }));
    }
    let mut succeeded = 0;
    for task in tasks {
        succeeded += usize::from(task.await.unwrap());
    }
    assert_eq!(succeeded, 5);
    assert_eq!(t.wallet(buyer).await, points("250"));
    assert_eq!(t.count("checkoutjobs", doc! {}).await, 5);
    assert_eq!(t.count("transactions", doc! {"type": "purchase"}).await, 5);
}

#[tokio::test]
async fn fifty_concurrent_requests_with_one_key_charge_once() {
    let t = std::sync::Arc::new(TestApp::new().await);
    let (buyer, _) = seed_example(&t).await;

    let mut tasks = vec![];
    for _ in 0..50 {
        let t = std::sync::Arc::clone(&t);
        tasks.push(tokio::spawn(async move {
            let response = t
                .send(checkout_request(buyer, "{}", Some("one-key-for-all-50")))
                .await;
            let replayed = response.headers().contains_key("idempotent-replayed");
            (response.status().as_u16(), replayed, json(&response))
        }));
    }
    let mut transaction_ids = std::collections::HashSet::new();
    let (mut fresh, mut replays, mut in_progress) = (0, 0, 0);
    for task in tasks {
        match task.await.unwrap() {
            (200, false, body) => {
                fresh += 1;
                transaction_ids.insert(body["data"]["transactionId"].clone());
            }
            (200, true, body) => {
                replays += 1;
                transaction_ids.insert(body["data"]["transactionId"].clone());
            }
            (409, _, body) if body["error"]["code"] == json!("IDEMPOTENCY_IN_PROGRESS") => {
                in_progress += 1
            }
            (status, _, body) => panic!("unexpected {status}: {body}"),
        }
    }
    assert_eq!(fresh, 1, "exactly one request ran the checkout");
    assert_eq!(fresh + replays + in_progress, 50);
    assert_eq!(
        transaction_ids.len(),
        1,
        "every 200 names the same purchase"
    );
    assert_eq!(t.wallet(buyer).await, points("4000"), "charged once");
    assert_eq!(t.count("transactions", doc! {"type": "purchase"}).await, 1);
    assert_eq!(t.count("checkoutjobs", doc! {}).await, 1);

    let other = t
        .send(checkout_request(
            buyer,
            r#"{"deliveryAddress": "elsewhere"}"#,
            Some("one-key-for-all-50"),
        ))
        .await;
    assert_eq!(
        json(&other)["error"]["code"],
        json!("IDEMPOTENCY_KEY_REUSED")
    );
}

#[tokio::test]
async fn a_buyer_sees_its_own_purchase_and_nobody_else_does() {
    let t = TestApp::new().await;
    let (buyer, _) = seed_example(&t).await;
    let response = t
        .send(checkout_request(
            buyer,
            r#"{"deliveryAddress": "5 Gold St"}"#,
            None,
        ))
        .await;
    let id = json(&response)["data"]["transactionId"]
        .as_str()
        .unwrap()
        .to_owned();

    let view = t.send(get_request(buyer, &id)).await;
    assert_eq!(view.status(), 200);
    let data = json(&view)["data"].clone();
    assert_eq!(data["transactionId"], json!(id));
    assert_eq!(data["cartTotal"], json!(1000));
    assert_eq!(data["deliveryAddress"], json!("5 Gold St"));
    assert_eq!(data["items"][0]["quantity"], json!(2));
    assert_eq!(data["items"][0]["unitPrice"], json!(500));
    assert_eq!(data["rewards"]["status"], json!("processing"));
    assert_eq!(data["rewards"]["treeShare"], json!(35));
    assert_eq!(data["job"]["status"], json!("pending"));
    assert_eq!(data["job"]["attempts"], json!(0));
    assert_eq!(data["job"]["maxAttempts"], json!(3));
    assert_eq!(data["distribution"], json!(null));

    let stranger = t.customer("0").await;
    let other = t.send(get_request(stranger, &id)).await;
    assert_eq!(other.status(), 404);
    assert_eq!(json(&other)["error"]["code"], json!("NOT_FOUND"));
    assert_eq!(t.send(get_request(buyer, "not-an-id")).await.status(), 404);
    assert_eq!(
        t.send(get_request(buyer, &ObjectId::new().to_hex()))
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn other_routes_and_methods_are_refused_cleanly() {
    let t = TestApp::new().await;
    let buyer = t.customer("1").await;
    let mut request = checkout_request(buyer, "{}", None);
    *request.method_mut() = lambda_http::http::Method::DELETE;
    assert_eq!(t.send(request).await.status(), 405);
    let mut request = checkout_request(buyer, "{}", None);
    *request.uri_mut() = "/api/other".parse().unwrap();
    assert_eq!(t.send(request).await.status(), 404);
}
