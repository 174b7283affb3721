//! Concurrent jobs give the result of some serial order of the same jobs, and a job that was
//! already applied is never applied again, whatever its document says.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::sync::Arc;

use mall_domain::RewardPolicy;
use mall_store::bson::doc;
use mall_store::testing::documents::JobStatus;
use mall_store::testing::queue::QueueSettings;
use reward_worker::drain::{DrainLimits, SystemClock};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_jobs_promoting_siblings_together_promote_their_parent() {
    for round in 0..3 {
        let mut world = World::new().await;
        world.seed_customers(&siblings(), "100").await;
        let product = world.product("10", "10").await;
        let policy = RewardPolicy::default();
        world.checkout(world.id("x1"), product, &policy).await;
        world.checkout(world.id("y1"), product, &policy).await;

        // Two workers at once, one job each.
        let other = world.other_worker().await;
        let limits = DrainLimits {
            concurrency: 1,
            max_jobs: 1,
            ..DrainLimits::default()
        };
        let (a, b) = tokio::join!(
            reward_worker::drain_queue(
                &world.store,
                QueueSettings::default(),
                limits,
                Arc::new(SystemClock)
            ),
            reward_worker::drain_queue(
                &other,
                QueueSettings::default(),
                limits,
                Arc::new(SystemClock)
            ),
        );
        assert_eq!(a.completed + b.completed, 2, "round {round}: {a:?} {b:?}");

        for (name, level) in [("X", "C"), ("Y", "C"), ("P", "D")] {
            assert_eq!(
                world
                    .customer(world.id(name))
                    .await
                    .level_letter
                    .to_string(),
                level,
                "round {round}: {name}"
            );
        }
    }
}

/// One drain of everything due, as the scheduled worker runs it.
async fn drain_all(world: &World) -> reward_worker::drain::DrainSummary {
    reward_worker::drain_queue(
        &world.store,
        QueueSettings::default(),
        DrainLimits::default(),
        Arc::new(SystemClock),
    )
    .await
}

#[tokio::test]
async fn a_completed_job_requeued_by_hand_is_recognised_as_applied_and_pays_nothing() {
    let mut world = World::new().await;
    world.seed_customers(&siblings(), "100").await;
    let product = world.product("10", "10").await;
    let receipt = world
        .checkout(world.id("x1"), product, &RewardPolicy::default())
        .await;
    let drained = drain_all(&world).await;
    assert_eq!(drained.completed, 1);
    let wallets = world.customers().await;
    let purchase = world.purchase(receipt.transaction_id).await;
    let entries = world.entries_of(receipt.transaction_id).await;

    // The original's runbook: "set status: pending" on the job.
    world
        .store
        .checkout_jobs()
        .update_one(
            doc! {"_id": receipt.job_id},
            doc! {"$set": {"status": "pending"}},
        )
        .await
        .unwrap();
    let again = drain_all(&world).await;
    assert_eq!((again.claimed, again.completed, again.failed), (1, 1, 0));
    assert_eq!(
        world.customers().await,
        wallets,
        "nobody paid or promoted again"
    );
    assert_eq!(world.entries_of(receipt.transaction_id).await, entries);
    assert_eq!(
        world.purchase(receipt.transaction_id).await,
        purchase,
        "the purchase untouched"
    );
    let job = world
        .store
        .queue()
        .job(receipt.job_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.status, JobStatus::Completed);

    // The same, for a job that had been paid on its last attempt: the claim takes it past its
    // attempts, and still it pays nothing and leaves the purchase as it was.
    world
        .store
        .checkout_jobs()
        .update_one(
            doc! {"_id": receipt.job_id},
            doc! {"$set": {"status": "pending", "attempts": 3}},
        )
        .await
        .unwrap();
    let last = drain_all(&world).await;
    assert_eq!((last.claimed, last.completed, last.failed), (1, 1, 0));
    assert_eq!(world.customers().await, wallets);
    assert_eq!(world.purchase(receipt.transaction_id).await, purchase);
}
