//! One drainer at a time, through the worker's handler on the real test server: an invocation
//! that finds another draining returns after one command and touches no job; a lease that ran
//! out is taken over; a job queued while the drainer gives its lease back is drained by it, not
//! left to the next schedule tick.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use mall_domain::RewardPolicy;
use mall_store::bson::{doc, DateTime, Document};
use mall_store::testing::collections;
use mall_store::testing::drainer::DRAINER_ID;
use mall_testkit::db::test_mongodb_uri;
use reward_worker::drain::StopReason;
use serde_json::{json, Value};
use support::*;

async fn small_world() -> (World, mall_store::bson::oid::ObjectId) {
    let mut world = World::new().await;
    world.seed_customers(&buyer_under_root(), "100").await;
    let product = world.product("10", "10").await;
    (world, product)
}

fn config(world: &World) -> reward_worker::WorkerConfig {
    reward_worker::WorkerConfig::read(&mall_runtime::Env::from_lookup(|name| match name {
        "MONGODB_URI" => Some(test_mongodb_uri()),
        "MONGODB_DATABASE" => Some(world.database.clone()),
        _ => None,
    }))
    .unwrap()
}

fn invocation(request_id: &str) -> lambda_runtime::LambdaEvent<Value> {
    let mut context = lambda_runtime::Context::default();
    context.request_id = request_id.to_owned();
    context.deadline = u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
        + 60_000;
    lambda_runtime::LambdaEvent::new(json!({"detail-type": "CheckoutJobQueued"}), context)
}

async fn jobs_with(world: &World, status: &str) -> u64 {
    world
        .store
        .checkout_jobs()
        .count_documents(doc! {"status": status})
        .await
        .unwrap()
}

async fn lease(world: &World) -> Document {
    world
        .store
        .database()
        .collection::<Document>(collections::REWARD_TURNS)
        .find_one(doc! {"_id": DRAINER_ID})
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn an_invocation_that_finds_another_draining_returns_at_once_and_leaves_the_queue_to_it() {
    let (world, product) = small_world().await;
    for _ in 0..3 {
        world
            .checkout(world.id("buyer"), product, &RewardPolicy::default())
            .await;
    }
    let now = DateTime::now();
    assert!(world
        .store
        .queue()
        .take_drainer_lease("the-other-invocation", now, None)
        .await
        .unwrap());
    let config = config(&world);

    world.commands.clear();
    let summary = reward_worker::handle(&world.store, &config, invocation("late"), &|| {})
        .await
        .unwrap();
    assert_eq!(summary.stopped, Some(StopReason::AnotherDrainer));
    assert_eq!(summary.claimed, 0, "{summary:?}");
    // It cost one command: the lease it could not take (the drainer reports the queue's
    // health).
    assert_eq!(world.commands.names(), ["update"]);
    assert_eq!(jobs_with(&world, "pending").await, 3);
    assert_eq!(
        lease(&world).await.get_str("holder").unwrap(),
        "the-other-invocation"
    );

    // The other invocation died: once its lease runs out, the next invocation drains.
    world
        .store
        .database()
        .collection::<Document>(collections::REWARD_TURNS)
        .update_one(doc! {"_id": DRAINER_ID}, doc! {"$set": {"until": now}})
        .await
        .unwrap();
    let summary = reward_worker::handle(&world.store, &config, invocation("next"), &|| {})
        .await
        .unwrap();
    assert_eq!(
        (summary.completed, summary.stopped),
        (3, Some(StopReason::Empty))
    );
    assert_eq!(jobs_with(&world, "completed").await, 3);
    // It gave the lease back: an invocation right after it may drain.
    let given_back = lease(&world).await;
    assert_eq!(given_back.get_str("holder").unwrap(), "next");
    assert!(given_back.get_datetime("until").unwrap() <= &DateTime::now());
    assert!(world
        .store
        .queue()
        .take_drainer_lease("after", DateTime::now(), None)
        .await
        .unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_queued_as_the_drainer_finds_the_queue_empty_is_drained_by_it() {
    let (world, product) = small_world().await;
    let config = config(&world);
    // After the drainer's first part has found the queue empty and before it gives its lease
    // back, a checkout commits; its own wake-up would find the lease held and return.
    let queued = AtomicBool::new(false);
    let flush = || {
        if !queued.swap(true, Ordering::SeqCst) {
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    world
                        .checkout(world.id("buyer"), product, &RewardPolicy::default())
                        .await;
                    let woken =
                        reward_worker::handle(&world.store, &config, invocation("woken"), &|| {})
                            .await
                            .unwrap();
                    assert_eq!(woken.stopped, Some(StopReason::AnotherDrainer));
                })
            });
        }
    };
    let summary = reward_worker::handle(&world.store, &config, invocation("drainer"), &flush)
        .await
        .unwrap();
    assert!(queued.load(Ordering::SeqCst));
    assert_eq!((summary.claimed, summary.completed), (1, 1), "{summary:?}");
    assert_eq!(summary.stopped, Some(StopReason::Empty));
    assert_eq!(jobs_with(&world, "completed").await, 1);
}
