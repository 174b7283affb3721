//! The store against a real MongoDB wire-protocol server (SecantusDB, started by
//! `infra/with-test-services.sh`, which `make test` uses). Each test gets a fresh database, so tests
//! run in parallel without seeing each other's data.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use futures_util::TryStreamExt;
use mall_domain::{Level, MilliPoints, RewardPolicy};
use mall_store::bson::{doc, oid::ObjectId, Bson, DateTime, Document};
use mall_store::documents::*;
use mall_store::indexes::index_specs;
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
    };
    let store = Store::connect(&config).await.unwrap();
    store.ensure_indexes().await.unwrap();
    store
}

fn customer(parent: Option<ObjectId>) -> CustomerDoc {
    let now = DateTime::now();
    CustomerDoc {
        id: ObjectId::new(),
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
    RewardEntryDoc {
        id: ObjectId::new(),
        kind: TransactionType::TreeReward,
        customer_id: Some(recipient),
        pool: None,
        amount: MilliPoints::from_milli(amount),
        related_transaction: purchase,
        level: Some(Level::B),
        shared_with: None,
        created_at: DateTime::now(),
    }
}

fn pool_entry(purchase: ObjectId, pool: Pool) -> RewardEntryDoc {
    RewardEntryDoc {
        kind: match pool {
            Pool::Gifts => TransactionType::GiftsReward,
            Pool::App => TransactionType::AppReward,
        },
        customer_id: None,
        pool: Some(pool),
        level: None,
        ..tree_reward(purchase, ObjectId::new(), 1)
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
    assert!(mall_store::error::is_duplicate_key(&second), "{second}");

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
    assert!(mall_store::error::is_duplicate_key(&again), "{again}");

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
    };
    store.carts().insert_one(cart(owner)).await.unwrap();
    let err = store.carts().insert_one(cart(owner)).await.unwrap_err();
    assert!(mall_store::error::is_duplicate_key(&err));

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
    assert!(mall_store::error::is_duplicate_key(&err));
}

#[tokio::test]
async fn a_customer_round_trips_with_int64_amounts() {
    let store = fresh_store().await;
    let parent = customer(None);
    let child = customer(Some(parent.id));
    store
        .customers()
        .insert_many([&parent, &child])
        .await
        .unwrap();

    let stored = raw(&store, "customers", child.id).await;
    assert_eq!(stored.get("points"), Some(&Bson::Int64(5_000_250)));
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
async fn small_amounts_stay_int64_through_inc() {
    // A small value fits an Int32; it must still be stored, and stay after $inc, as Int64.
    let store = fresh_store().await;
    let mut small = customer(None);
    small.points = MilliPoints::from_milli(7);
    store.customers().insert_one(&small).await.unwrap();
    store
        .customers()
        .update_one(doc! {"_id": small.id}, doc! {"$inc": {"points": 1_750_i64}})
        .await
        .unwrap();
    assert_eq!(
        raw(&store, "customers", small.id).await.get("points"),
        Some(&Bson::Int64(1_757))
    );
}

#[tokio::test]
async fn a_legacy_float_amount_is_refused_rather_than_rounded() {
    let store = fresh_store().await;
    let id = ObjectId::new();
    let mut doc = mall_store::bson::to_document(&customer(None)).unwrap();
    doc.insert("_id", id);
    doc.insert("points", 12.5_f64);
    store
        .database()
        .collection::<Document>("customers")
        .insert_one(doc)
        .await
        .unwrap();
    assert!(store.customers().find_one(doc! {"_id": id}).await.is_err());
}

fn purchase(buyer: ObjectId) -> PurchaseDoc {
    let now = DateTime::now();
    PurchaseDoc {
        id: ObjectId::new(),
        kind: TransactionType::Purchase,
        customer_id: buyer,
        amount: MilliPoints::from_milli(-1_000_000),
        cart_total: MilliPoints::from_milli(1_000_000),
        cart_snapshot: vec![PurchaseLineDoc {
            product_id: ObjectId::new(),
            name: "Dates".into(),
            quantity: 2,
            unit_price: MilliPoints::from_milli(500_000),
            unit_reward_points: MilliPoints::from_milli(50_000),
            line_total: MilliPoints::from_milli(1_000_000),
        }],
        wallet_balance_after: MilliPoints::from_milli(4_000_000),
        reward_points_earned: MilliPoints::from_milli(100_000),
        app_points_share: MilliPoints::from_milli(50_000),
        gifts_points_share: MilliPoints::from_milli(15_000),
        tree_points_share: MilliPoints::from_milli(35_000),
        rewards_status: RewardsStatus::Processing,
        job_id: ObjectId::new(),
        idempotency_key: None,
        request_fingerprint: None,
        tree_distribution: None,
        delivery_address: Some("123 Main St".into()),
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
        max_attempts: 3,
        run_after: now,
        lease_until: None,
        claim_token: None,
        payload: JobPayloadDoc {
            reward_points: MilliPoints::from_milli(100_000),
            app_points_share: MilliPoints::from_milli(50_000),
            gifts_points_share: MilliPoints::from_milli(15_000),
            tree_points_share: MilliPoints::from_milli(35_000),
            policy: RewardPolicy::default().to_overrides(),
        },
        errors: vec![JobErrorDoc {
            attempt: 1,
            at: now,
            kind: JobErrorKind::Retryable,
            message: "write conflict".into(),
        }],
        redrives: vec![],
        created_at: now,
        started_at: None,
        completed_at: None,
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
    assert_eq!(stored.get("cartTotal"), Some(&Bson::Int64(1_000_000)));
    assert_eq!(
        stored.get("rewardsStatus"),
        Some(&Bson::String("processing".into()))
    );
    let line = stored.get_array("cartSnapshot").unwrap()[0]
        .as_document()
        .unwrap();
    assert_eq!(line.get("unitPrice"), Some(&Bson::Int64(500_000)));
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
    assert_eq!(payload.get("rewardPoints"), Some(&Bson::Int64(100_000)));
    let back = store
        .checkout_jobs()
        .find_one(doc! {"_id": j.id})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.payload.policy.resolve(), Ok(RewardPolicy::default()));
    assert_eq!(back, j);
}
