//! Operator actions against the real test server: status figures on a hand-built queue, re-drive
//! by id and by filter, dry runs, skip reasons, concurrent re-drives, and a re-driven job that the
//! worker then completes exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::sync::Arc;

use mall_domain::checkout::CheckoutRequest;
use mall_domain::RewardPolicy;
use mall_store::bson::{doc, oid::ObjectId, DateTime};
use mall_store::testing::documents::*;
use mall_store::testing::ops::{NotRedriven, RedriveRequest, RedriveSelection};
use mall_store::testing::queue::QueueSettings;
use mall_store::{CheckoutCommand, Store};
use mall_testkit::db::{self, fresh_counted_store};
use mall_testkit::seed;
use reward_worker::drain::{DrainLimits, SystemClock};
use serde_json::{json, Value};

fn at(now: DateTime, seconds: i64) -> DateTime {
    DateTime::from_millis(now.timestamp_millis() + seconds * 1000)
}

/// A job in a given state, with its own purchase id.
fn job(status: JobStatus, created: DateTime) -> CheckoutJobDoc {
    CheckoutJobDoc {
        id: ObjectId::new(),
        checkout_transaction_id: ObjectId::new(),
        customer_id: ObjectId::new(),
        status,
        attempts: 0,
        claims: Some(0),
        claimed_at: None,
        max_attempts: 3,
        run_after: Some(created),
        lease_until: None,
        claim_token: None,
        payload: JobPayloadDoc {
            reward_points: "100".parse().unwrap(),
            app_points_share: "50".parse().unwrap(),
            gifts_points_share: "15".parse().unwrap(),
            tree_points_share: "35".parse().unwrap(),
            direct_referral_share: Some(mall_domain::MilliPoints::ZERO),
            policy: Some(RewardPolicy::default().to_overrides()),
            economy: None,
            first_purchase: None,
            settings: None,
        },
        error: None,
        errors: vec![],
        redrives: vec![],
        created_at: created,
        updated_at: None,
        started_at: None,
        completed_at: None,
        processed_at: None,
        failed_at: None,
        expires_at: None,
    }
}

fn failed(now: DateTime, seconds_ago: i64, message: &str) -> CheckoutJobDoc {
    let when = at(now, -seconds_ago);
    let mut j = job(JobStatus::Failed, at(when, -60));
    j.attempts = 3;
    j.failed_at = Some(when);
    j.errors = (1..=3)
        .map(|attempt| JobErrorDoc {
            attempt,
            at: when,
            kind: JobErrorKind::Retryable,
            message: format!("{message} (attempt {attempt})"),
        })
        .collect();
    j
}

#[tokio::test]
async fn status_reports_exactly_what_the_queue_holds() {
    let (store, commands, _) = fresh_counted_store().await;
    let now = DateTime::now();
    let mut jobs = vec![
        job(JobStatus::Pending, at(now, -120)),
        job(JobStatus::Pending, at(now, -60)),
        job(JobStatus::Pending, at(now, -10)),
    ];
    let mut dead_lease = job(JobStatus::Processing, at(now, -900));
    dead_lease.lease_until = Some(at(now, -30));
    let mut live_lease = job(JobStatus::Processing, at(now, -20));
    live_lease.lease_until = Some(at(now, 280));
    jobs.extend([dead_lease, live_lease]);
    for ms in [100, 200, 300, 400] {
        let mut done = job(JobStatus::Completed, at(now, -500));
        done.started_at = Some(at(now, -400));
        done.completed_at = Some(DateTime::from_millis(at(now, -400).timestamp_millis() + ms));
        jobs.push(done);
    }
    let failures: Vec<CheckoutJobDoc> = (1..=12)
        .map(|i| failed(now, i * 100, &format!("boom {i}")))
        .collect();
    jobs.extend(failures.clone());
    store.checkout_jobs().insert_many(&jobs).await.unwrap();

    commands.clear();
    let status = store.operators().queue_status(now).await.unwrap();
    assert_eq!(
        commands.count(),
        1,
        "one aggregation: {:?}",
        commands.names()
    );
    assert_eq!(
        (
            status.pending,
            status.processing,
            status.completed,
            status.failed
        ),
        (3, 2, 4, 12)
    );
    assert_eq!(status.oldest_pending_age_seconds, Some(120));
    assert_eq!(status.expired_leases, 1);
    assert_eq!(
        (status.processing_ms_avg, status.processing_ms_max),
        (Some(250), Some(400))
    );
    let recent: Vec<ObjectId> = status.recent_failures.iter().map(|f| f.job_id).collect();
    let newest_ten: Vec<ObjectId> = failures.iter().take(10).map(|f| f.id).collect();
    assert_eq!(recent, newest_ten, "the ten most recent, newest first");
    let last = status.recent_failures[0].last_error.as_ref().unwrap();
    assert_eq!(
        (last.attempt, last.message.as_str()),
        (3, "boom 1 (attempt 3)")
    );

    let empty = fresh_counted_store()
        .await
        .0
        .operators()
        .queue_status(now)
        .await
        .unwrap();
    assert_eq!(
        (
            empty.pending,
            empty.failed,
            empty.oldest_pending_age_seconds
        ),
        (0, 0, None)
    );
}

async fn insert(store: &Store, jobs: &[&CheckoutJobDoc]) {
    store
        .checkout_jobs()
        .insert_many(jobs.iter().copied())
        .await
        .unwrap();
    for j in jobs {
        // Each job's purchase, failed with it when the job is failed.
        store
            .database()
            .collection::<mall_store::bson::Document>("transactions")
            .insert_one(doc! {"_id": j.checkout_transaction_id, "type": "purchase",
            "customerId": j.customer_id,
            "rewardsStatus": if j.status == JobStatus::Failed { "failed" } else { "processing" }})
            .await
            .unwrap();
    }
}

async fn jobs_of(store: &Store, ids: &[ObjectId]) -> Vec<Option<CheckoutJobDoc>> {
    let mut jobs = vec![];
    for id in ids {
        jobs.push(store.queue().job(*id).await.unwrap());
    }
    jobs
}

async fn rewards_status(store: &Store, j: &CheckoutJobDoc) -> String {
    store
        .database()
        .collection::<mall_store::bson::Document>("transactions")
        .find_one(doc! {"_id": j.checkout_transaction_id})
        .await
        .unwrap()
        .unwrap()
        .get_str("rewardsStatus")
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn redrive_by_id_touches_only_failed_jobs_and_says_why_it_skipped_the_rest() {
    let (store, _, _) = fresh_counted_store().await;
    let now = DateTime::now();
    let dead = failed(now, 60, "write conflict");
    let done = job(JobStatus::Completed, now);
    let waiting = job(JobStatus::Pending, now);
    let running = job(JobStatus::Processing, now);
    insert(&store, &[&dead, &done, &waiting, &running]).await;
    let unknown = ObjectId::new();
    let others = [done.id, waiting.id, running.id];
    let others_before = jobs_of(&store, &others).await;

    let request = RedriveRequest::new(
        RedriveSelection::Ids(vec![dead.id, done.id, waiting.id, running.id, unknown]),
        "buyer restored by support",
        false,
    )
    .unwrap();
    let report = store.operators().redrive(&request, now).await.unwrap();
    assert_eq!(report.matched, [dead.id]);
    assert_eq!(report.redriven, [dead.id]);
    let skipped: Vec<(ObjectId, NotRedriven)> = report
        .skipped
        .iter()
        .map(|s| (s.job_id, s.reason.clone()))
        .collect();
    assert_eq!(
        skipped,
        [
            (
                done.id,
                NotRedriven::NotFailed {
                    status: JobStatus::Completed
                }
            ),
            (
                waiting.id,
                NotRedriven::NotFailed {
                    status: JobStatus::Pending
                }
            ),
            (
                running.id,
                NotRedriven::NotFailed {
                    status: JobStatus::Processing
                }
            ),
            (unknown, NotRedriven::UnknownId),
        ]
    );

    let revived = store.queue().job(dead.id).await.unwrap().unwrap();
    assert_eq!((revived.status, revived.attempts), (JobStatus::Pending, 0));
    assert_eq!(revived.run_after, Some(now));
    assert!(revived.failed_at.is_none() && revived.claim_token.is_none());
    assert_eq!(revived.redrives.len(), 1);
    assert_eq!(revived.redrives[0].reason, "buyer restored by support");
    assert_eq!(revived.errors.len(), 3, "the history of errors stays");
    assert_eq!(rewards_status(&store, &dead).await, "processing");
    assert_eq!(
        jobs_of(&store, &others).await,
        others_before,
        "nothing else touched"
    );
}

#[tokio::test]
async fn a_dry_run_reports_and_changes_nothing() {
    let (store, _, _) = fresh_counted_store().await;
    let now = DateTime::now();
    let dead = failed(now, 60, "boom");
    insert(&store, &[&dead]).await;
    let before = db::snapshot(&store).await;
    let selection = RedriveSelection::Failed {
        failed_before: None,
        error_contains: None,
        limit: 100,
    };
    let report = store
        .operators()
        .redrive(&RedriveRequest::new(selection, "check", true).unwrap(), now)
        .await
        .unwrap();
    assert!(report.dry_run);
    assert_eq!(report.matched, [dead.id]);
    assert!(report.redriven.is_empty());
    assert_eq!(db::snapshot(&store).await, before);
}

#[tokio::test]
async fn redrive_by_filter_honours_time_text_and_limit() {
    let (store, _, _) = fresh_counted_store().await;
    let now = DateTime::now();
    let old_conflict = failed(now, 7200, "WriteConflict on customers");
    let old_other = failed(now, 7000, "the buyer does not exist");
    let old_conflict_2 = failed(now, 6000, "writeconflict again");
    let recent_conflict = failed(now, 60, "WriteConflict on customers");
    insert(
        &store,
        &[&old_conflict, &old_other, &old_conflict_2, &recent_conflict],
    )
    .await;
    let an_hour_ago = at(now, -3600);

    let by = |error_contains: Option<&str>, limit| {
        RedriveRequest::new(
            RedriveSelection::Failed {
                failed_before: Some(an_hour_ago),
                error_contains: error_contains.map(str::to_owned),
                limit,
            },
            "outage over",
            false,
        )
        .unwrap()
    };
    let first = store
        .operators()
        .redrive(&by(Some("writeCONFLICT"), 1), now)
        .await
        .unwrap();
    assert_eq!(
        first.redriven,
        [old_conflict.id],
        "oldest failure first, limit 1"
    );
    let rest = store
        .operators()
        .redrive(&by(Some("writeconflict"), 100), now)
        .await
        .unwrap();
    assert_eq!(
        rest.redriven,
        [old_conflict_2.id],
        "the recent one is after failedBefore"
    );
    let regex_chars = store
        .operators()
        .redrive(&by(Some("customers.*"), 100), now)
        .await
        .unwrap();
    assert!(
        regex_chars.matched.is_empty(),
        "the text is matched literally"
    );
    assert_eq!(
        store
            .queue()
            .job(old_other.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        JobStatus::Failed
    );
    assert_eq!(
        store
            .queue()
            .job(recent_conflict.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        JobStatus::Failed
    );
}

#[tokio::test]
async fn two_concurrent_redrives_revive_each_job_once() {
    let (store, _, _) = fresh_counted_store().await;
    let now = DateTime::now();
    let dead: Vec<CheckoutJobDoc> = (0..20).map(|i| failed(now, 100 + i, "boom")).collect();
    insert(&store, &dead.iter().collect::<Vec<_>>()).await;
    let ids: Vec<ObjectId> = dead.iter().map(|j| j.id).collect();

    let mut operators = tokio::task::JoinSet::new();
    for who in ["alice", "bob"] {
        let store = store.clone();
        let ids = ids.clone();
        operators.spawn(async move {
            let request = RedriveRequest::new(RedriveSelection::Ids(ids), who, false).unwrap();
            store
                .operators()
                .redrive(&request, DateTime::now())
                .await
                .unwrap()
        });
    }
    let mut redriven = vec![];
    while let Some(report) = operators.join_next().await {
        redriven.extend(report.unwrap().redriven);
    }
    redriven.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(
        redriven, expected,
        "every job re-driven by exactly one operator"
    );
    for id in ids {
        let j = store.queue().job(id).await.unwrap().unwrap();
        assert_eq!(j.status, JobStatus::Pending);
        assert_eq!(j.redrives.len(), 1, "one redrives entry");
    }
}

#[tokio::test]
async fn a_redriven_job_is_then_completed_by_the_worker_exactly_once() {
    let (store, _, _) = fresh_counted_store().await;
    let scenario = json!({"customers": [
        {"id": "buyer", "parent": "p", "level": "A", "active": true, "verified": true},
        {"id": "p", "parent": "g", "level": "B", "active": true, "verified": true},
        {"id": "g", "parent": null, "level": "C", "active": true, "verified": true}]});
    let ids = seed::scenario_customers(&store, &scenario, "100").await;
    let product = seed::product(&store, "10", "100", true).await;
    seed::fill_cart(&store, ids["buyer"], &[(product, 1)]).await;
    let receipt = store
        .checkouts()
        .checkout(&CheckoutCommand {
            customer_id: ids["buyer"],
            request: &CheckoutRequest::default(),
            idempotency_key: None,
            policy: &RewardPolicy::default(),
            economy: mall_store::testing::checkout::Economy::Split,
            job_max_attempts: 3,
        })
        .await
        .unwrap();

    // A cycle makes the job fail permanently; support repairs the tree and re-drives it.
    let set_parent = |of: ObjectId, parent: Option<ObjectId>| {
        let store = store.clone();
        async move {
            store
                .customers()
                .update_one(doc! {"_id": of}, doc! {"$set": {"parentCustomer": parent}})
                .await
                .unwrap();
        }
    };
    set_parent(ids["g"], Some(ids["buyer"])).await;
    let drain = |store: Store| async move {
        reward_worker::drain_queue(
            &store,
            QueueSettings::default(),
            DrainLimits::default(),
            Arc::new(SystemClock),
        )
        .await
    };
    assert_eq!(drain(store.clone()).await.failed, 1);
    set_parent(ids["g"], None).await;

    let response = retry_failed::handle(
        &store,
        &json!({"action": "redrive", "jobIds": [receipt.job_id.to_hex()], "reason": "tree repaired"}),
    )
    .await;
    let response: Value = serde_json::to_value(response).unwrap();
    assert_eq!(response["ok"], json!(true));
    assert_eq!(response["redriven"], json!([receipt.job_id.to_hex()]));

    let summary = drain(store.clone()).await;
    assert_eq!((summary.claimed, summary.completed), (1, 1));
    assert_eq!(drain(store.clone()).await.claimed, 0, "nothing left to do");
    let entries: Vec<RewardEntryDoc> = {
        use futures_util::TryStreamExt;
        store
            .reward_entries()
            .find(doc! {"relatedTransaction": receipt.transaction_id})
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap()
    };
    let total: i64 = entries.iter().map(|e| e.amount.as_milli()).sum();
    assert_eq!(total, 100_000, "R paid out once, to the milli-point");
    let p = store
        .customers()
        .find_one(doc! {"_id": ids["p"]})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        p.points,
        "101.75".parse().unwrap(),
        "the parent is paid once"
    );
}

#[tokio::test]
async fn bad_operator_requests_change_nothing() {
    let (store, _, _) = fresh_counted_store().await;
    let now = DateTime::now();
    let dead = failed(now, 60, "boom");
    insert(&store, &[&dead]).await;
    let before = db::snapshot(&store).await;
    for payload in [
        json!({"action": "redrive", "all": true}),
        json!({"action": "redrive", "all": true, "reason": "r", "limit": 0}),
        json!({"action": "nuke"}),
        json!("status"),
    ] {
        let response = serde_json::to_value(retry_failed::handle(&store, &payload).await).unwrap();
        assert_eq!(response["ok"], json!(false), "{payload}");
        assert_eq!(
            response["error"]["code"],
            json!("INVALID_REQUEST"),
            "{payload}"
        );
    }
    assert_eq!(db::snapshot(&store).await, before);

    let status =
        serde_json::to_value(retry_failed::handle(&store, &json!({"action": "status"})).await)
            .unwrap();
    assert_eq!(status["ok"], json!(true));
    assert_eq!(status["status"]["failed"], json!(1));
    let failure = &status["status"]["recentFailures"][0];
    assert_eq!(
        failure["jobId"],
        json!(dead.id.to_hex()),
        "plain ids for operators"
    );
    assert!(
        failure["failedAt"].as_str().unwrap().ends_with('Z'),
        "RFC 3339 times"
    );
    assert_eq!(failure["lastError"]["message"], json!("boom (attempt 3)"));
}
