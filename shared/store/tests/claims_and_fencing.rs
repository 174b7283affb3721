//! The store's queue and batches on the real test server, below the worker's drain: atomic
//! claims that never share a job, fencing of a claim another worker took over (a stale worker
//! can neither complete nor fail it; the rest of its batch commits), and the commands a job
//! costs at depths 5, 50 and 500 once its chain's links are known.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::collections::HashSet;

use mall_domain::{MilliPoints, RewardPolicy};
use mall_store::bson::{doc, oid::ObjectId, DateTime};
use mall_store::testing::documents::{JobStatus, RewardsStatus};
use mall_store::testing::queue::{Claim, QueueSettings};
use mall_store::JobOutcome;
use mall_testkit::world::*;
use serde_json::{json, Value};

fn points(text: &str) -> MilliPoints {
    text.parse().unwrap()
}

fn settings() -> QueueSettings {
    mall_testkit::db::untimed_settings()
}

#[tokio::test]
async fn commands_per_job_do_not_grow_with_the_depth_of_the_chain() {
    let mut counts = Vec::new();
    for depth in [5usize, 50, 500] {
        let mut world = World::new().await;
        // A line: c0 (buyer) → c1 → … → c{depth}, each with one extra direct at B.
        let mut customers: Vec<Value> = (0..=depth)
            .map(|i| {
                let parent = if i < depth { json!(format!("c{}", i + 1)) } else { Value::Null };
                json!({"id": format!("c{i}"), "parent": parent, "level": (["A","B","C","D","J"][i % 5]),
                       "active": i % 7 != 3, "verified": true})
            })
            .collect();
        customers.extend((1..=depth).map(|i| {
            json!({"id": format!("x{i}"), "parent": format!("c{i}"), "level": "B",
                   "active": true, "verified": true})
        }));
        world
            .seed_customers(&json!({"customers": customers}), "100")
            .await;
        let product = world.product("10", "10").await;
        let receipt = world
            .checkout(world.id("c0"), product, &RewardPolicy::default())
            .await;

        world.commands.clear();
        let claimed = world
            .store
            .queue()
            .claim_next(mall_store::bson::DateTime::now(), settings().lease)
            .await
            .unwrap()
            .and_then(mall_store::testing::queue::Claim::readable)
            .unwrap();
        let outcome = world
            .store
            .rewards()
            .process_claimed(&claimed, mall_store::bson::DateTime::now(), &settings())
            .await
            .unwrap();
        assert_eq!(outcome, JobOutcome::Completed, "depth {depth}");
        let names = world.commands.names();
        // This fresh environment first learns the chain's links, fifteen levels above the
        // customers it asks for a round trip, outside the transaction; the rest is the same
        // at every depth.
        let learning = world.commands.learning();
        assert_eq!(
            learning,
            (depth + 1).div_ceil(16),
            "depth {depth}: {names:?}"
        );
        assert!(names.len() - learning <= 11, "depth {depth}: {names:?}");
        counts.push((depth, names.len() - learning));
        assert_conserved(&world, receipt.transaction_id).await;
        // The whole chain was walked, to its root c{depth}: not cut short by the server.
        let purchase = world.purchase(receipt.transaction_id).await;
        let log = purchase.reward_log.unwrap();
        assert_eq!(
            log.missing_parent, None,
            "depth {depth}: the walk stopped short"
        );
    }
    assert!(
        counts.iter().all(|(_, n)| *n == counts[0].1),
        "the same number of commands at every depth, once the links are known: {counts:?}"
    );
    eprintln!("commands per job by depth (besides learning links): {counts:?}");
}

#[tokio::test]
async fn a_stale_worker_cannot_complete_or_fail_a_job_it_lost() {
    let (world, receipt) = spec_world().await;
    let now = mall_store::bson::DateTime::now();
    let stale = world
        .store
        .queue()
        .claim_next(now, settings().lease)
        .await
        .unwrap()
        .and_then(mall_store::testing::queue::Claim::readable)
        .unwrap();
    // Just past the lease: the job is claimable again.
    let later = DateTime::from_millis(
        now.timestamp_millis() + i64::try_from(settings().lease.as_millis()).unwrap() + 1_000,
    );
    let other = world.other_worker().await;
    let fresh = other
        .queue()
        .claim_next(later, settings().lease)
        .await
        .unwrap()
        .and_then(mall_store::testing::queue::Claim::readable)
        .unwrap();
    assert_eq!(fresh.job.id, stale.job.id);
    assert_ne!(fresh.token, stale.token);

    // The stale worker's late completion and late failure are both refused by the fence.
    let outcome = world
        .store
        .rewards()
        .process_claimed(&stale, now, &settings())
        .await
        .unwrap();
    assert_eq!(outcome, JobOutcome::LostLease);
    let failure = mall_store::testing::queue::Attempt::Retryable("late".into());
    let late = world
        .store
        .queue()
        .settle(&stale, failure, now, &settings())
        .await
        .unwrap();
    assert_eq!(late, JobOutcome::LostLease);
    assert!(world.entries_of(receipt.transaction_id).await.is_empty());
    let job = world
        .store
        .queue()
        .job(receipt.job_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.claim_token, Some(fresh.token));
    assert!(job.errors.is_empty());

    // The owner completes it, once.
    let outcome = other
        .rewards()
        .process_claimed(&fresh, now, &settings())
        .await
        .unwrap();
    assert_eq!(outcome, JobOutcome::Completed);
    assert_conserved(&world, receipt.transaction_id).await;
    assert_eq!(world.wallet("u1").await, points("1001.75"));
}

#[tokio::test]
async fn a_job_whose_claim_was_lost_is_left_to_its_new_owner_and_the_rest_commit() {
    let mut world = World::new().await;
    world.seed_customers(&forest(20), "100").await;
    let product = world.product("10", "10").await;
    world
        .checkout_each(&names(&[10, 11, 12, 13]), product)
        .await;
    let settings = QueueSettings::default();
    let claimed: Vec<_> = world
        .store
        .queue()
        .claim_batch(DateTime::now(), settings.lease, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.readable().unwrap())
        .collect();
    assert_eq!(claimed.len(), 4);
    assert!(claimed.iter().all(|c| c.token == claimed[0].token));
    // Another worker took job 2 over (its lease had run out, say).
    let lost = claimed[2].job.id;
    world
        .store
        .checkout_jobs()
        .update_one(
            doc! {"_id": lost},
            doc! {"$set": {"claimToken": ObjectId::new()}},
        )
        .await
        .unwrap();

    let report = world
        .store
        .rewards()
        .process_batch(&claimed, DateTime::now(), &settings)
        .await
        .unwrap();
    let expected: Vec<JobOutcome> = claimed
        .iter()
        .map(|c| {
            if c.job.id == lost {
                JobOutcome::LostLease
            } else {
                JobOutcome::Completed
            }
        })
        .collect();
    assert_eq!(report.outcomes, expected);
    let purchase = claimed[2].job.checkout_transaction_id;
    let untouched = world.purchase(purchase).await;
    assert_eq!(untouched.rewards_status, RewardsStatus::Processing);
    assert!(
        world.entries_of(purchase).await.is_empty(),
        "nothing paid for the lost job"
    );
    let job = world.store.queue().job(lost).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Processing, "its new owner's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_claiming_batches_at_once_never_share_a_job() {
    let mut world = World::new().await;
    world.seed_customers(&forest(10), "1000").await;
    let product = world.product("1", "1").await;
    let mut jobs = HashSet::new();
    for round in 0..30 {
        let receipt = world
            .checkout(
                world.id(&format!("c{}", round % 10)),
                product,
                &RewardPolicy::default(),
            )
            .await;
        jobs.insert(receipt.job_id);
    }
    let others = [world.other_worker().await, world.other_worker().await];
    let lease = QueueSettings::default().lease;
    let claim = |store: &mall_store::Store| {
        let store = store.clone();
        async move {
            store
                .queue()
                .claim_batch(DateTime::now(), lease, 16)
                .await
                .unwrap()
        }
    };
    let (a, b, c) = tokio::join!(claim(&world.store), claim(&others[0]), claim(&others[1]));
    let mut seen = HashSet::new();
    for claim in a.into_iter().chain(b).chain(c) {
        let Claim::Job(job) = claim else {
            panic!("every job is readable")
        };
        assert_eq!(job.attempt(), 1);
        assert!(seen.insert(job.job.id), "{} claimed twice", job.job.id);
    }
    assert_eq!(
        seen, jobs,
        "thirty jobs, three workers of sixteen: all claimed, once"
    );
}
