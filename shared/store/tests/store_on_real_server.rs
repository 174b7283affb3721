//! The store against a real MongoDB wire-protocol server (SecantusDB, started by
//! `infra/with-test-services.sh`, which `make test` uses). Each test gets a fresh database, so tests
//! run in parallel without seeing each other's data.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use futures_util::TryStreamExt;
use mall_domain::{Level, MilliPoints, RewardPolicy};
use mall_store::bson::{doc, oid::ObjectId, Bson, DateTime, Document};
use mall_store::testing::documents::*;
use mall_store::testing::indexes::index_specs;
use mall_store::{Store, StoreConfig};

/// A store on a database of its own, on the test server.
async fn fresh_store() -> Store {
    let uri = std::env::var("MALL_TEST_MONGODB_URI").expect(
        "MALL_TEST_MONGODB_URI is not set: run the tests with `make test` \
         (or `infra/with-test-services.sh cargo test`), which starts the test database",
    );
    let config = StoreConfig {
        uri,
        database: format!("test_{}", ObjectId::new().to_hex()),
        max_pool_size: None,
    };
    let store = Store::connect(&config).await.unwrap();
    store.ensure_indexes().await.unwrap();
    store
}

fn customer(parent: Option<ObjectId>) -> CustomerDoc {
    let now = DateTime::now();
    CustomerDoc {
        id: ObjectId::new(),
        name: Some("Amira".into()),
        username: "amira".into(),
        email: "amira@example.com".into(),
        points: MilliPoints::from_milli(5_000_250),
        parent_customer: parent,
        level_letter: Level::C,
        referral_status: REFERRAL_ACTIVE.into(),
        is_verified: true,
        address: None,
        created_at: now,
        updated_at: now,
    }
}

fn tree_reward(purchase: ObjectId, recipient: ObjectId, amount: i64) -> RewardEntryDoc {
    let id = ObjectId::new();
    RewardEntryDoc {
        id,
        kind: TransactionType::TreeReward,
        customer_id: recipient,
        user_name: "amira".into(),
        user_email: "amira@example.com".into(),
        amount: MilliPoints::from_milli(amount),
        currency: CURRENCY.into(),
        status: ENTRY_COMPLETED.into(),
        description: "Tree reward - Level B".into(),
        reference: reference_of(id),
        processed_at: DateTime::now(),
        pool: None,
        related_transaction: purchase,
        level: Some(Level::B),
        shared_with: None,
        created_at: DateTime::now(),
        updated_at: DateTime::now(),
    }
}

fn pool_entry(purchase: ObjectId, pool: Pool) -> RewardEntryDoc {
    RewardEntryDoc {
        kind: match pool {
            Pool::Gifts => TransactionType::GiftsReward,
            Pool::App => TransactionType::AppReward,
        },
        pool: Some(pool),
        level: None,
        // The buyer, as the original's pool entries name it; one buyer per purchase.
        ..tree_reward(purchase, purchase, 1)
    }
}

async fn raw(store: &Store, collection: &str, id: ObjectId) -> Document {
    store
        .database()
        .collection::<Document>(collection)
        .find_one(doc! {"_id": id})
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn ensure_indexes_creates_every_index_and_is_idempotent() {
    let store = fresh_store().await;
    store.ensure_indexes().await.unwrap(); // second run: no error, nothing changes

    for spec in index_specs() {
        let indexes: Vec<_> = store
            .database()
            .collection::<Document>(spec.collection)
            .list_indexes()
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let found = indexes
            .iter()
            .find(|i| i.options.as_ref().and_then(|o| o.name.as_deref()) == Some(spec.name))
            .unwrap_or_else(|| panic!("{}.{} is missing", spec.collection, spec.name));
        assert_eq!(found.keys, spec.keys, "{}", spec.name);
        let options = found.options.as_ref().unwrap();
        assert_eq!(
            options.unique.unwrap_or(false),
            spec.unique,
            "{}",
            spec.name
        );
        assert_eq!(
            options.partial_filter_expression, spec.partial_filter,
            "{}",
            spec.name
        );
        assert_eq!(
            options.expire_after.is_some(),
            spec.expires_at_field_value,
            "{}",
            spec.name
        );
    }
}

#[tokio::test]
async fn the_apps_own_indexes_count_when_equivalent_and_a_missing_guarantee_refuses_by_name() {
    use mall_store::testing::indexes::{IndexError, IndexState};
    let config = StoreConfig {
        uri: std::env::var("MALL_TEST_MONGODB_URI").unwrap(),
        database: format!("test_{}", ObjectId::new().to_hex()),
        max_pool_size: None,
    };
    let store = Store::connect(&config).await.unwrap();
    // Mongoose's unique cart index, under its own name: ours is not created beside it.
    store
        .database()
        .run_command(doc! {"createIndexes": "carts", "indexes": [
            {"key": {"customerId": 1}, "name": "customerId_1", "unique": true, "background": true},
        ]})
        .await
        .unwrap();
    // Our claim index's name, taken by an index on other keys: it cannot be created.
    store
        .database()
        .run_command(doc! {"createIndexes": "checkoutjobs", "indexes": [
            {"key": {"status": 1}, "name": "claim"},
        ]})
        .await
        .unwrap();
    let err = store.ensure_indexes().await.unwrap_err();
    match err {
        IndexError::GuaranteeMissing(missing) => {
            assert_eq!(missing.len(), 1, "{missing:?}");
            assert!(missing[0].starts_with("checkoutjobs.claim"), "{missing:?}");
        }
        other => panic!("{other}"),
    }
    let statuses = store.inspect_indexes().await.unwrap();
    let state = |name: &str| {
        statuses
            .iter()
            .find(|s| s.name == name)
            .unwrap()
            .state
            .clone()
    };
    assert_eq!(
        state("one_cart_per_customer"),
        IndexState::Equivalent {
            existing: "customerId_1".into()
        }
    );
    assert!(matches!(state("claim"), IndexState::Conflicting { .. }));
    // Every other index was still made, each on its own.
    assert_eq!(state("one_payout_per_recipient"), IndexState::Present);
    assert_eq!(state("one_job_per_purchase"), IndexState::Present);
}

#[tokio::test]
async fn the_spec_indexes_are_all_declared() {
    let declared: Vec<(&str, Document)> = index_specs()
        .into_iter()
        .map(|s| (s.collection, s.keys))
        .collect();
    for required in [
        ("customers", doc! {"parentCustomer": 1}),
        ("carts", doc! {"customerId": 1}),
        ("transactions", doc! {"customerId": 1, "createdAt": -1}),
        ("transactions", doc! {"relatedTransaction": 1}),
        ("checkoutjobs", doc! {"checkoutTransactionId": 1}),
        ("checkoutjobs", doc! {"status": 1, "runAfter": 1}),
        ("transactions", doc! {"customerId": 1, "idempotencyKey": 1}),
    ] {
        assert!(
            declared.contains(&(required.0, required.1.clone())),
            "{required:?}"
        );
    }
}

#[tokio::test]
async fn a_second_payout_of_one_kind_to_one_recipient_for_one_purchase_is_refused() {
    let store = fresh_store().await;
    let entries = store.reward_entries();
    let (purchase, recipient) = (ObjectId::new(), ObjectId::new());

    entries
        .insert_one(tree_reward(purchase, recipient, 1_750))
        .await
        .unwrap();
    let second = entries
        .insert_one(tree_reward(purchase, recipient, 1_750))
        .await
        .unwrap_err();
    assert!(
        mall_store::testing::error::is_duplicate_key(&second),
        "{second}"
    );

    // Another kind, another recipient or another purchase is a different payout.
    let shared = RewardEntryDoc {
        kind: TransactionType::TreeRewardShared,
        ..tree_reward(purchase, recipient, 875)
    };
    entries.insert_one(shared).await.unwrap();
    entries
        .insert_one(tree_reward(purchase, ObjectId::new(), 1_750))
        .await
        .unwrap();
    entries
        .insert_one(tree_reward(ObjectId::new(), recipient, 1_750))
        .await
        .unwrap();

    // Pool entries: one per pool and purchase.
    entries
        .insert_one(pool_entry(purchase, Pool::Gifts))
        .await
        .unwrap();
    entries
        .insert_one(pool_entry(purchase, Pool::App))
        .await
        .unwrap();
    let again = entries
        .insert_one(pool_entry(purchase, Pool::Gifts))
        .await
        .unwrap_err();
    assert!(
        mall_store::testing::error::is_duplicate_key(&again),
        "{again}"
    );

    assert_eq!(entries.count_documents(doc! {}).await.unwrap(), 6);
}

#[tokio::test]
async fn purchases_stay_outside_the_payout_index() {
    // Two purchases by one customer share (no relatedTransaction, purchase, customer): the
    // partial filter keeps them out of the unique index.
    let store = fresh_store().await;
    let buyer = ObjectId::new();
    for _ in 0..2 {
        store.purchases().insert_one(purchase(buyer)).await.unwrap();
    }
    assert_eq!(
        store
            .purchases()
            .count_documents(doc! {"customerId": buyer})
            .await
            .unwrap(),
        2
    );
}

#[tokio::test]
async fn one_cart_per_customer_and_one_job_per_purchase() {
    let store = fresh_store().await;
    let owner = ObjectId::new();
    let cart = |owner| CartDoc {
        id: ObjectId::new(),
        customer_id: owner,
        items: vec![],
        total_amount: MilliPoints::ZERO,
        total_items: 0,
    };
    store.carts().insert_one(cart(owner)).await.unwrap();
    let err = store.carts().insert_one(cart(owner)).await.unwrap_err();
    assert!(mall_store::testing::error::is_duplicate_key(&err));

    let purchase_id = ObjectId::new();
    store
        .checkout_jobs()
        .insert_one(job(purchase_id))
        .await
        .unwrap();
    let err = store
        .checkout_jobs()
        .insert_one(job(purchase_id))
        .await
        .unwrap_err();
    assert!(mall_store::testing::error::is_duplicate_key(&err));
}

#[tokio::test]
async fn a_customer_round_trips_with_points_as_a_double() {
    let store = fresh_store().await;
    let parent = customer(None);
    let child = customer(Some(parent.id));
    store
        .customers()
        .insert_many([&parent, &child])
        .await
        .unwrap();

    let stored = raw(&store, "customers", child.id).await;
    assert_eq!(stored.get("points"), Some(&Bson::Double(5000.25)));
    assert_eq!(
        stored.get("parentCustomer"),
        Some(&Bson::ObjectId(parent.id))
    );
    assert_eq!(stored.get("levelLetter"), Some(&Bson::String("C".into())));
    assert_eq!(stored.get("isVerified"), Some(&Bson::Boolean(true)));
    assert!(matches!(stored.get("createdAt"), Some(Bson::DateTime(_))));
    assert_eq!(
        raw(&store, "customers", parent.id)
            .await
            .get("parentCustomer"),
        Some(&Bson::Null)
    );

    let back = store
        .customers()
        .find_one(doc! {"_id": child.id})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, child);
}

#[tokio::test]
async fn wallets_the_app_wrote_are_read_in_points_or_refused_by_name() {
    let store = fresh_store().await;
    // A customer as the app left it, with `points` as given, read back through our type.
    let read_wallet = |points: Bson| {
        let store = store.clone();
        async move {
            let mut doc = mall_store::bson::to_document(&customer(None)).unwrap();
            doc.insert("points", points);
            let id = doc.get_object_id("_id").unwrap();
            store
                .database()
                .collection::<Document>("customers")
                .insert_one(doc)
                .await
                .unwrap();
            store
                .customers()
                .find_one(doc! {"_id": id})
                .await
                .map(|found| found.unwrap().points)
        }
    };
    let decimal = |text: &str| Bson::Decimal128(text.parse().unwrap());
    for (points, expected) in [
        (Bson::Int32(5000), "5000"),
        (Bson::Int64(12), "12"),
        (Bson::Double(4239.149999999997), "4239.15"),
        (Bson::Double(5.1000000000000005), "5.1"),
        (decimal("12.345"), "12.345"),
    ] {
        let read = read_wallet(points.clone()).await.unwrap();
        assert_eq!(read, expected.parse().unwrap(), "{points:?}");
    }
    for (points, named) in [
        (Bson::String("5000".into()), "string"),
        (Bson::Double(f64::NAN), "finite"),
        (Bson::Double(-1.0), "negative"),
    ] {
        let err = read_wallet(points.clone()).await.unwrap_err();
        assert!(err.to_string().contains(named), "{points:?}: {err}");
    }
}

fn purchase(buyer: ObjectId) -> PurchaseDoc {
    let now = DateTime::now();
    let id = ObjectId::new();
    PurchaseDoc {
        id,
        kind: TransactionType::Purchase,
        customer_id: buyer,
        user_name: "amira".into(),
        user_email: "amira@example.com".into(),
        amount: MilliPoints::from_milli(1_000_500),
        currency: CURRENCY.into(),
        status: ENTRY_COMPLETED.into(),
        description: "Purchase - 1 item(s)".into(),
        payment_method: PAID_FROM_WALLET.into(),
        reference: reference_of(id),
        items: vec![PurchaseLineDoc {
            product_id: ObjectId::new().to_hex(),
            product_name: "Dates".into(),
            quantity: 2,
            price: MilliPoints::from_milli(500_250),
            subtotal: MilliPoints::from_milli(1_000_500),
            unit_reward_points: MilliPoints::from_milli(50_000),
        }],
        shipping_address: Some(ShippingAddressDoc {
            street: "123 Main St".into(),
        }),
        processed_at: now,
        cart_total: MilliPoints::from_milli(1_000_500),
        reward_points_earned: MilliPoints::from_milli(100_000),
        app_points_share: MilliPoints::from_milli(50_000),
        gifts_points_share: MilliPoints::from_milli(15_000),
        tree_points_share: MilliPoints::from_milli(35_000),
        tree_distribution: vec![],
        reward_split: None,
        rewards_status: RewardsStatus::Processing,
        job_id: ObjectId::new(),
        wallet_balance_after: MilliPoints::from_milli(4_000_000),
        idempotency_key: None,
        request_fingerprint: None,
        reward_log: None,
        created_at: now,
        updated_at: now,
    }
}

fn job(purchase_id: ObjectId) -> CheckoutJobDoc {
    let now = DateTime::now();
    CheckoutJobDoc {
        id: ObjectId::new(),
        checkout_transaction_id: purchase_id,
        customer_id: ObjectId::new(),
        status: JobStatus::Pending,
        attempts: 0,
        claims: Some(0),
        claimed_at: None,
        max_attempts: 3,
        run_after: Some(now),
        lease_until: None,
        claim_token: None,
        payload: JobPayloadDoc {
            reward_points: MilliPoints::from_milli(100_000),
            app_points_share: MilliPoints::from_milli(50_000),
            gifts_points_share: MilliPoints::from_milli(15_000),
            tree_points_share: MilliPoints::from_milli(35_000),
            direct_referral_share: Some(MilliPoints::ZERO),
            policy: Some(RewardPolicy::default().to_overrides()),
            economy: None,
            first_purchase: None,
            settings: None,
        },
        error: None,
        errors: vec![JobErrorDoc {
            attempt: 1,
            at: now,
            kind: JobErrorKind::Retryable,
            message: "write conflict".into(),
        }],
        redrives: vec![],
        created_at: now,
        updated_at: Some(now),
        started_at: None,
        completed_at: None,
        processed_at: None,
        failed_at: None,
        expires_at: None,
    }
}

#[tokio::test]
async fn a_purchase_and_a_job_round_trip_with_their_types() {
    let store = fresh_store().await;
    let p = purchase(ObjectId::new());
    store.purchases().insert_one(&p).await.unwrap();
    let stored = raw(&store, "transactions", p.id).await;
    assert_eq!(stored.get("type"), Some(&Bson::String("purchase".into())));
    // In the app's unit and type: points as a Double, `amount` the positive total paid.
    assert_eq!(stored.get("cartTotal"), Some(&Bson::Double(1000.5)));
    assert_eq!(stored.get("amount"), Some(&Bson::Double(1000.5)));
    assert_eq!(
        stored.get("rewardsStatus"),
        Some(&Bson::String("processing".into()))
    );
    let line = stored.get_array("items").unwrap()[0].as_document().unwrap();
    assert_eq!(line.get("price"), Some(&Bson::Double(500.25)));
    assert_eq!(
        line.get("productId").and_then(Bson::as_str).map(str::len),
        Some(24)
    );
    assert_eq!(
        store
            .purchases()
            .find_one(doc! {"_id": p.id})
            .await
            .unwrap(),
        Some(p)
    );

    let j = job(ObjectId::new());
    store.checkout_jobs().insert_one(&j).await.unwrap();
    let stored = raw(&store, "checkoutjobs", j.id).await;
    assert_eq!(stored.get("status"), Some(&Bson::String("pending".into())));
    let payload = stored.get_document("payload").unwrap();
    assert_eq!(payload.get("totalRewardPoints"), Some(&Bson::Double(100.0)));
    let back = store
        .checkout_jobs()
        .find_one(doc! {"_id": j.id})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.payload.paying_policy(), Ok(RewardPolicy::default()));
    assert_eq!(back, j);
}

/// The rule every wallet and job write of ours relies on (they are by `_id` alone, computed from
/// what the transaction's snapshot read): a transaction may not overwrite a document that anyone
/// wrote after its snapshot — here the app's own top-up, outside any transaction. The write
/// conflicts (TransientTransactionError), and the top-up survives.
#[tokio::test]
async fn a_document_written_since_a_transactions_snapshot_cannot_be_overwritten_by_it() {
    let store = fresh_store().await;
    let buyer = customer(None);
    store.customers().insert_one(&buyer).await.unwrap();
    let wallets = store.database().collection::<Document>("customers");

    let mut session = store.client().start_session().await.unwrap();
    session
        .start_transaction()
        .read_concern(mongodb::options::ReadConcern::snapshot())
        .await
        .unwrap();
    let read = wallets
        .find_one(doc! {"_id": buyer.id})
        .session(&mut session)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.get_f64("points").unwrap(), 5000.25);

    // The app tops the wallet up meanwhile.
    wallets
        .update_one(doc! {"_id": buyer.id}, doc! {"$inc": {"points": 100.0}})
        .await
        .unwrap();

    // Our write, from what the snapshot read: refused as a conflict.
    let charged = wallets
        .update_one(doc! {"_id": buyer.id}, doc! {"$set": {"points": 4000.25}})
        .session(&mut session)
        .await;
    let err = charged.expect_err("the write must conflict");
    assert!(
        err.contains_label(mongodb::error::TRANSIENT_TRANSACTION_ERROR),
        "{err}"
    );
    let _ = session.abort_transaction().await;
    let after = wallets
        .find_one(doc! {"_id": buyer.id})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        after.get_f64("points").unwrap(),
        5100.25,
        "the top-up survives"
    );
}
