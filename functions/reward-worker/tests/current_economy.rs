//! The app's current economy on the real test server, from the real checkout transaction to the
//! drain: the admin's settings read at checkout and recorded in the job (a later change never
//! reaches a queued job), a configured 0 paying 0, an unusable settings document checking out on
//! the app's defaults and saying so, the first purchase decided at checkout, the direct-referral
//! share and the gifts paid exactly, the gifts pool never overdrawn by concurrent workers, and
//! the app's own course subscriptions beside our checkouts losing no wallet change. Also: the
//! settings read field by field (the admin's switches hold when the shares are unusable, for our
//! jobs and the app's, which are counted), the first purchase that stays first whatever
//! completes while its job waits, and the gifts pool following what others write to the ledger.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::sync::Arc;

use mall_domain::MilliPoints;
use mall_store::bson::{doc, oid::ObjectId, DateTime, Document};
use mall_store::testing::documents::{JobStatus, TransactionType};
use mall_store::testing::queue::QueueSettings;
use reward_worker::drain::{DrainLimits, DrainSummary, SystemClock};
use serde_json::json;
use support::*;

fn points(text: &str) -> MilliPoints {
    text.parse().unwrap()
}

/// The document the app writes with its defaults.
fn app_defaults() -> Document {
    doc! {
        "levelGifts": {"B": 10, "D": 20, "F": 30, "H": 40, "J": 50},
        "firstPaymentReferral": 0.05, "treeShare": 0.5, "giftsShare": 0.15, "appShare": 0.3,
        "signupPoints": {"enabled": true, "amount": 50}, "enableLevelGifts": true,
        "createdAt": DateTime::now(), "updatedAt": DateTime::now(), "__v": 0,
    }
}

async fn drain(store: &mall_store::Store, batch_size: usize) -> DrainSummary {
    reward_worker::drain_queue(
        store,
        mall_testkit::db::untimed_settings(),
        DrainLimits {
            concurrency: 1,
            batch_size,
            ..DrainLimits::default()
        },
        Arc::new(SystemClock),
    )
    .await
}

/// root (C) ← parent (B) ← buyer (A), everyone active and verified; more buyers under parent.
async fn line_world(buyers: usize) -> (World, ObjectId) {
    let mut world = World::new().await;
    let mut customers = vec![
        json!({"id": "root", "parent": null, "level": "C", "active": true, "verified": true}),
        json!({"id": "parent", "parent": "root", "level": "B", "active": true, "verified": true}),
    ];
    for i in 0..buyers {
        customers.push(
            json!({"id": format!("buyer{i}"), "parent": "parent", "level": "A",
                              "active": true, "verified": true}),
        );
    }
    world
        .seed_customers(&json!({ "customers": customers }), "1000")
        .await;
    // R = 100 per unit.
    let product = world.product("100", "100").await;
    (world, product)
}

/// The entries of one kind that we wrote (they link their purchase).
async fn entries_of_kind(world: &World, kind: TransactionType) -> Vec<(ObjectId, MilliPoints)> {
    world
        .store
        .reward_entries()
        .find(doc! {"type": kind.as_str(), "relatedTransaction": {"$exists": true}})
        .sort(doc! {"_id": 1})
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.customer_id, e.amount))
        .collect()
}

use futures_util::TryStreamExt;

#[tokio::test]
async fn each_job_pays_by_the_settings_and_first_purchase_of_its_checkout() {
    let (world, product) = line_world(1).await;
    world.set_reward_settings(app_defaults()).await;
    world.app_gifts_income("1000").await;
    let buyer = world.id("buyer0");

    // Two checkouts before any worker runs: the first is the buyer's first purchase (decided in
    // the checkout's transaction, not when the job runs as the app does), the second is not.
    world.commands.clear();
    let first = world.checkout_current(buyer, product).await;
    // After the cart's filling (one update), the checkout's six commands: the settings and the
    // first-purchase check ride in its one read.
    assert_eq!(
        world.commands.names()[1..],
        [
            "aggregate",
            "insert",
            "update",
            "update",
            "insert",
            "commitTransaction"
        ]
    );
    let second = world.checkout_current(buyer, product).await;
    assert_eq!(
        (
            first.split.tree,
            first.split.gifts,
            first.split.referral,
            first.split.app
        ),
        (points("50"), points("15"), points("5"), points("30"))
    );
    // The admin raises the direct-referral share: only checkouts from now on pay 10 %.
    let mut raised = app_defaults();
    raised.insert("firstPaymentReferral", 0.1);
    world.set_reward_settings(raised).await;
    let third = world.checkout_current(buyer, product).await;
    assert_eq!(
        (third.split.referral, third.split.app),
        (points("10"), points("25"))
    );

    for (receipt, first_purchase, referral) in [
        (&first, true, "5"),
        (&second, false, "5"),
        (&third, false, "10"),
    ] {
        let job = world
            .store
            .queue()
            .job(receipt.job_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(job.payload.first_purchase, Some(first_purchase));
        assert_eq!(job.payload.direct_referral_share, Some(points(referral)));
        assert_eq!(job.payload.economy.as_deref(), Some("current"));
        assert!(job.payload.settings.is_some());
    }

    let summary = drain(&world.store, 50).await;
    assert_eq!((summary.completed, summary.failed), (3, 0), "{summary:?}");

    // Tree: 5 to the parent (B) and 5 to root (C) per job; unused 40 to the app.
    // D: 5 to the parent (first purchase), 5 and 10 back to the buyer (cashback).
    // Signup: 50 to the buyer, from the pool.
    assert_eq!(world.wallet("parent").await, points("1020"));
    assert_eq!(world.wallet("root").await, points("1015"));
    assert_eq!(world.wallet("buyer0").await, points("765"));
    assert_eq!(
        entries_of_kind(&world, TransactionType::DirectReferralReward).await,
        [
            (world.id("parent"), points("5")),
            (buyer, points("5")),
            (buyer, points("10"))
        ]
    );
    assert_eq!(
        entries_of_kind(&world, TransactionType::SignupGiftsReward).await,
        [(buyer, points("50"))]
    );
    let apps: Vec<MilliPoints> = entries_of_kind(&world, TransactionType::AppReward)
        .await
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    assert_eq!(apps, [points("70"), points("70"), points("65")]);
    // The purchase as the app's reports read it: the final app amount, the gifts share.
    let purchase = world.purchase(first.transaction_id).await;
    assert_eq!(purchase.app_points_share, points("70"));
    assert_eq!(purchase.gifts_points_share, points("15"));
    // The pool: the app's 1000, three gifts shares, one signup gift.
    assert_eq!(world.gifts_pool().await, Some(points("995")));
    let audit = world.store.operators().audit().await.unwrap();
    assert!(audit.is_clean(), "{:#?}", audit.violations);

    // A batch once the pool exists (and the buyer's chain is known): the claim (candidates,
    // stamp, read back), the turn, the load, the customers, the entries, the purchases, the
    // pool, the jobs, the commit — eleven; then the claim that finds nothing.
    world.checkout_current(buyer, product).await;
    world.commands.clear();
    drain(&world.store, 50).await;
    let names = world.commands.names();
    assert_eq!(names.len(), 11 + 1, "{names:?}");
}

#[tokio::test]
async fn a_configured_zero_pays_zero() {
    let (world, product) = line_world(1).await;
    let mut zero = app_defaults();
    zero.insert("firstPaymentReferral", 0);
    zero.insert("signupPoints", doc! {"enabled": true, "amount": 0});
    world.set_reward_settings(zero).await;
    world.app_gifts_income("1000").await;
    let receipt = world.checkout_current(world.id("buyer0"), product).await;
    assert_eq!(
        (receipt.split.referral, receipt.split.app),
        (MilliPoints::ZERO, points("35"))
    );
    drain(&world.store, 50).await;
    assert!(
        entries_of_kind(&world, TransactionType::DirectReferralReward)
            .await
            .is_empty()
    );
    assert!(entries_of_kind(&world, TransactionType::SignupGiftsReward)
        .await
        .is_empty());
    assert_eq!(world.wallet("buyer0").await, points("900"));
    assert_eq!(world.wallet("parent").await, points("1005"));
    let audit = world.store.operators().audit().await.unwrap();
    assert!(audit.is_clean(), "{:#?}", audit.violations);
}

#[tokio::test]
async fn an_unusable_settings_document_checks_out_on_the_defaults_and_says_so() {
    let (world, product) = line_world(1).await;
    let mut broken = app_defaults();
    broken.insert("treeShare", "half");
    broken.insert("giftsShare", 0.9);
    world.set_reward_settings(broken).await;
    let receipt = world.checkout_current(world.id("buyer0"), product).await;
    // Never more than R, never a refused checkout: the app's defaults.
    assert_eq!(
        (
            receipt.split.tree,
            receipt.split.gifts,
            receipt.split.referral,
            receipt.split.app
        ),
        (points("50"), points("15"), points("5"), points("30"))
    );
    let job = world
        .store
        .queue()
        .job(receipt.job_id)
        .await
        .unwrap()
        .unwrap();
    let copy = job.payload.settings.unwrap();
    assert_eq!(copy.get_f64("treeShare"), Ok(0.5));
    assert_eq!(copy.get_f64("giftsShare"), Ok(0.15));
    let check = world
        .store
        .operators()
        .cutover_check(DateTime::now(), QueueSettings::default().lease, true)
        .await
        .unwrap();
    assert_eq!(
        check.settings.invalid_fields,
        ["treeShare", "treeShare + giftsShare + firstPaymentReferral"]
    );
    // The settings document stays as the admin left it: we never write it.
    let stored = world
        .store
        .database()
        .collection::<Document>("rewardsettings")
        .find_one(doc! {})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.get_str("treeShare"), Ok("half"));
}

#[tokio::test]
async fn concurrent_first_purchases_never_overdraw_the_gifts_pool() {
    const BUYERS: usize = 12;
    let (world, product) = line_world(BUYERS).await;
    world.set_reward_settings(app_defaults()).await;
    // 120 points in the pool: with 15 more per job, it covers only some of the 50-point gifts.
    world.app_gifts_income("120").await;
    for i in 0..BUYERS {
        world
            .checkout_current(world.id(&format!("buyer{i}")), product)
            .await;
    }
    // Three workers at once, in small batches so that their transactions interleave.
    let mut workers = Vec::new();
    for _ in 0..3 {
        let store = world.other_worker().await;
        workers.push(tokio::spawn(async move { drain(&store, 2).await }));
    }
    let mut completed = 0;
    for worker in workers {
        completed += worker.await.unwrap().completed;
    }
    // Contended jobs are snoozed briefly; whatever is left, one more drain finishes.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    completed += drain(&world.store, 50).await.completed;
    assert_eq!(completed, BUYERS);

    let gifts = entries_of_kind(&world, TransactionType::SignupGiftsReward).await;
    let pool = world.gifts_pool().await.unwrap();
    assert!(!pool.is_negative(), "the pool is never overdrawn: {pool}");
    // 120 + 12 × 15 = 300 came in; every gift paid came out of it, and no more.
    let paid = MilliPoints::checked_sum(gifts.iter().map(|(_, a)| *a)).unwrap();
    assert_eq!(pool.checked_add(paid).unwrap(), points("300"));
    assert!(
        !gifts.is_empty() && gifts.len() < BUYERS,
        "{} gifts",
        gifts.len()
    );
    // Each purchase's log says which gift was paid and which the pool could not cover.
    let mut uncovered = 0;
    for id in world.purchases_in_order().await {
        let log = world.purchase(id).await.reward_log.unwrap();
        uncovered += log.gifts_uncovered.len();
    }
    assert_eq!(gifts.len() + uncovered, BUYERS);
    let audit = world.store.operators().audit().await.unwrap();
    assert!(audit.is_clean(), "{:#?}", audit.violations);
}

/// The app's course subscription, as its controller does it: a conditional `$inc` of the wallet
/// and a `COURSE_SUBSCRIPTION` entry in one transaction, retried on a transient error.
async fn subscribe_to_a_course(store: &mall_store::Store, customer: ObjectId, cost: f64) {
    loop {
        let mut session = store.client().start_session().await.unwrap();
        session.start_transaction().await.unwrap();
        let db = store.database();
        let charged = db
            .collection::<Document>("customers")
            .update_one(
                doc! {"_id": customer, "points": {"$gte": cost}},
                doc! {"$inc": {"points": -cost}},
            )
            .session(&mut session)
            .await;
        let written = match charged {
            Ok(_) => db
                .collection::<Document>("transactions")
                .insert_one(doc! {"customerId": customer, "amount": cost,
                "type": "COURSE_SUBSCRIPTION", "status": "completed", "userName": "x",
                "userEmail": "x@example.com"})
                .session(&mut session)
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        let committed = match written {
            Ok(()) => session.commit_transaction().await,
            Err(e) => Err(e),
        };
        match committed {
            Ok(()) => return,
            Err(e) if e.contains_label("TransientTransactionError") => {
                let _ = session.abort_transaction().await;
            }
            Err(e) => panic!("the course subscription failed: {e}"),
        }
    }
}

#[tokio::test]
async fn course_subscriptions_beside_checkouts_lose_no_wallet_change() {
    let (world, product) = line_world(1).await;
    world.set_reward_settings(app_defaults()).await;
    let buyer = world.id("buyer0");
    let app = world.other_worker().await;
    let request = mall_domain::checkout::CheckoutRequest::default();
    let policy = mall_domain::RewardPolicy::preset(mall_domain::PolicyPreset::Current);
    let command = mall_store::CheckoutCommand {
        customer_id: buyer,
        request: &request,
        idempotency_key: None,
        policy: &policy,
        economy: mall_store::testing::checkout::Economy::Current {
            level_gifts_allowed: true,
        },
        job_max_attempts: 3,
    };
    for _ in 0..4 {
        seed_cart(&world, buyer, product).await;
        let (receipt, ()) = tokio::join!(
            world.store.checkouts().checkout(&command),
            subscribe_to_a_course(&app, buyer, 9.5),
        );
        receipt.unwrap();
    }
    // 1000 − 4 × 100 (checkouts) − 4 × 9.5 (courses), exactly.
    assert_eq!(world.wallet("buyer0").await, points("562"));
    let job_states: Vec<JobStatus> = world
        .store
        .checkout_jobs()
        .find(doc! {})
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.status)
        .collect();
    assert_eq!(job_states.len(), 4);
    // The courses are not purchases: the buyer's first checkout was its first purchase.
    let first = world
        .store
        .checkout_jobs()
        .find_one(doc! {})
        .sort(doc! {"_id": 1})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.payload.first_purchase, Some(true));
}

async fn seed_cart(world: &World, buyer: ObjectId, product: ObjectId) {
    mall_testkit::seed::fill_cart(&world.store, buyer, &[(product, 1)]).await;
}

#[tokio::test]
async fn a_worker_that_is_not_ours_is_seen_whether_it_parks_or_pays_our_jobs() {
    let (world, product) = line_world(3).await;
    let lease = QueueSettings::default().lease;
    let mut receipts = Vec::new();
    for i in 0..3 {
        receipts.push(
            world
                .checkout_current(world.id(&format!("buyer{i}")), product)
                .await,
        );
    }
    // Our own claims and completions are ours.
    drain(&world.store, 1).await;
    assert_eq!(
        world
            .store
            .queue()
            .foreign_activity(DateTime::now(), lease)
            .await
            .unwrap(),
        0
    );
    // The app's worker, still running: it claims one of our jobs (no token, its own startedAt,
    // two attempts) and completes another by its own rules.
    let jobs = world
        .store
        .database()
        .collection::<Document>("checkoutjobs");
    let app_receipt = world.checkout_current(world.id("buyer0"), product).await;
    jobs.update_one(
        doc! {"_id": app_receipt.job_id},
        doc! {"$set": {"status": "processing", "startedAt": DateTime::now()}, "$inc": {"attempts": 2}},
    )
    .await
    .unwrap();
    let now = DateTime::now();
    jobs.update_one(
        doc! {"_id": receipts[1].job_id},
        doc! {"$set": {"startedAt": now, "completedAt": now}},
    )
    .await
    .unwrap();
    assert_eq!(
        world
            .store
            .queue()
            .foreign_activity(DateTime::now(), lease)
            .await
            .unwrap(),
        2
    );
}

/// The admin's switches hold whatever else the document holds: shares that cannot be used
/// (0.5 + 0.15 + 0.4 is more than 1) fall back to the defaults as a group, and the signup gift
/// the admin switched off — with `false`, or with a `null` switch or amount, as the app reads
/// them — is paid to no one.
#[tokio::test]
async fn the_admins_switches_hold_when_the_shares_are_unusable() {
    let (world, product) = line_world(3).await;
    world.app_gifts_income("1000").await;
    let variants = [
        doc! {"firstPaymentReferral": 0.4, "signupPoints": {"enabled": false, "amount": 50},
        "enableLevelGifts": false},
        doc! {"signupPoints": {"enabled": null, "amount": 50}},
        doc! {"signupPoints": {"enabled": true, "amount": null}},
    ];
    for (i, variant) in variants.into_iter().enumerate() {
        let mut settings = app_defaults();
        settings.extend(variant);
        world.set_reward_settings(settings).await;
        let receipt = world
            .checkout_current(world.id(&format!("buyer{i}")), product)
            .await;
        // Never more than R: D is the default 5 %, not 40 %.
        assert_eq!(receipt.split.referral, points("5"), "variant {i}");
        let job = world
            .store
            .queue()
            .job(receipt.job_id)
            .await
            .unwrap()
            .unwrap();
        let copy = job.payload.settings.unwrap();
        assert_eq!(
            copy.get_document("signupPoints")
                .unwrap()
                .get_bool("enabled"),
            Ok(false),
            "variant {i}: the job records the gift as off"
        );
    }
    let summary = drain(&world.store, 50).await;
    assert_eq!((summary.completed, summary.failed), (3, 0), "{summary:?}");
    assert!(entries_of_kind(&world, TransactionType::SignupGiftsReward)
        .await
        .is_empty());
    assert!(entries_of_kind(&world, TransactionType::LevelGiftReward)
        .await
        .is_empty());
    // The parent was paid D for each of the three first purchases.
    assert_eq!(
        entries_of_kind(&world, TransactionType::DirectReferralReward)
            .await
            .len(),
        3
    );
    let audit = world.store.operators().audit().await.unwrap();
    assert!(audit.is_clean(), "{:#?}", audit.violations);
}

/// Makes a job of our checkout one of the app's own current checkout: the five numbers of its
/// payload, nothing of ours (no policy, no first-purchase decision, no settings).
async fn as_the_apps_own_job(world: &World, job: ObjectId) {
    world
        .store
        .database()
        .collection::<Document>("checkoutjobs")
        .update_one(
            doc! {"_id": job},
            doc! {"$unset": {"payload.policy": "", "payload.economy": "",
            "payload.firstPurchase": "", "payload.settings": ""}},
        )
        .await
        .unwrap();
    let job = world.store.queue().job(job).await.unwrap().unwrap();
    assert_eq!(
        job.payload.era(),
        mall_store::testing::documents::JobEra::AppCurrent
    );
}

/// An app-era first purchase whose job still waits while the buyer completes another purchase
/// stays the first: no completed purchase was created before it. The later purchase is a
/// repeat one. Exactly one first purchase: one direct-referral reward to the parent, one signup
/// gift, one cashback.
#[tokio::test]
async fn a_first_purchase_stays_first_whatever_completes_while_its_job_waits() {
    let (world, product) = line_world(1).await;
    world.set_reward_settings(app_defaults()).await;
    world.app_gifts_income("1000").await;
    let buyer = world.id("buyer0");
    // The app's own checkout queued the first (its job records the five numbers, nothing of
    // ours: no policy, no first-purchase decision, no settings).
    let first = world.checkout_current(buyer, product).await;
    as_the_apps_own_job(&world, first.job_id).await;
    // The buyer completes another purchase before the app's job runs.
    let second = world.checkout_current(buyer, product).await;
    let summary = drain(&world.store, 50).await;
    assert_eq!((summary.completed, summary.failed), (2, 0), "{summary:?}");
    assert_eq!(summary.on_unusable_settings, 0);

    let direct = entries_of_kind(&world, TransactionType::DirectReferralReward).await;
    let mut recipients: Vec<ObjectId> = direct.iter().map(|(id, _)| *id).collect();
    recipients.sort();
    let mut expected = vec![world.id("parent"), buyer];
    expected.sort();
    assert_eq!(
        recipients, expected,
        "one referral to the parent, one cashback"
    );
    let first_entries = world.entries_of(first.transaction_id).await;
    assert!(first_entries
        .iter()
        .any(|e| e.kind == TransactionType::DirectReferralReward
            && e.customer_id == world.id("parent")));
    let second_entries = world.entries_of(second.transaction_id).await;
    assert!(second_entries
        .iter()
        .any(|e| e.kind == TransactionType::DirectReferralReward && e.customer_id == buyer));
    assert_eq!(
        entries_of_kind(&world, TransactionType::SignupGiftsReward).await,
        [(buyer, points("50"))]
    );
}

/// Σ over the ledger by the app's formula (completed `gifts_reward` − `signup_gifts_reward` −
/// `level_gift_reward`), exactly.
async fn pool_by_the_apps_formula(world: &World) -> MilliPoints {
    let entries: Vec<Document> = world
        .store
        .database()
        .collection::<Document>("transactions")
        .find(
            doc! {"type": {"$in": ["gifts_reward", "signup_gifts_reward", "level_gift_reward"]},
            "status": "completed"},
        )
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    entries.iter().fold(MilliPoints::ZERO, |sum, e| {
        let amount = mall_store::testing::amount::from_bson(e.get("amount").unwrap()).unwrap();
        if e.get_str("type") == Ok("gifts_reward") {
            sum.checked_add(amount).unwrap()
        } else {
            sum.checked_sub(amount).unwrap()
        }
    })
}

/// A pool entry written by someone else (the app's worker or an admin): no link to a purchase.
async fn others_pool_entry(world: &World, kind: &str, points: &str) {
    let amount = mall_store::testing::amount::to_bson(points.parse().unwrap()).unwrap();
    world
        .store
        .database()
        .collection::<Document>("transactions")
        .insert_one(doc! {
            "customerId": world.id("root"), "userName": "System", "userEmail": "system@mall.com",
            "amount": amount, "type": kind, "status": "completed", "currency": "POINTS",
            "description": "written by the app", "createdAt": DateTime::now(),
        })
        .await
        .unwrap();
}

/// The app's worker spends the pool down between two drains (signup gifts of its own): the
/// next drain counts what it wrote before planning, pays no gift the app's formula over the
/// ledger would not cover, and the document follows the ledger. A deposit by others counts too,
/// and a pool the app overdrew is only ever lifted by our jobs.
#[tokio::test]
async fn the_gifts_pool_follows_what_others_write_to_the_ledger() {
    let (world, product) = line_world(5).await;
    world.set_reward_settings(app_defaults()).await;
    world.app_gifts_income("200").await;
    world.checkout_current(world.id("buyer0"), product).await;
    drain(&world.store, 50).await;
    // 200 + 15 − 50 (buyer0's signup gift).
    assert_eq!(world.gifts_pool().await, Some(points("165")));

    // The app's worker (after a rollback, or before it was turned off) pays 160 of gifts.
    others_pool_entry(&world, "signup_gifts_reward", "100").await;
    others_pool_entry(&world, "level_gift_reward", "60").await;
    assert_eq!(pool_by_the_apps_formula(&world).await, points("5"));
    let audit = world.store.operators().audit().await.unwrap();
    assert!(audit.is_clean(), "{:#?}", audit.violations);
    assert_eq!(audit.gifts_uncounted_milli, "-160000");
    let check = world
        .store
        .operators()
        .cutover_check(DateTime::now(), QueueSettings::default().lease, true)
        .await
        .unwrap();
    assert!(check.gifts_pool.agrees);
    assert_eq!(check.gifts_pool.uncounted_entries, 2);

    // Two first purchases: 5 + 15 + 15 covers no 50-point gift.
    world.checkout_current(world.id("buyer1"), product).await;
    world.checkout_current(world.id("buyer2"), product).await;
    let summary = drain(&world.store, 50).await;
    assert_eq!((summary.completed, summary.failed), (2, 0), "{summary:?}");
    assert_eq!(
        entries_of_kind(&world, TransactionType::SignupGiftsReward).await,
        [(world.id("buyer0"), points("50"))]
    );
    assert_eq!(pool_by_the_apps_formula(&world).await, points("35"));
    assert_eq!(world.gifts_pool().await, Some(points("35")));

    // An admin's deposit of 100 lifts it: the next first purchase is paid its gift.
    others_pool_entry(&world, "gifts_reward", "100").await;
    world.checkout_current(world.id("buyer3"), product).await;
    drain(&world.store, 50).await;
    assert_eq!(
        entries_of_kind(&world, TransactionType::SignupGiftsReward)
            .await
            .len(),
        2
    );
    // 35 + 100 + 15 − 50.
    assert_eq!(pool_by_the_apps_formula(&world).await, points("100"));
    assert_eq!(world.gifts_pool().await, Some(points("100")));
    let audit = world.store.operators().audit().await.unwrap();
    assert!(audit.is_clean(), "{:#?}", audit.violations);
    assert_eq!(audit.gifts_uncounted_milli, "0");

    // The app overdraws the pool (−150 by its formula): the audit warns, no invariant of ours
    // is broken, and our next job pays no gift and only lifts it.
    others_pool_entry(&world, "signup_gifts_reward", "250").await;
    let audit = world.store.operators().audit().await.unwrap();
    assert!(audit.is_clean(), "{:#?}", audit.violations);
    assert!(audit.warnings.iter().any(|w| w.contains("below zero")));
    world.checkout_current(world.id("buyer4"), product).await;
    drain(&world.store, 50).await;
    assert_eq!(
        entries_of_kind(&world, TransactionType::SignupGiftsReward)
            .await
            .len(),
        2
    );
    assert_eq!(pool_by_the_apps_formula(&world).await, points("-135"));
    assert_eq!(world.gifts_pool().await, Some(points("-135")));

    // A document an earlier version wrote (no count of others' entries) is counted again from
    // the ledger by the next batch.
    world
        .store
        .database()
        .collection::<Document>("rewardpools")
        .replace_one(doc! {"_id": "gifts"}, doc! {"balance": 999.0})
        .await
        .unwrap();
    world.checkout_current(world.id("buyer3"), product).await;
    drain(&world.store, 50).await;
    assert_eq!(
        world.gifts_pool().await,
        Some(pool_by_the_apps_formula(&world).await)
    );
}

/// A job of the app's own checkout is paid by the settings as they are when it runs: fields it
/// cannot use are counted for it (and logged), and read field by field — the admin's switch of
/// the signup gift holds although a share cannot be used.
#[tokio::test]
async fn the_apps_job_on_unusable_settings_is_counted_and_its_switches_hold() {
    let (world, product) = line_world(1).await;
    world.set_reward_settings(app_defaults()).await;
    world.app_gifts_income("1000").await;
    let receipt = world.checkout_current(world.id("buyer0"), product).await;
    as_the_apps_own_job(&world, receipt.job_id).await;
    let mut settings = app_defaults();
    settings.insert("giftsShare", "fifteen");
    settings.insert("signupPoints", doc! {"enabled": false, "amount": 50});
    world.set_reward_settings(settings).await;
    let summary = drain(&world.store, 50).await;
    assert_eq!(
        (summary.completed, summary.on_unusable_settings),
        (1, 1),
        "{summary:?}"
    );
    assert!(entries_of_kind(&world, TransactionType::SignupGiftsReward)
        .await
        .is_empty());
    // D as the job recorded it, to the parent.
    assert_eq!(
        entries_of_kind(&world, TransactionType::DirectReferralReward).await,
        [(world.id("parent"), points("5"))]
    );
}
