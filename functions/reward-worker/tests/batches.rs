//! Batches as the worker's drain runs them on the real test server: a batch pays exactly what
//! the same jobs pay one at a time in claim order, takes the same number of commands whatever
//! its chains' depth once their links are known, reads a parent changed since in its own
//! snapshot, lets one bad job fail alone, takes turns with other workers' batches instead of
//! losing its load to them, and is cut smaller (and the lane claims less) when its load runs
//! past the time budget. (A lost claim inside a batch, and claims never shared, are the store's:
//! `shared/store/tests/claims_and_fencing.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use futures_util::TryStreamExt;
use mall_domain::{MilliPoints, RewardPolicy};
use mall_store::bson::{doc, oid::ObjectId};
use mall_store::testing::documents::{JobStatus, RewardsStatus};
use mall_store::testing::failpoints::Failpoint;
use mall_store::testing::queue::QueueSettings;
use reward_worker::drain::{DrainLimits, DrainSummary, SystemClock};
use serde_json::{json, Value};
use support::*;

fn limits(batch_size: usize) -> DrainLimits {
    DrainLimits {
        concurrency: 1,
        batch_size,
        ..DrainLimits::default()
    }
}

async fn drain(world: &World, batch_size: usize) -> DrainSummary {
    reward_worker::drain_queue(
        &world.store,
        mall_testkit::db::untimed_settings(),
        limits(batch_size),
        Arc::new(SystemClock),
    )
    .await
}

/// Every customer by name: level and wallet.
async fn ledger(world: &World) -> BTreeMap<String, (String, MilliPoints)> {
    world
        .customers()
        .await
        .into_iter()
        .map(|c| (world.name_of(c.id), (c.level_letter.to_string(), c.points)))
        .collect()
}

/// Two worlds with the same forest and the same checkouts, in the same order.
async fn twin_worlds(buyers: &[usize]) -> (World, World) {
    let mut worlds = Vec::new();
    for _ in 0..2 {
        let mut world = World::new().await;
        world.seed_customers(&forest(60), "100").await;
        let product = world.product("10", "7.777").await;
        for &buyer in buyers {
            world
                .checkout(
                    world.id(&format!("c{buyer}")),
                    product,
                    &RewardPolicy::default(),
                )
                .await;
        }
        worlds.push(world);
    }
    let second = worlds.pop().unwrap();
    (worlds.pop().unwrap(), second)
}

/// A purchase's entries by recipient name, kind and amount.
async fn entry_amounts(world: &World, purchase: ObjectId) -> Vec<(String, String, MilliPoints)> {
    world
        .entries_of(purchase)
        .await
        .iter()
        .map(|e| {
            (
                world.name_of(e.customer_id),
                format!("{:?}", e.kind),
                e.amount,
            )
        })
        .collect()
}

#[tokio::test]
async fn a_batch_pays_and_promotes_exactly_as_the_same_jobs_one_at_a_time() {
    // Buyers deep and shallow, some twice, so the batch's jobs share ancestors and promote them.
    let buyers: Vec<usize> = (0..40).map(|k| 59 - (k * 7) % 57).collect();
    let (batched, serial) = twin_worlds(&buyers).await;
    let before = ledger(&serial).await;

    let one_at_a_time = drain(&serial, 1).await;
    assert_eq!(one_at_a_time.completed, 40, "{one_at_a_time:?}");
    let in_batches = drain(&batched, 40).await;
    assert_eq!(
        (in_batches.completed, in_batches.batches, in_batches.splits),
        (40, 1, 0),
        "{in_batches:?}"
    );

    let after = ledger(&serial).await;
    assert_ne!(before, after, "the jobs paid and promoted somebody");
    let promoted = before
        .iter()
        .filter(|(name, (level, _))| after[*name].0 != *level)
        .count();
    assert!(promoted >= 2, "promotions happened: {promoted}");
    assert_eq!(
        ledger(&batched).await,
        after,
        "every level and wallet to the milli-point"
    );
    // Each purchase's entries add up to its R, and are the same in both worlds.
    for (b, s) in batched
        .purchases_in_order()
        .await
        .into_iter()
        .zip(serial.purchases_in_order().await)
    {
        assert_conserved(&batched, b).await;
        let mut left = entry_amounts(&batched, b).await;
        let mut right = entry_amounts(&serial, s).await;
        left.sort_by_key(|e| format!("{e:?}"));
        right.sort_by_key(|e| format!("{e:?}"));
        assert_eq!(left, right);
    }
}

#[tokio::test]
async fn a_batch_takes_eleven_commands_whatever_its_size_and_the_depth_of_its_chains_once_they_are_known(
) {
    let mut counts = Vec::new();
    for depth in [5usize, 50, 500] {
        let mut world = World::new().await;
        // A line c0 → … → c{depth}; sixteen buyers under c0, who buy twice.
        let mut customers: Vec<Value> = (0..=depth)
            .map(|i| {
                let parent = if i < depth {
                    json!(format!("c{}", i + 1))
                } else {
                    Value::Null
                };
                json!({"id": format!("c{i}"), "parent": parent,
                       "level": (["A","B","C","D","J"][i % 5]), "active": true, "verified": true})
            })
            .collect();
        customers.extend((0..16).map(|k| {
            json!({"id": format!("b{k}"), "parent": "c0", "level": "A",
                   "active": true, "verified": true})
        }));
        world
            .seed_customers(&json!({ "customers": customers }), "100")
            .await;
        let product = world.product("10", "10").await;
        let mut per_batch = Vec::new();
        for round in 0..2 {
            let mut purchases = Vec::new();
            for k in 0..16 {
                let receipt = world
                    .checkout(
                        world.id(&format!("b{k}")),
                        product,
                        &RewardPolicy::default(),
                    )
                    .await;
                purchases.push(receipt.transaction_id);
            }
            world.commands.clear();
            let summary = drain(&world, 16).await;
            assert_eq!((summary.completed, summary.batches), (16, 1), "{summary:?}");
            let names = world.commands.names();
            // Cold, the chains' links are learned first, outside the transaction: the buyers
            // and fifteen levels above them a round trip (depth + 2 levels from a buyer to
            // the root). Then the claim (candidates, stamp, read back), the turn, the load, the
            // customers, the entries, the purchases, the jobs, the commit; then the claim that
            // finds nothing. Warm, the links are known: no round trip before the transaction.
            let learning = if round == 0 {
                (depth + 2).div_ceil(16)
            } else {
                0
            };
            assert_eq!(
                names.len(),
                learning + 3 + 7 + 1,
                "depth {depth}, round {round}: {names:?}"
            );
            assert_eq!(
                names.iter().filter(|n| n.as_str() == "aggregate").count(),
                learning + 1,
                "depth {depth}, round {round}: {names:?}"
            );
            per_batch.push(names.len() - 1);
            for purchase in purchases {
                assert_conserved(&world, purchase).await;
                let log = world.purchase(purchase).await.reward_log.unwrap();
                assert_eq!(
                    log.missing_parent, None,
                    "depth {depth}: the walk stopped short"
                );
            }
        }
        counts.push((depth, per_batch));
    }
    eprintln!("commands per batch of 16 by depth (cold, warm): {counts:?}");
}

#[tokio::test]
async fn one_job_that_cannot_be_paid_fails_alone_and_the_rest_of_its_batch_commits() {
    let mut world = World::new().await;
    world.seed_customers(&forest(30), "100").await;
    let product = world.product("10", "10").await;
    let receipts = world
        .checkout_each(&names(&[20, 21, 22, 23, 24, 25]), product)
        .await;
    // Job 1: its buyer is gone (permanent). Job 4: the server refuses its entries (a payout of
    // that kind to that customer for that purchase is already there), which only splitting the
    // batch can pin on it.
    world
        .store
        .customers()
        .delete_one(doc! {"_id": world.id("c21")})
        .await
        .unwrap();
    world
        .store
        .database()
        .collection::<mall_store::bson::Document>("transactions")
        .insert_one(
            doc! {"type": "app_reward", "relatedTransaction": receipts[4].transaction_id,
            "customerId": world.id("c24"), "amount": 0.0},
        )
        .await
        .unwrap();
    let before = world.total_wallets().await;

    let summary = drain(&world, 6).await;
    assert_eq!(
        (
            summary.claimed,
            summary.completed,
            summary.failed,
            summary.retried
        ),
        (6, 4, 1, 1),
        "{summary:?}"
    );
    assert!(summary.splits >= 1, "{summary:?}");
    let status = |i: usize| {
        let world = &world;
        let id = receipts[i].job_id;
        async move { world.store.queue().job(id).await.unwrap().unwrap() }
    };
    let gone = status(1).await;
    assert_eq!(gone.status, JobStatus::Failed);
    assert!(
        gone.errors[0].message.contains("does not exist"),
        "{:?}",
        gone.errors
    );
    let refused = status(4).await;
    assert_eq!(refused.status, JobStatus::Pending, "retried later");
    for i in [0, 2, 3, 5] {
        assert_eq!(status(i).await.status, JobStatus::Completed);
        assert_conserved(&world, receipts[i].transaction_id).await;
    }
    let purchase = world.purchase(receipts[4].transaction_id).await;
    assert_eq!(purchase.rewards_status, RewardsStatus::Processing);
    // Only the four completed jobs paid into wallets.
    let mut credited = 0i128;
    for i in [0, 2, 3, 5] {
        let log = world
            .purchase(receipts[i].transaction_id)
            .await
            .reward_log
            .unwrap();
        credited += log
            .payouts
            .iter()
            .map(|p| i128::from(p.amount.as_milli()))
            .sum::<i128>();
    }
    assert_eq!(world.total_wallets().await - before, credited);
}

#[tokio::test]
async fn two_jobs_promoting_siblings_in_one_batch_promote_their_parent() {
    let mut world = World::new().await;
    world.seed_customers(&siblings(), "100").await;
    let product = world.product("10", "10").await;
    world
        .checkout(world.id("x1"), product, &RewardPolicy::default())
        .await;
    world
        .checkout(world.id("y1"), product, &RewardPolicy::default())
        .await;
    let summary = drain(&world, 16).await;
    assert_eq!((summary.completed, summary.batches), (2, 1), "{summary:?}");
    for (name, level) in [("X", "C"), ("Y", "C"), ("P", "D")] {
        let customer = world.customer(world.id(name)).await;
        assert_eq!(customer.level_letter.to_string(), level, "{name}");
    }
}

#[tokio::test]
async fn a_parent_changed_after_its_link_was_learned_is_read_in_the_batchs_own_snapshot() {
    let mut world = World::new().await;
    // b under p0 under p1; q0 a root elsewhere.
    let customers = json!({"customers": [
        {"id": "p1", "parent": null, "level": "A", "active": true, "verified": true},
        {"id": "p0", "parent": "p1", "level": "A", "active": true, "verified": true},
        {"id": "q0", "parent": null, "level": "A", "active": true, "verified": true},
        {"id": "b", "parent": "p0", "level": "A", "active": true, "verified": true},
    ]});
    world.seed_customers(&customers, "100").await;
    let product = world.product("10", "10").await;
    world
        .checkout(world.id("b"), product, &RewardPolicy::default())
        .await;
    assert_eq!(drain(&world, 16).await.completed, 1);
    assert!(world.store.links().len() >= 3, "the links were learned");
    let (p0, q0) = (world.wallet("p0").await, world.wallet("q0").await);

    // The app moves b under q0 after this environment learned b → p0.
    world
        .store
        .customers()
        .update_one(
            doc! {"_id": world.id("b")},
            doc! {"$set": {"parentCustomer": world.id("q0")}},
        )
        .await
        .unwrap();
    let receipt = world
        .checkout(world.id("b"), product, &RewardPolicy::default())
        .await;
    world.commands.clear();
    assert_eq!(drain(&world, 16).await.completed, 1);
    let names = world.commands.names();
    // No learning before the transaction (b's link is known, if stale); in it, the load, then
    // one more read for q0, the parent the snapshot holds.
    assert_eq!(
        names.iter().filter(|n| n.as_str() == "aggregate").count(),
        2,
        "{names:?}"
    );
    assert_conserved(&world, receipt.transaction_id).await;
    assert_eq!(world.wallet("p0").await, p0, "the old parent is not paid");
    assert!(
        world.wallet("q0").await > q0,
        "the parent in the snapshot is paid"
    );
    let recipients: HashSet<ObjectId> = world
        .entries_of(receipt.transaction_id)
        .await
        .iter()
        .map(|e| e.customer_id)
        .collect();
    assert!(recipients.contains(&world.id("q0")));
    assert!(!recipients.contains(&world.id("p0")) && !recipients.contains(&world.id("p1")));
}

#[tokio::test]
async fn workers_whose_batches_credit_the_same_ancestors_take_turns_instead_of_losing_their_loads()
{
    let mut world = World::new().await;
    // Every buyer's chain meets the same few ancestors near the top.
    world.seed_customers(&forest(60), "100").await;
    let product = world.product("10", "10").await;
    let buyers: Vec<String> = (20..60).map(|i| format!("c{i}")).collect();
    let receipts = world.checkout_each(&buyers, product).await;
    let customers = world
        .store
        .database()
        .collection::<mall_store::bson::Document>("customers");
    let before: Vec<mall_store::bson::Document> = customers
        .find(doc! {})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();

    let mut lanes = tokio::task::JoinSet::new();
    for _ in 0..3 {
        let store = world.other_worker().await;
        lanes.spawn(async move {
            reward_worker::drain_queue(
                &store,
                mall_testkit::db::untimed_settings(),
                limits(4),
                Arc::new(SystemClock),
            )
            .await
        });
    }
    let mut total = DrainSummary::default();
    while let Some(summary) = lanes.join_next().await {
        total.absorb(&summary.unwrap());
    }
    assert_eq!(total.completed, 40, "{total:?}");
    // A batch beside another waits at its first write, before loading: none loads, plans and
    // then loses on a customer both credit, and none is split for it.
    assert_eq!((total.conflicts, total.splits), (0, 0), "{total:?}");
    for receipt in receipts {
        assert_conserved(&world, receipt.transaction_id).await;
    }
    // The jobs' `completedAt` follow their commits: the pure rules replayed in that order give
    // every wallet and level to the milli-point.
    let mut replay = mall_testkit::replay::Replay::of(&before, MilliPoints::ZERO);
    let jobs: Vec<mall_store::testing::documents::CheckoutJobDoc> = world
        .store
        .checkout_jobs()
        .find(doc! {"status": "completed"})
        .sort(doc! {"completedAt": 1, "runAfter": 1, "_id": 1})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(jobs.len(), 40);
    for job in &jobs {
        let terms = mall_domain::JobTerms::Split(job.payload.paying_policy().unwrap());
        replay.pay(job.customer_id, job.payload.reward_points, &terms);
    }
    for customer in world.customers().await {
        assert_eq!(
            Some(&customer.points),
            replay.wallets.get(&customer.id),
            "{}",
            world.name_of(customer.id)
        );
    }
}

#[tokio::test]
async fn a_batch_whose_load_runs_past_its_time_budget_is_cut_smaller_and_every_job_is_paid_once() {
    let mut world = World::new().await;
    world.seed_customers(&forest(40), "100").await;
    let product = world.product("10", "10").await;
    let buyers: Vec<String> = (16..40).map(|i| format!("c{i}")).collect();
    let receipts = world.checkout_each(&buyers, product).await;
    let total_before = world.total_wallets().await;

    // Each job adds 40 ms to its batch's load; the budget allows five jobs' worth.
    let settings = QueueSettings {
        batch_time_budget: std::time::Duration::from_millis(200),
        ..QueueSettings::default()
    };
    world.store.failpoints().arm(Failpoint::JobSlowLoad);
    let summary =
        reward_worker::drain_queue(&world.store, settings, limits(16), Arc::new(SystemClock)).await;
    world.store.failpoints().disarm(Failpoint::JobSlowLoad);

    assert_eq!(summary.completed, 24, "{summary:?}");
    assert_eq!((summary.lost_lease, summary.retried), (0, 0), "{summary:?}");
    // 16 jobs (640 ms) are cut to 8 (320 ms), each cut to 4 (160 ms): three cuts; the lane then
    // claims 8 for the other 8 jobs, cut once more.
    assert!(summary.cuts >= 4, "{summary:?}");
    assert_eq!(
        summary.batches, 2,
        "two claims: 16, then half as many: {summary:?}"
    );
    for receipt in &receipts {
        assert_conserved(&world, receipt.transaction_id).await;
        assert_eq!(
            world.purchase(receipt.transaction_id).await.rewards_status,
            RewardsStatus::Completed
        );
    }
    assert!(world.total_wallets().await > total_before);
    // A second drain finds nothing: every job was paid once.
    assert_eq!(drain(&world, 16).await.claimed, 0);
}
