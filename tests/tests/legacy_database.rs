//! The functions on a database the ORIGINAL system wrote (`tests/data/legacy/legacy-canonical.json`): its customers with
//! Int32 and Double wallets, its products, the app's carts, its purchases and reward entries in
//! points, its jobs in every state, and its indexes under mongoose's names.
//!
//! Proven here, on the real test server: the indexes are made sure of beside the app's own; the
//! original's pending jobs (and the one its killed worker left `processing`) are paid exactly once
//! and exactly as the pure rules plan them, job by job in claim order, under the original's
//! split; its failed job stays re-drivable; checkouts of the app's own carts charge exactly; what
//! we wrote reads back as the app reads it; and the audit passes, counting the original's own
//! records as legacy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/serial.rs"]
mod serial;

use std::collections::HashMap;

use futures_util::TryStreamExt;
use mall_domain::{JobTerms, MilliPoints, PolicyPreset, RewardPolicy};
use mall_store::bson::{doc, oid::ObjectId, Bson, DateTime, Document};
use mall_store::testing::indexes::IndexState;
use mall_store::testing::ops::{RedriveRequest, RedriveSelection};
use mall_store::testing::queue::QueueSettings;
use mall_testkit::db::{documents, fresh_counted_store};
use mall_testkit::legacy::LegacyDump;
use mall_testkit::replay::Replay;
use serial::drain_serially;

fn amount(doc: &Document, key: &str) -> MilliPoints {
    mall_store::testing::amount::from_bson(doc.get(key).unwrap()).unwrap()
}

#[tokio::test]
async fn the_original_systems_database_is_served_exactly_once_and_exactly() {
    let dump = LegacyDump::read();
    let (store, commands, _) = {
        // A fresh database, loaded before our indexes exist: the app's come first in production.
        let (store, commands, database) = fresh_counted_store().await;
        store.database().drop().await.unwrap();
        (store, commands, database)
    };
    dump.load(&store).await;

    // Loaded exactly: the wallets' types and the app's index names.
    let types = |t: &'static str| doc! {"points": {"$type": t}};
    let customers = store.database().collection::<Document>("customers");
    assert_eq!(customers.count_documents(types("int")).await.unwrap(), 1612);
    assert_eq!(
        customers.count_documents(types("double")).await.unwrap(),
        387
    );

    // Our indexes beside the app's: mongoose's equivalents count as present.
    let before = store.inspect_indexes().await.unwrap();
    let state = |statuses: &[mall_store::testing::indexes::IndexStatus], name: &str| {
        statuses
            .iter()
            .find(|s| s.name == name)
            .unwrap()
            .state
            .clone()
    };
    assert_eq!(
        state(&before, "one_cart_per_customer"),
        IndexState::Equivalent {
            existing: "customerId_1".into()
        }
    );
    assert_eq!(
        state(&before, "parentCustomer"),
        IndexState::Equivalent {
            existing: "parentCustomer_1".into()
        }
    );
    assert!(matches!(
        state(&before, "one_job_per_purchase"),
        IndexState::Conflicting { existing, .. } if existing == "checkoutTransactionId_1"
    ));
    assert_eq!(state(&before, "claim"), IndexState::Missing);

    // The cutover check, read-only, before anything of ours ran.
    let untouched = mall_testkit::db::snapshot(&store).await;
    let check = store
        .operators()
        .cutover_check(DateTime::now(), QueueSettings::default().lease, true)
        .await
        .unwrap();
    assert_eq!(mall_testkit::db::snapshot(&store).await, untouched);
    assert!(check.ready, "{:?}", check.blockers);
    let wallet_types = &check.amount_types[0];
    assert_eq!(
        (wallet_types.collection, wallet_types.field),
        ("customers", "points")
    );
    assert_eq!(
        wallet_types.types,
        vec![("double".to_owned(), 387), ("int".to_owned(), 1612)]
    );
    let legacy: Vec<(&str, u64)> = check
        .legacy_jobs
        .iter()
        .map(|j| (j.status.as_str(), j.count))
        .collect();
    assert_eq!(
        legacy,
        vec![
            ("completed", 145),
            ("failed", 1),
            ("pending", 43),
            ("processing", 1)
        ]
    );
    assert_eq!(check.unreadable_count, 0, "{:?}", check.unreadable);
    assert_eq!(check.indexes, before);
    assert!(
        check
            .warnings
            .iter()
            .any(|w| w.contains("left `processing`")),
        "{:?}",
        check.warnings
    );

    store.ensure_indexes().await.unwrap();
    for status in store.inspect_indexes().await.unwrap() {
        assert!(
            matches!(
                status.state,
                IndexState::Present | IndexState::Equivalent { .. }
            ),
            "{status:?}"
        );
    }

    // What the rules say the original's open jobs pay, in claim order (oldest id first).
    let mut model = Replay::of(dump.documents("customers"), MilliPoints::ZERO);
    let original = JobTerms::Split(RewardPolicy::preset(PolicyPreset::Original));
    let open: Vec<&Document> = dump
        .documents("checkoutjobs")
        .iter()
        .filter(|j| matches!(j.get_str("status"), Ok("pending") | Ok("processing")))
        .collect();
    assert_eq!(
        open.len(),
        44,
        "43 pending and 1 left processing by a killed worker"
    );
    let mut plans = HashMap::new();
    for job in &open {
        let payload = job.get_document("payload").unwrap();
        let plan = model.pay(
            job.get_object_id("customerId").unwrap(),
            amount(payload, "totalRewardPoints"),
            &original,
        );
        plans.insert(job.get_object_id("checkoutTransactionId").unwrap(), plan);
    }

    // A completed job of the original's whose purchase paid no tree line (only the pools), put
    // back to `pending` by hand as its runbook said: recognised as applied, nothing paid again.
    let paid_without_lines = dump
        .documents("checkoutjobs")
        .iter()
        .filter(|j| j.get_str("status") == Ok("completed"))
        .find(|j| {
            let purchase = j.get_object_id("checkoutTransactionId").unwrap();
            dump.documents("transactions").iter().any(|t| {
                t.get_object_id("_id") == Ok(purchase)
                    && t.get_array("treeDistribution").map(Vec::len) == Ok(0)
            })
        })
        .expect("the dump has a purchase the original paid without tree lines")
        .get_object_id("_id")
        .unwrap();
    store
        .database()
        .collection::<Document>("checkoutjobs")
        .update_one(
            doc! {"_id": paid_without_lines},
            doc! {"$set": {"status": "pending"}},
        )
        .await
        .unwrap();

    // One drain pays them all, in batches of ten commands once the chains' links are learned,
    // and a second drain finds nothing.
    commands.clear();
    let summary = drain_serially(&store).await;
    assert_eq!(
        (summary.claimed, summary.completed),
        (45, 45),
        "{summary:?}"
    );
    assert_eq!(summary.failed + summary.retried, 0, "{summary:?}");
    // Per batch the claim (candidates, stamp, read back), the turn, the load, the customers'
    // update, the entries, the purchases, the jobs and the commit (the job already applied
    // rides in one of them, paying nothing); then the claim that finds nothing. Before a
    // batch's transaction, this fresh environment learns the links of the chains it does not
    // know yet: a few round trips, the first time only.
    let batches = 45_usize.div_ceil(reward_worker::drain::DEFAULT_BATCH_SIZE);
    assert_eq!(
        (summary.batches, summary.splits),
        (batches, 0),
        "{summary:?}"
    );
    let learning = commands.learning();
    assert!(learning >= 1, "{:?}", commands.names());
    assert_eq!(
        commands.count(),
        10 * batches + 1 + learning,
        "{:?}",
        commands.names()
    );
    assert_eq!(drain_serially(&store).await.claimed, 0);

    // Every wallet exactly as planned, to the milli-point.
    for customer in documents(&store, "customers", doc! {}).await {
        let id = customer.get_object_id("_id").unwrap();
        assert_eq!(
            mall_store::testing::amount::wallet_from_bson(customer.get("points").unwrap()).unwrap(),
            model.wallets[&id],
            "customer {id}"
        );
    }
    // Each paid purchase lists its payouts as the app reads them, in points.
    for (purchase_id, plan) in &plans {
        let purchase = &documents(&store, "transactions", doc! {"_id": purchase_id}).await[0];
        assert_eq!(purchase.get_str("rewardsStatus"), Ok("completed"));
        assert_eq!(amount(purchase, "giftsPointsShare"), plan.gifts_final);
        let listed: Vec<(ObjectId, MilliPoints)> = purchase
            .get_array("treeDistribution")
            .unwrap()
            .iter()
            .map(|line| {
                let line = line.as_document().unwrap();
                (
                    line.get_object_id("recipientId").unwrap(),
                    amount(line, "amount"),
                )
            })
            .collect();
        let planned: Vec<(ObjectId, MilliPoints)> =
            plan.payouts.iter().map(|p| (p.id, p.amount)).collect();
        assert_eq!(listed, planned, "purchase {purchase_id}");
    }

    // The original's failed job (its buyer was deleted) is re-drivable, and fails again by name.
    let failed = dump
        .documents("checkoutjobs")
        .iter()
        .find(|j| j.get_str("status") == Ok("failed"))
        .unwrap()
        .get_object_id("_id")
        .unwrap();
    let request =
        RedriveRequest::new(RedriveSelection::Ids(vec![failed]), "cutover check", false).unwrap();
    let report = store
        .operators()
        .redrive(&request, DateTime::now())
        .await
        .unwrap();
    assert_eq!(report.redriven, vec![failed]);
    let summary = drain_serially(&store).await;
    assert_eq!((summary.claimed, summary.failed), (1, 1), "{summary:?}");
    let job = &documents(&store, "checkoutjobs", doc! {"_id": failed}).await[0];
    assert!(job
        .get_document("error")
        .unwrap()
        .get_str("message")
        .unwrap()
        .contains("does not exist"));

    // The app's own carts: the ten its checkout refused, topped up as the admin does.
    let carts: Vec<Document> =
        documents(&store, "carts", doc! {"items.0": {"$exists": true}}).await;
    assert_eq!(carts.len(), 10);
    let mut paid = MilliPoints::ZERO;
    for cart in &carts {
        let buyer = cart.get_object_id("customerId").unwrap();
        let before = &documents(&store, "customers", doc! {"_id": buyer}).await[0];
        let top_up = mall_store::testing::amount::from_bson(before.get("points").unwrap())
            .unwrap()
            .checked_add(MilliPoints::from_points(100_000).unwrap())
            .unwrap();
        customers
            .update_one(
                doc! {"_id": buyer},
                doc! {"$set": {"points": mall_store::testing::amount::to_bson(top_up).unwrap()}},
            )
            .await
            .unwrap();
        let receipt = mall_testkit::seed::checkout(&store, buyer).await;
        paid = paid.checked_add(receipt.cart_total).unwrap();
        let after = &documents(&store, "customers", doc! {"_id": buyer}).await[0];
        assert_eq!(
            amount(after, "points"),
            top_up.checked_sub(receipt.cart_total).unwrap()
        );
        // Priced from the products, not from the cart's client-side prices.
        let mut expected_total = MilliPoints::ZERO;
        for item in cart.get_array("items").unwrap() {
            let item = item.as_document().unwrap();
            let product = ObjectId::parse_str(item.get_str("productId").unwrap()).unwrap();
            let product = &documents(&store, "products", doc! {"_id": product}).await[0];
            let quantity = i64::from(item.get_i32("quantity").unwrap());
            let line = amount(product, "price").checked_mul(quantity).unwrap();
            expected_total = expected_total.checked_add(line).unwrap();
        }
        assert_eq!(receipt.cart_total, expected_total);
        let cleared = &documents(
            &store,
            "carts",
            doc! {"_id": cart.get_object_id("_id").unwrap()},
        )
        .await[0];
        assert_eq!(cleared.get_array("items").unwrap().len(), 0);
        assert_eq!(cleared.get("totalAmount"), Some(&Bson::Int32(0)));
    }
    let summary = drain_serially(&store).await;
    assert_eq!(
        (summary.claimed, summary.completed),
        (10, 10),
        "{summary:?}"
    );

    // The buyer's GET view serves our purchases; the original's are the app's to list (404).
    let ours = &documents(&store, "transactions", doc! {"jobId": {"$exists": true}}).await[0];
    let buyer = ours.get_object_id("customerId").unwrap();
    let view = store
        .checkouts()
        .purchase_view(buyer, ours.get_object_id("_id").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        view.rewards,
        mall_store::testing::checkout::RewardsProgress::Completed
    );
    for job in &open {
        let purchase = job.get_object_id("checkoutTransactionId").unwrap();
        let buyer = job.get_object_id("customerId").unwrap();
        assert!(store
            .checkouts()
            .purchase_view(buyer, purchase)
            .await
            .unwrap()
            .is_none());
    }

    // Read back as the app's admin report reads it: $sum of amounts per type, in points.
    let ours = doc! {"$or": [
        {"rewardsStatus": {"$exists": true}, "type": "purchase"},
        {"relatedTransaction": {"$exists": true}},
    ]};
    let sums: Vec<Document> = store
        .database()
        .collection::<Document>("transactions")
        .aggregate(vec![
            doc! {"$match": ours},
            doc! {"$group": {"_id": "$type", "total": {"$sum": "$amount"}}},
        ])
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let reported = |kind: &str| {
        sums.iter()
            .find(|s| s.get_str("_id") == Ok(kind))
            .and_then(|s| s.get_f64("total").ok())
            .unwrap_or(0.0)
    };
    let purchases: Vec<Document> = documents(
        &store,
        "transactions",
        doc! {"type": "purchase", "rewardsStatus": {"$exists": true}},
    )
    .await;
    let rewards: i128 = purchases
        .iter()
        .filter(|p| p.get_str("rewardsStatus") == Ok("completed"))
        .map(|p| i128::from(amount(p, "rewardPointsEarned").as_milli()))
        .sum();
    let entries: f64 = [
        "tree_reward",
        "tree_reward_shared",
        "gifts_reward",
        "app_reward",
    ]
    .iter()
    .map(|kind| reported(kind))
    .sum();
    #[allow(clippy::cast_precision_loss)]
    let rewards_points = rewards as f64 / 1000.0;
    assert!(
        (entries - rewards_points).abs() < 1e-6,
        "{entries} vs {rewards_points}"
    );
    // The purchases: our ten checkouts are exactly what was paid, and the report's $sum over
    // every purchase we touched is what we read them as.
    let ours_paid: i128 = purchases
        .iter()
        .filter(|p| p.get_object_id("jobId").is_ok())
        .map(|p| i128::from(amount(p, "amount").as_milli()))
        .sum();
    assert_eq!(ours_paid, i128::from(paid.as_milli()));
    let read: i128 = purchases
        .iter()
        .map(|p| i128::from(amount(p, "amount").as_milli()))
        .sum();
    #[allow(clippy::cast_precision_loss)]
    let read_points = read as f64 / 1000.0;
    assert!((reported("purchase") - read_points).abs() < 1e-6);

    // An original worker still running (a job of its gone `processing` just now) blocks the
    // switch.
    let running = mall_testkit::seed::original_job_in_progress(&store).await;
    let check = store
        .operators()
        .cutover_check(DateTime::now(), QueueSettings::default().lease, true)
        .await
        .unwrap();
    assert!(!check.ready);
    assert!(
        check.blockers[0].contains("original worker is still running"),
        "{:?}",
        check.blockers
    );
    store
        .database()
        .collection::<Document>("checkoutjobs")
        .delete_one(doc! {"_id": running})
        .await
        .unwrap();

    // The audit passes; the original's own purchases and entries are counted as legacy.
    let audit = store.operators().audit().await.unwrap();
    assert!(audit.is_clean(), "{:#?}", audit.violations);
    assert_eq!(audit.legacy_purchases, 145);
    assert_eq!(audit.legacy_entries, 597 + 188 + 145 + 145);
}
