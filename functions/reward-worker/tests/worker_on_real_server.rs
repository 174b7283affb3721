//! The worker's drain against the real test server, through jobs that the real checkout
//! transaction created: the SPEC §9 scenario end to end, conservation over random trees,
//! concurrent workers, crashes at every step, retries, dead jobs, contention, the deadline, and
//! every trigger through the Lambda handler. (Claims, fencing and the commands a job costs are
//! the store's: `shared/store/tests/claims_and_fencing.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mall_domain::scenario::Scenario;
use mall_domain::{MilliPoints, RewardPolicy};
use mall_store::bson::{doc, oid::ObjectId};
use mall_store::testing::documents::{JobErrorKind, JobStatus, RewardsStatus, TransactionType};
use mall_store::testing::failpoints::Failpoint;
use mall_store::testing::queue::QueueSettings;
use mall_store::JobOutcome;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use reward_worker::drain::{DrainLimits, OffsetClock, StopReason, SystemClock};
use serde_json::{json, Value};
use support::*;

fn points(text: &str) -> MilliPoints {
    text.parse().unwrap()
}

fn settings() -> QueueSettings {
    mall_testkit::db::untimed_settings()
}

fn limits() -> DrainLimits {
    DrainLimits::default()
}

/// A clock standing just past every lease taken now.
fn after_the_lease() -> Arc<OffsetClock> {
    Arc::new(OffsetClock(settings().lease + Duration::from_secs(1)))
}

#[tokio::test]
async fn the_spec_scenario_pays_promotes_and_logs_exactly_as_the_simulator_says() {
    let (world, receipt) = spec_world().await;
    let summary =
        reward_worker::drain_queue(&world.store, settings(), limits(), Arc::new(SystemClock)).await;
    assert_eq!((summary.claimed, summary.completed), (1, 1));

    // Wallets: the buyer paid 400; u1 and u5 got a level bucket, u3 and u4 half of the J bucket.
    assert_eq!(world.wallet("u0").await, points("600"));
    assert_eq!(world.wallet("u1").await, points("1001.75"));
    assert_eq!(world.wallet("u5").await, points("1001.75"));
    assert_eq!(world.wallet("u3").await, points("1000.875"));
    assert_eq!(world.wallet("u4").await, points("1000.875"));
    for unpaid in ["u2", "u6", "u7"] {
        assert_eq!(world.wallet(unpaid).await, points("1000"), "{unpaid}");
    }
    // u1 was promoted B → D; nobody else changed level.
    assert_eq!(
        world
            .customer(world.id("u1"))
            .await
            .level_letter
            .to_string(),
        "D"
    );
    assert_eq!(
        world
            .customer(world.id("u0"))
            .await
            .level_letter
            .to_string(),
        "A"
    );

    // The entries, as the simulator reports them.
    let expected: Value = serde_json::from_str(include_str!(
        "../../../infra/scenarios/spec-section-9.expected.json"
    ))
    .unwrap();
    let entries = world.entries_of(receipt.transaction_id).await;
    let name_of = |id: ObjectId| world.name_of(id);
    let customer_entries: Vec<Value> = entries
        .iter()
        .filter(|e| e.credits_a_wallet())
        .map(|e| {
            let mut v = json!({
                "id": name_of(e.customer_id),
                "level": e.level.unwrap().to_string(),
                "kind": if e.kind == TransactionType::TreeReward { "level" } else { "shared" },
                "amount": e.amount.to_string(),
            });
            if let Some(n) = e.shared_with {
                v["sharedWith"] = json!(n);
            }
            v
        })
        .collect();
    assert_eq!(Value::from(customer_entries), expected["payouts"]);
    let pool = |kind| {
        entries
            .iter()
            .find(|e| e.kind == kind)
            .unwrap()
            .amount
            .to_string()
    };
    assert_eq!(
        json!(pool(TransactionType::GiftsReward)),
        expected["giftsFinal"]
    );
    assert_eq!(
        json!(pool(TransactionType::AppReward)),
        expected["appFinal"]
    );

    // The purchase's log and status; the job is done and will expire.
    let purchase = world.purchase(receipt.transaction_id).await;
    assert_eq!(purchase.rewards_status, RewardsStatus::Completed);
    let log = purchase.reward_log.clone().unwrap();
    assert_eq!(
        json!(log.tree_distributed.to_string()),
        expected["treeDistributed"]
    );
    assert_eq!(json!(log.tree_unused.to_string()), expected["treeUnused"]);
    assert_eq!(log.skipped.len(), 1);
    assert_eq!(log.skipped[0].customer_id, world.id("u2"));
    assert_eq!(log.promotions.len(), 1);
    assert_eq!(purchase.gifts_points_share, points("44.75"));
    assert_conserved(&world, receipt.transaction_id).await;

    let job = world
        .store
        .queue()
        .job(receipt.job_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.status, JobStatus::Completed);
    assert_eq!(job.attempts, 1);
    assert!(job.claim_token.is_none() && job.lease_until.is_none());
    // Kept for good by default: the app's jobs dashboard shows a customer's history.
    assert!(job.expires_at.is_none() && job.completed_at.is_some());

    // Draining again pays nothing more.
    let before = world.customers().await;
    let again =
        reward_worker::drain_queue(&world.store, settings(), limits(), after_the_lease()).await;
    assert_eq!(again.claimed, 0);
    assert_eq!(world.customers().await, before);
}

#[tokio::test]
async fn a_worker_that_dies_at_any_step_leaves_the_job_to_another_and_nothing_doubles() {
    for failpoint in [
        Failpoint::JobAfterChainLoaded,
        Failpoint::JobAfterCredits,
        Failpoint::JobAfterEntries,
        Failpoint::JobBeforeCompletion,
        Failpoint::JobBeforeCommit,
    ] {
        let (world, receipt) = spec_world().await;
        let before = world.total_wallets().await;

        world.store.failpoints().arm(failpoint);
        let crashed =
            reward_worker::drain_queue(&world.store, settings(), limits(), Arc::new(SystemClock))
                .await;
        assert_eq!(crashed.abandoned, 1, "{failpoint:?}");
        world.store.failpoints().disarm(failpoint);
        // Nothing of the dead attempt is visible, and the job is not claimable before its lease ends.
        assert_eq!(world.total_wallets().await, before, "{failpoint:?}");
        assert!(
            world.entries_of(receipt.transaction_id).await.is_empty(),
            "{failpoint:?}"
        );
        let too_early = reward_worker::drain_queue(
            &world.other_worker().await,
            settings(),
            limits(),
            Arc::new(SystemClock),
        )
        .await;
        assert_eq!(too_early.claimed, 0, "{failpoint:?}");

        // Another worker, after the lease: it finishes the job, once.
        let other = world.other_worker().await;
        let finished =
            reward_worker::drain_queue(&other, settings(), limits(), after_the_lease()).await;
        assert_eq!(finished.completed, 1, "{failpoint:?}");
        assert_conserved(&world, receipt.transaction_id).await;
        assert_eq!(
            world.wallet("u1").await,
            points("1001.75"),
            "{failpoint:?}: paid once"
        );
        let job = world
            .store
            .queue()
            .job(receipt.job_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (job.status, job.attempts),
            (JobStatus::Completed, 2),
            "{failpoint:?}"
        );
    }
}

#[tokio::test]
async fn a_retryable_failure_backs_off_then_dies_after_max_attempts() {
    let (world, receipt) = spec_world().await;
    // An injected failure that a later attempt could get past (as a database error would).
    world.store.failpoints().arm(Failpoint::JobRetryableFailure);
    let started = mall_store::bson::DateTime::now();
    let first =
        reward_worker::drain_queue(&world.store, settings(), limits(), Arc::new(SystemClock)).await;
    assert_eq!((first.claimed, first.retried), (1, 1));
    let job = world
        .store
        .queue()
        .job(receipt.job_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.status, JobStatus::Pending);
    let delay = job.run_after.unwrap().timestamp_millis() - started.timestamp_millis();
    assert!(
        (15_000..=31_000).contains(&delay),
        "first backoff {delay} ms, base 30 s with jitter"
    );
    assert_eq!(job.errors.len(), 1);
    assert_eq!(
        (job.errors[0].attempt, job.errors[0].kind),
        (1, JobErrorKind::Retryable)
    );

    // Not due yet: nothing to claim now.
    assert_eq!(
        reward_worker::drain_queue(&world.store, settings(), limits(), Arc::new(SystemClock))
            .await
            .claimed,
        0
    );

    // An hour later it runs again and fails again; then a third and last time.
    let hour = Arc::new(OffsetClock(Duration::from_secs(3600)));
    let second = reward_worker::drain_queue(&world.store, settings(), limits(), hour).await;
    assert_eq!(second.retried, 1);
    let two_hours = Arc::new(OffsetClock(Duration::from_secs(7200)));
    let third = reward_worker::drain_queue(&world.store, settings(), limits(), two_hours).await;
    assert_eq!(third.failed, 1);

    let job = world
        .store
        .queue()
        .job(receipt.job_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((job.status, job.attempts), (JobStatus::Failed, 3));
    assert!(job.failed_at.is_some());
    let attempts: Vec<i32> = job.errors.iter().map(|e| e.attempt).collect();
    assert_eq!(attempts, [1, 2, 3], "every attempt's error is kept");
    let purchase = world.purchase(receipt.transaction_id).await;
    assert_eq!(purchase.rewards_status, RewardsStatus::Failed);
    assert!(
        world.entries_of(receipt.transaction_id).await.is_empty(),
        "nothing paid"
    );
}

#[tokio::test]
async fn permanent_errors_fail_at_once_and_pay_nothing() {
    // A missing buyer.
    let (world, receipt) = spec_world().await;
    world
        .store
        .customers()
        .delete_one(doc! {"_id": world.id("u0")})
        .await
        .unwrap();
    let summary =
        reward_worker::drain_queue(&world.store, settings(), limits(), Arc::new(SystemClock)).await;
    assert_eq!(summary.failed, 1);
    let job = world
        .store
        .queue()
        .job(receipt.job_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((job.status, job.attempts), (JobStatus::Failed, 1));
    assert_eq!(job.errors[0].kind, JobErrorKind::Permanent);
    assert!(
        job.errors[0].message.contains("does not exist"),
        "{}",
        job.errors[0].message
    );
    assert!(world.entries_of(receipt.transaction_id).await.is_empty());

    // A cycle in the tree.
    let (world, receipt) = spec_world().await;
    let before = world.total_wallets().await;
    world
        .store
        .customers()
        .update_one(
            doc! {"_id": world.id("u5")},
            doc! {"$set": {"parentCustomer": world.id("u1")}},
        )
        .await
        .unwrap();
    let summary =
        reward_worker::drain_queue(&world.store, settings(), limits(), Arc::new(SystemClock)).await;
    assert_eq!(summary.failed, 1);
    let job = world
        .store
        .queue()
        .job(receipt.job_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((job.status, job.attempts), (JobStatus::Failed, 1));
    assert!(
        job.errors[0].message.contains("cycle"),
        "{}",
        job.errors[0].message
    );
    assert_eq!(world.total_wallets().await, before, "nothing paid");
    assert_eq!(
        world
            .customer(world.id("u1"))
            .await
            .level_letter
            .to_string(),
        "B",
        "nobody promoted"
    );
    let purchase = world.purchase(receipt.transaction_id).await;
    assert_eq!(purchase.rewards_status, RewardsStatus::Failed);
}

#[tokio::test]
async fn a_job_document_nobody_can_read_is_failed_by_name_and_the_drain_goes_on() {
    let (world, receipt) = spec_world().await;
    let jobs = world
        .store
        .database()
        .collection::<mall_store::bson::Document>("checkoutjobs");
    // Older than the real job, so it is claimed first: a payload that is not a payload.
    let garbage = ObjectId::from_bytes([0; 12]);
    jobs.insert_one(doc! {
        "_id": garbage, "checkoutTransactionId": ObjectId::new(), "customerId": ObjectId::new(),
        "status": "pending", "attempts": 0, "maxAttempts": 3,
        "createdAt": mall_store::bson::DateTime::now(), "payload": "100 points",
    })
    .await
    .unwrap();

    let summary =
        reward_worker::drain_queue(&world.store, settings(), limits(), Arc::new(SystemClock)).await;
    assert_eq!(
        (summary.claimed, summary.completed, summary.failed),
        (2, 1, 1)
    );
    assert_eq!(summary.stopped, Some(StopReason::Empty));
    let failed = jobs.find_one(doc! {"_id": garbage}).await.unwrap().unwrap();
    assert_eq!(failed.get_str("status"), Ok("failed"));
    assert!(!failed.contains_key("claimToken") && !failed.contains_key("leaseUntil"));
    let message = failed
        .get_document("error")
        .unwrap()
        .get_str("message")
        .unwrap();
    // Named down to the field.
    assert!(
        message.starts_with("the job document cannot be read: payload: invalid type: string"),
        "{message}"
    );
    let job = world
        .store
        .queue()
        .job(receipt.job_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.status, JobStatus::Completed);
}

#[tokio::test]
async fn an_ancestor_wallet_that_cannot_be_read_fails_the_job_by_name_and_pays_nobody() {
    let (world, receipt) = spec_world().await;
    let before = world.total_wallets().await;
    world
        .store
        .database()
        .collection::<mall_store::bson::Document>("customers")
        .update_one(
            doc! {"_id": world.id("u5")},
            doc! {"$set": {"points": "1000"}},
        )
        .await
        .unwrap();
    let summary =
        reward_worker::drain_queue(&world.store, settings(), limits(), Arc::new(SystemClock)).await;
    assert_eq!(summary.failed, 1);
    let job = world
        .store
        .queue()
        .job(receipt.job_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.errors[0].kind, JobErrorKind::Permanent);
    let message = &job.errors[0].message;
    assert!(
        message.contains(&world.id("u5").to_hex()) && message.contains("string"),
        "{message}"
    );
    assert_eq!(job.error.unwrap().message, *message);
    // u5's wallet is unreadable now; everybody else's is untouched.
    world
        .store
        .database()
        .collection::<mall_store::bson::Document>("customers")
        .update_one(
            doc! {"_id": world.id("u5")},
            doc! {"$set": {"points": 1000}},
        )
        .await
        .unwrap();
    assert_eq!(world.total_wallets().await, before);
}

#[tokio::test]
async fn wallets_are_written_as_exact_points_and_the_app_reads_them() {
    // Wallets as the app left them: an Int32 and a Double with float noise.
    let (world, _) = spec_world().await;
    let customers = world
        .store
        .database()
        .collection::<mall_store::bson::Document>("customers");
    customers
        .update_one(
            doc! {"_id": world.id("u1")},
            doc! {"$set": {"points": 5000_i32}},
        )
        .await
        .unwrap();
    customers
        .update_one(
            doc! {"_id": world.id("u5")},
            doc! {"$set": {"points": 4239.149999999997_f64}},
        )
        .await
        .unwrap();
    reward_worker::drain_queue(&world.store, settings(), limits(), Arc::new(SystemClock)).await;
    // u1 was paid 1.75 for D and u5 1.75 for B (SPEC §9): exact Doubles of the new balances.
    for (name, expected) in [("u1", 5001.75), ("u5", 4240.9)] {
        let stored = customers
            .find_one(doc! {"_id": world.id(name)})
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            stored.get("points"),
            Some(&mall_store::bson::Bson::Double(expected)),
            "{name}"
        );
    }
}

#[tokio::test]
async fn the_drain_stops_before_the_deadline_margin() {
    let (world, receipt) = spec_world().await;
    let tight = DrainLimits {
        deadline: Some(Instant::now() + Duration::from_secs(2)),
        margin: Duration::from_secs(5),
        ..limits()
    };
    let summary =
        reward_worker::drain_queue(&world.store, settings(), tight, Arc::new(SystemClock)).await;
    assert_eq!(summary.claimed, 0);
    assert_eq!(summary.stopped, Some(StopReason::Deadline));
    assert_eq!(
        world
            .store
            .queue()
            .job(receipt.job_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        JobStatus::Pending
    );

    let capped = DrainLimits {
        max_jobs: 0,
        ..limits()
    };
    assert_eq!(
        reward_worker::drain_queue(&world.store, settings(), capped, Arc::new(SystemClock))
            .await
            .stopped,
        Some(StopReason::Cap)
    );
}

#[tokio::test]
async fn four_workers_draining_a_hundred_jobs_apply_each_exactly_once() {
    let mut world = World::new().await;
    // A tree of 40 customers where every buyer has a long, shared chain: maximal contention.
    let customers: Vec<Value> = (0..40)
        .map(|i| {
            let parent = if i < 39 {
                json!(format!("c{}", i + 1))
            } else {
                Value::Null
            };
            json!({"id": format!("c{i}"), "parent": parent, "level": (["A","B","C","J"][i % 4]),
                   "active": true, "verified": i % 5 != 0})
        })
        .collect();
    world
        .seed_customers(&json!({"customers": customers}), "100000")
        .await;
    let product = world.product("10", "7.777").await;
    let before = world.total_wallets().await;
    let mut receipts = vec![];
    for i in 0..100 {
        let buyer = world.id(&format!("c{}", i % 30));
        receipts.push(
            world
                .checkout(buyer, product, &RewardPolicy::default())
                .await,
        );
    }

    let mut drains = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let store = world.other_worker().await;
        drains.spawn(async move {
            reward_worker::drain_queue(
                &store,
                settings(),
                DrainLimits {
                    concurrency: 2,
                    ..limits()
                },
                Arc::new(SystemClock),
            )
            .await
        });
    }
    let mut completed = 0;
    while let Some(summary) = drains.join_next().await {
        let summary = summary.unwrap();
        assert_eq!(summary.failed, 0, "{summary:?}");
        completed += summary.completed;
    }
    // Jobs released under contention are due again shortly; later drains finish them.
    for round in 1..=20u64 {
        let later = Arc::new(OffsetClock(Duration::from_secs(60 * round)));
        let rest = reward_worker::drain_queue(&world.store, settings(), limits(), later).await;
        assert_eq!(rest.failed, 0, "{rest:?}");
        completed += rest.completed;
        if rest.claimed == 0 {
            break;
        }
    }
    assert_eq!(completed, 100);

    let mut paid_out: i128 = 0;
    for receipt in &receipts {
        assert_eq!(
            world
                .store
                .queue()
                .job(receipt.job_id)
                .await
                .unwrap()
                .unwrap()
                .status,
            JobStatus::Completed
        );
        assert_conserved(&world, receipt.transaction_id).await;
        paid_out += world
            .entries_of(receipt.transaction_id)
            .await
            .iter()
            .filter(|e| e.credits_a_wallet())
            .map(|e| i128::from(e.amount.as_milli()))
            .sum::<i128>();
    }
    // Every wallet change is one charge or one recorded payout: nothing twice, nothing lost.
    let spent = 100 * i128::from(points("10").as_milli());
    assert_eq!(world.total_wallets().await, before - spent + paid_out);
}

/// A random tree as a scenario: customer i's parent has a larger index (no cycles).
fn tree_strategy() -> impl Strategy<Value = Value> {
    (3usize..25).prop_flat_map(|n| {
        proptest::collection::vec(
            (
                0usize..3,
                0u8..10,
                prop::bool::weighted(0.8),
                prop::bool::weighted(0.85),
            ),
            n,
        )
        .prop_map(move |raw| {
            let customers: Vec<Value> = raw
                .into_iter()
                .enumerate()
                .map(|(i, (step, level, active, verified))| {
                    let parent = if i + 1 + step < n {
                        json!(format!("c{}", i + 1 + step))
                    } else {
                        Value::Null
                    };
                    json!({"id": format!("c{i}"), "parent": parent,
                               "level": char::from(b'A' + level).to_string(),
                               "active": active, "verified": verified})
                })
                .collect();
            json!({"buyer": "c0", "rewardPoints": "0", "customers": customers})
        })
    })
}

#[test]
fn every_job_of_two_hundred_random_trees_conserves_and_matches_the_simulator() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 200,
        failure_persistence: None,
        ..Config::default()
    });
    let reward_strategy = prop_oneof![
        Just("100".to_owned()),
        (1i64..5_000_000).prop_map(|m| MilliPoints::from_milli(m).to_string())
    ];
    runner
        .run(
            &(tree_strategy(), reward_strategy),
            |(mut scenario, reward)| {
                runtime.block_on(async {
                    let mut world = World::new().await;
                    world.seed_customers(&scenario, "1000").await;
                    let product = world.product("1", &reward).await;
                    let receipt = world
                        .checkout(world.id("c0"), product, &RewardPolicy::default())
                        .await;
                    let summary = reward_worker::drain_queue(
                        &world.store,
                        settings(),
                        limits(),
                        Arc::new(SystemClock),
                    )
                    .await;
                    assert_eq!(summary.completed, 1);
                    assert_conserved(&world, receipt.transaction_id).await;

                    // What the worker paid is what the pure rules say.
                    scenario["rewardPoints"] = json!(reward);
                    let plan = Scenario::from_json(&scenario.to_string())
                        .unwrap()
                        .plan()
                        .unwrap();
                    let entries = world.entries_of(receipt.transaction_id).await;
                    let paid: Vec<(String, i64)> = entries
                        .iter()
                        .filter(|e| e.credits_a_wallet())
                        .map(|e| (world.name_of(e.customer_id), e.amount.as_milli()))
                        .collect();
                    let planned: Vec<(String, i64)> = plan
                        .payouts
                        .iter()
                        .map(|p| (p.id.clone(), p.amount.as_milli()))
                        .collect();
                    assert_eq!(paid, planned);
                    for promotion in &plan.promotions {
                        let now = world.customer(world.id(&promotion.id)).await.level_letter;
                        assert_eq!(now, promotion.to);
                    }
                });
                Ok(())
            },
        )
        .unwrap();
}

#[tokio::test]
async fn contention_releases_the_job_without_spending_an_attempt() {
    let (world, receipt) = spec_world().await;
    // Another transaction holds an uncommitted write on an ancestor the job must credit.
    let mut busy = world.store.client().start_session().await.unwrap();
    busy.start_transaction().await.unwrap();
    world
        .store
        .customers()
        .update_one(
            doc! {"_id": world.id("u5")},
            doc! {"$set": {"username": "busy"}},
        )
        .session(&mut busy)
        .await
        .unwrap();

    let now = mall_store::bson::DateTime::now();
    let claimed = world
        .store
        .queue()
        .claim_next(now, settings().lease)
        .await
        .unwrap()
        .and_then(mall_store::testing::queue::Claim::readable)
        .unwrap();
    let outcome = world
        .store
        .rewards()
        .process_claimed(&claimed, now, &settings())
        .await
        .unwrap();
    busy.abort_transaction().await.unwrap();

    assert!(matches!(outcome, JobOutcome::Retried { .. }), "{outcome:?}");
    let job = world
        .store
        .queue()
        .job(receipt.job_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (job.status, job.attempts),
        (JobStatus::Pending, 0),
        "no attempt spent"
    );
    assert!(
        job.errors.is_empty(),
        "contention is not an error of the job"
    );
    assert!(world.entries_of(receipt.transaction_id).await.is_empty());

    let later = reward_worker::drain_queue(
        &world.store,
        settings(),
        limits(),
        Arc::new(OffsetClock(Duration::from_secs(10))),
    )
    .await;
    assert_eq!(later.completed, 1);
    assert_conserved(&world, receipt.transaction_id).await;
}

#[tokio::test]
async fn every_trigger_drains_the_queue_through_the_lambda_handler() {
    for fixture in [
        "worker-scheduled.json",
        "worker-checkout-job-queued.json",
        "worker-atlas-trigger.json",
        "worker-manual.json",
    ] {
        let (world, receipt) = spec_world().await;
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../infra/events")
            .join(fixture);
        let payload: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut context = lambda_runtime::Context::default();
        context.request_id = format!("test-{fixture}");
        context.deadline = u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap()
            + 60_000;
        let config =
            reward_worker::WorkerConfig::read(&mall_runtime::Env::from_lookup(|name| match name {
                "MONGODB_URI" => Some(test_uri()),
                "MONGODB_DATABASE" => Some(world.database.clone()),
                _ => None,
            }))
            .unwrap();
        let summary = reward_worker::handle(
            &world.store,
            &config,
            lambda_runtime::LambdaEvent::new(payload, context),
            &|| {},
        )
        .await
        .unwrap();
        assert_eq!((summary.claimed, summary.completed), (1, 1), "{fixture}");
        assert_eq!(summary.stopped, Some(StopReason::Empty), "{fixture}");
        assert_conserved(&world, receipt.transaction_id).await;
    }
}
