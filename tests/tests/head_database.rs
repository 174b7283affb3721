//! The functions on a database the app's CURRENT version wrote (`tests/data/legacy/head-*.json`):
//! the seed era's data, then the app's current checkout, worker and courses — its own jobs
//! pending, parked (seed-era jobs its worker could not save, attempts 3), killed mid-job and
//! failed; its `rewardsettings`; its ledger with direct-referral rewards and signup gifts; and, in
//! the second file, the admin raising the direct-referral share midway.
//!
//! Proven here, on the real test server: `mall cutover check` reads it right (each era's jobs
//! and their fate, the settings that will apply, the level gifts that start being paid, a
//! worker that is not ours); one drain pays every open job of both eras exactly once, by its
//! era's rules, every wallet equal to the pure rules' plan replayed job by job to the
//! milli-point; the gifts pool never goes below zero and equals the app's formula over the
//! ledger; the app's settings-page sums over what we wrote equal the plan; a second drain pays
//! nothing; the audit passes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/serial.rs"]
mod serial;

use std::collections::HashMap;

use mall_domain::{MilliPoints, RewardPlan};
use mall_store::bson::{doc, oid::ObjectId, DateTime, Document};
use mall_store::testing::documents::{CheckoutJobDoc, JobEra, PurchaseOrder, RunTimeFacts};
use mall_store::testing::queue::QueueSettings;
use mall_store::testing::settings::SettingsReading;
use mall_store::Store;
use mall_testkit::db::{documents, fresh_counted_store};
use mall_testkit::legacy::{LegacyDump, CENTS_HEAD, CENTS_SEED_ERA, HEAD, HEAD_REFERRAL10};
use mall_testkit::replay::Replay;
use serial::drain_serially;

fn amount(doc: &Document, key: &str) -> MilliPoints {
    mall_store::testing::amount::from_bson(doc.get(key).unwrap()).unwrap()
}

/// Σ of the completed ledger entries of each type.
fn sums_by_type(transactions: &[Document]) -> HashMap<String, MilliPoints> {
    let mut sums: HashMap<String, MilliPoints> = HashMap::new();
    for t in transactions {
        if t.get_str("status") != Ok("completed") {
            continue;
        }
        let sum = sums
            .entry(t.get_str("type").unwrap().to_owned())
            .or_default();
        *sum = sum.checked_add(amount(t, "amount")).unwrap();
    }
    sums
}

/// The app's gifts pool formula over a ledger.
fn pool_formula(sums: &HashMap<String, MilliPoints>) -> MilliPoints {
    let of = |t: &str| sums.get(t).copied().unwrap_or_default();
    of("gifts_reward")
        .checked_sub(of("signup_gifts_reward"))
        .unwrap()
        .checked_sub(of("level_gift_reward"))
        .unwrap()
}

/// An hour after the last time the dump records a worker's claim: every worker of the app is
/// long gone.
fn an_hour_after_the_dump(dump: &LegacyDump) -> DateTime {
    let last = dump
        .documents("checkoutjobs")
        .iter()
        .filter_map(|j| j.get_datetime("startedAt").ok())
        .map(|t| t.timestamp_millis())
        .max()
        .unwrap();
    DateTime::from_millis(last + 3_600_000)
}

async fn loaded(name: &str) -> (LegacyDump, Store) {
    let dump = LegacyDump::read_named(name);
    let (store, _, _) = fresh_counted_store().await;
    store.database().drop().await.unwrap();
    dump.load(&store).await;
    store.ensure_indexes().await.unwrap();
    (dump, store)
}

#[tokio::test]
async fn the_cutover_check_reads_the_apps_current_database() {
    let (dump, store) = loaded(HEAD).await;
    let later = an_hour_after_the_dump(&dump);
    let lease = QueueSettings::default().lease;
    let check = store
        .operators()
        .cutover_check(later, lease, true)
        .await
        .unwrap();
    assert!(check.ready, "{:?}", check.blockers);
    assert_eq!(check.foreign_claims, 0);
    let jobs: Vec<(&str, &str, u64)> = check
        .legacy_jobs
        .iter()
        .map(|j| (j.era, j.status.as_str(), j.count))
        .collect();
    assert_eq!(
        jobs,
        [
            ("app today", "completed", 45),
            ("app today", "failed", 1),
            ("app today", "pending", 17),
            ("app today", "processing", 1),
            ("seed era", "completed", 145),
            ("seed era", "failed", 1),
            ("seed era", "pending", 44),
        ]
    );
    // The seed era's open jobs, oldest first, each with its R and the app's parked attempts.
    assert_eq!(check.seed_era_jobs.len(), 44);
    assert!(check
        .seed_era_jobs
        .windows(2)
        .all(|w| w[0].age_seconds >= w[1].age_seconds));
    assert!(check.seed_era_jobs.iter().all(|j| j.attempts == 3));
    // The settings that will apply: the admin's document, the app's defaults in it.
    let s = &check.settings;
    assert!(s.found && s.invalid_fields.is_empty());
    assert_eq!(
        (
            s.tree_share.as_str(),
            s.gifts_share.as_str(),
            s.referral_share.as_str(),
            s.app_share_applied.as_str()
        ),
        ("0.5", "0.15", "0.05", "0.3")
    );
    assert_eq!(s.signup_gift.as_deref(), Some("50.000"));
    let letters: Vec<&str> = s.level_gifts_paid.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(letters, ["B", "D", "F", "H", "J"]);
    assert!(check
        .warnings
        .iter()
        .any(|w| w.contains("level gifts will start being paid")));
    assert!(check
        .warnings
        .iter()
        .any(|w| w.contains("left `processing` by a killed worker")));
    // Turned off by the deployment, none is paid and nothing warns of them.
    let off = store
        .operators()
        .cutover_check(later, lease, false)
        .await
        .unwrap();
    assert!(off.settings.level_gifts_paid.is_empty());
    assert!(!off.warnings.iter().any(|w| w.contains("level gifts")));

    // The app's worker, still running, claims a job (no token of ours, `startedAt` now).
    let jobs = store.database().collection::<Document>("checkoutjobs");
    let pending = jobs
        .find_one(doc! {"status": "pending", "payload.directReferralShare": {"$exists": true}})
        .await
        .unwrap()
        .unwrap();
    jobs.update_one(
        doc! {"_id": pending.get_object_id("_id").unwrap()},
        doc! {"$set": {"status": "processing", "startedAt": later}, "$inc": {"attempts": 2}},
    )
    .await
    .unwrap();
    let check = store
        .operators()
        .cutover_check(later, lease, true)
        .await
        .unwrap();
    assert!(!check.ready);
    assert_eq!(check.foreign_claims, 1);
    assert!(
        check.blockers[0].contains("not ours"),
        "{:?}",
        check.blockers
    );

    // An unusable settings document is named, and the defaults apply.
    store
        .database()
        .collection::<Document>("rewardsettings")
        .update_many(doc! {}, doc! {"$set": {"giftsShare": "fifteen"}})
        .await
        .unwrap();
    let check = store
        .operators()
        .cutover_check(later, lease, true)
        .await
        .unwrap();
    assert_eq!(check.settings.invalid_fields, ["giftsShare"]);
    assert!(check
        .warnings
        .iter()
        .any(|w| w.contains("giftsShare") && w.contains("defaults")));
}

/// One drain over a database of both eras; everything checked against the replayed rules.
/// `open` is how many open jobs of each era the dump holds (the seed era's, the app's today).
async fn every_open_job_is_paid_once_by_its_eras_rules(name: &str, open: (usize, usize)) {
    let (dump, store) = loaded(name).await;
    let transactions = dump.documents("transactions");
    let before = sums_by_type(transactions);
    let settings = SettingsReading::of(dump.documents("rewardsettings").first());
    assert!(settings.problems.is_empty());

    // The plan: every open job in claim order (the app's jobs carry no `runAfter`: by `_id`).
    let mut model = Replay::of(dump.documents("customers"), pool_formula(&before));
    // Each purchase's place in the first-purchase rule's order, and which are completed.
    let order_of = |t: &Document| PurchaseOrder {
        created_at: t.get_datetime("createdAt").ok().copied(),
        id: t.get_object_id("_id").unwrap(),
    };
    let completed_purchases: Vec<(ObjectId, PurchaseOrder)> = transactions
        .iter()
        .filter(|t| t.get_str("type") == Ok("purchase") && t.get_str("status") == Ok("completed"))
        .map(|t| (t.get_object_id("customerId").unwrap(), order_of(t)))
        .collect();
    let mut planned = Vec::new();
    let mut eras: HashMap<&str, usize> = HashMap::new();
    for raw in dump.documents("checkoutjobs") {
        if !matches!(raw.get_str("status"), Ok("pending" | "processing")) {
            continue;
        }
        let job: CheckoutJobDoc =
            mall_store::testing::documents::read_document(raw.clone()).unwrap();
        let this = transactions
            .iter()
            .find(|t| t.get_object_id("_id") == Ok(job.checkout_transaction_id))
            .map(order_of)
            .unwrap();
        let earliest = completed_purchases
            .iter()
            .filter(|(buyer, _)| *buyer == job.customer_id)
            .map(|(_, order)| order)
            .min();
        let facts = RunTimeFacts {
            first_purchase: mall_domain::is_first_purchase(&this, earliest),
            settings: settings.settings.clone(),
            level_gifts_allowed: true,
        };
        let terms = job.payload.paying_terms(&facts).unwrap();
        let era = match job.payload.era() {
            JobEra::SeedEra => "seed era",
            JobEra::AppCurrent => "app today",
            other => panic!("the dump holds no job of ours: {other:?}"),
        };
        *eras.entry(era).or_default() += 1;
        let plan = model.pay(job.customer_id, job.payload.reward_points, &terms);
        planned.push((job, plan));
    }
    let count = |era: &str| eras.get(era).copied().unwrap_or_default();
    assert_eq!(
        (count("seed era"), count("app today")),
        open,
        "the seed era's jobs (the app parked them) and the app's today"
    );
    let jobs = open.0 + open.1;

    // One drain pays them all; a second pays nothing.
    let summary = drain_serially(&store).await;
    assert_eq!(
        (
            summary.claimed,
            summary.completed,
            summary.failed,
            summary.retried
        ),
        (jobs, jobs, 0, 0),
        "{summary:?}"
    );
    assert_eq!(summary.foreign_claims, 0);
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

    // The direct-referral share each app job recorded is what it paid (5 % before the admin's
    // change, 10 % after it in the second file), to the referrer or back to the buyer.
    let after_transactions = documents(&store, "transactions", doc! {}).await;
    for (job, plan) in &planned {
        if job.payload.era() != JobEra::AppCurrent {
            continue;
        }
        let paid: Vec<&Document> = after_transactions
            .iter()
            .filter(|t| {
                t.get_str("type") == Ok("direct_referral_reward")
                    && t.get_object_id("relatedTransaction") == Ok(job.checkout_transaction_id)
            })
            .collect();
        match &plan.direct {
            Some(direct) => {
                assert_eq!(paid.len(), 1);
                assert_eq!(amount(paid[0], "amount"), direct.amount);
                assert_eq!(Some(direct.amount), job.payload.direct_referral_share);
            }
            None => assert!(paid.is_empty()),
        }
    }

    // The gifts pool: the document, the app's formula over the ledger and the plan agree.
    let after = sums_by_type(&after_transactions);
    // (Built by the first batch whose jobs may spend the pool: a drain of the seed era's jobs
    // alone never needs it.)
    let pool = store
        .database()
        .collection::<Document>("rewardpools")
        .find_one(doc! {"_id": "gifts"})
        .await
        .unwrap();
    assert_eq!(pool.is_some(), open.1 > 0);
    if let Some(pool) = pool {
        assert_eq!(amount(&pool, "balance"), model.pool);
    }
    assert_eq!(pool_formula(&after), model.pool);
    assert!(!model.pool.is_negative());

    // The app's settings page, over what we wrote: revenue, pool income and spends, and the
    // points distributed to users, each the plan's.
    let grew = |t: &str| {
        after
            .get(t)
            .copied()
            .unwrap_or_default()
            .checked_sub(before.get(t).copied().unwrap_or_default())
            .unwrap()
    };
    let sum = |f: &dyn Fn(&RewardPlan<ObjectId>) -> MilliPoints| {
        MilliPoints::checked_sum(planned.iter().map(|(_, p)| f(p))).unwrap()
    };
    assert_eq!(grew("app_reward"), sum(&|p| p.app_final));
    assert_eq!(grew("gifts_reward"), sum(&|p| p.gifts_final));
    assert_eq!(
        grew("signup_gifts_reward")
            .checked_add(grew("level_gift_reward"))
            .unwrap(),
        sum(&|p| p.pool_spent().unwrap())
    );
    let distributed = [
        "tree_reward",
        "tree_reward_shared",
        "direct_referral_reward",
        "signup_gifts_reward",
        "level_gift_reward",
    ]
    .iter()
    .map(|t| grew(t))
    .try_fold(MilliPoints::ZERO, MilliPoints::checked_add)
    .unwrap();
    assert_eq!(
        distributed,
        sum(&|p| {
            MilliPoints::checked_sum(
                p.payouts
                    .iter()
                    .map(|x| x.amount)
                    .chain(p.direct.iter().map(|d| d.amount))
                    .chain(p.gifts.iter().map(|g| g.amount)),
            )
            .unwrap()
        })
    );
    // The current economy started paying level gifts where promotions reached a letter that
    // has one; the pool paid every one of them or said why not.
    let level_gifts = sum(&|p| {
        MilliPoints::checked_sum(
            p.gifts
                .iter()
                .filter(|g| matches!(g.kind, mall_domain::GiftKind::Level(_)))
                .map(|g| g.amount),
        )
        .unwrap()
    });
    assert_eq!(grew("level_gift_reward"), level_gifts);

    // What the app's reports read of each purchase we paid: the final app amount, the gifts
    // share, the payouts; and the purchase's entries add up to its R, to the milli-point.
    for (job, plan) in &planned {
        let entries = MilliPoints::checked_sum(
            after_transactions
                .iter()
                .filter(|t| {
                    t.get_object_id("relatedTransaction") == Ok(job.checkout_transaction_id)
                })
                .filter(|t| {
                    !matches!(
                        t.get_str("type"),
                        Ok("signup_gifts_reward" | "level_gift_reward")
                    )
                })
                .map(|t| amount(t, "amount")),
        )
        .unwrap();
        assert_eq!(
            entries, job.payload.reward_points,
            "purchase {}",
            job.checkout_transaction_id
        );
        // In the words of the app's worker of the job's era, which customers read in their
        // history.
        let today = job.payload.era() == JobEra::AppCurrent;
        for t in after_transactions
            .iter()
            .filter(|t| t.get_object_id("relatedTransaction") == Ok(job.checkout_transaction_id))
        {
            let description = t.get_str("description").unwrap();
            let expected = match (t.get_str("type").unwrap(), today) {
                ("tree_reward", true) => {
                    format!(
                        "Tree reward - Level {} (Rounded)",
                        t.get_str("level").unwrap()
                    )
                }
                ("tree_reward", false) => {
                    format!("Tree reward - Level {}", t.get_str("level").unwrap())
                }
                ("tree_reward_shared", true) => format!(
                    "Tree reward - Level J shared ({} users)",
                    t.get_i32("sharedWith").unwrap()
                ),
                ("tree_reward_shared", false) => format!(
                    "Tree reward - Level J shared ({})",
                    t.get_i32("sharedWith").unwrap()
                ),
                ("gifts_reward", true) => "Income to Gifts Pool from checkout split".into(),
                ("gifts_reward", false) => "Gifts points from checkout".into(),
                ("app_reward", true) => "App revenue split from checkout".into(),
                ("app_reward", false) => "App revenue points from checkout".into(),
                _ => description.to_owned(),
            };
            assert_eq!(description, expected);
        }
        let purchase = after_transactions
            .iter()
            .find(|t| t.get_object_id("_id") == Ok(job.checkout_transaction_id))
            .unwrap();
        assert_eq!(purchase.get_str("rewardsStatus"), Ok("completed"));
        assert_eq!(
            purchase.get_array("treeDistribution").unwrap().len(),
            plan.payouts.len()
        );
        if job.payload.era() == JobEra::AppCurrent {
            assert_eq!(amount(purchase, "appPointsShare"), plan.app_final);
            assert_eq!(amount(purchase, "giftsPointsShare"), plan.gifts_final);
        }
    }

    let audit = store.operators().audit().await.unwrap();
    assert!(audit.is_clean(), "{:#?}", audit.violations);
    assert_eq!(
        audit.gifts_pool_milli,
        (open.1 > 0).then(|| model.pool.as_milli().to_string())
    );
}

#[tokio::test]
async fn every_open_job_of_both_eras_is_paid_once_by_its_eras_rules() {
    every_open_job_is_paid_once_by_its_eras_rules(HEAD, (44, 18)).await;
}

/// Rewards with cents: the seed era's checkout split R in doubles (R 12.05 as gifts 1.8075 and
/// app 4.2175), and each of its jobs is paid from that recorded split, the app's entry taking
/// the rounding residue.
#[tokio::test]
async fn rewards_with_cents_of_both_eras_are_paid_once_as_recorded() {
    every_open_job_is_paid_once_by_its_eras_rules(CENTS_HEAD, (14, 18)).await;
}

#[tokio::test]
async fn rewards_with_cents_of_the_seed_era_are_paid_once_as_recorded() {
    every_open_job_is_paid_once_by_its_eras_rules(CENTS_SEED_ERA, (14, 0)).await;
}

#[tokio::test]
async fn after_the_admin_raised_the_referral_share_each_job_pays_its_own() {
    every_open_job_is_paid_once_by_its_eras_rules(HEAD_REFERRAL10, (44, 18)).await;
}

/// A seed-era job with cents that an earlier version of ours failed ("… not as its policy
/// does"): the cutover check names it as re-drivable, a re-drive pays it once, as recorded, and
/// it can never be re-driven again.
#[tokio::test]
async fn a_cents_job_an_earlier_version_failed_is_named_and_paid_once_when_redriven() {
    use mall_store::testing::ops::{RedriveRequest, RedriveSelection};

    let (dump, store) = loaded(CENTS_SEED_ERA).await;
    // An open job whose recorded parts, read to the milli-point, miss R by a residue.
    let job: CheckoutJobDoc = dump
        .documents("checkoutjobs")
        .iter()
        .filter(|j| j.get_str("status") == Ok("pending"))
        .map(|j| {
            mall_store::testing::documents::read_document::<CheckoutJobDoc>(j.clone()).unwrap()
        })
        .find(|j| {
            let p = &j.payload;
            MilliPoints::checked_sum([
                p.tree_points_share,
                p.gifts_points_share,
                p.app_points_share,
            ]) != Ok(p.reward_points)
        })
        .expect("the cents dump has an open job with a residue");
    let message = format!(
        "the original's job split R = {} as app {} / gifts {} / tree {}, not as its policy does",
        job.payload.reward_points,
        job.payload.app_points_share,
        job.payload.gifts_points_share,
        job.payload.tree_points_share
    );
    let jobs = store.database().collection::<Document>("checkoutjobs");
    let failed_at = DateTime::now();
    jobs.update_one(
        doc! {"_id": job.id},
        doc! {"$set": {
            "status": "failed", "failedAt": failed_at, "error": {"message": &message},
            "errors": [{"attempt": 1, "at": failed_at, "kind": "permanent", "message": &message}],
        }},
    )
    .await
    .unwrap();

    let later = an_hour_after_the_dump(&dump).max(DateTime::now());
    let check = store
        .operators()
        .cutover_check(later, QueueSettings::default().lease, true)
        .await
        .unwrap();
    assert_eq!(check.redrivable_jobs, [job.id.to_hex()]);
    assert!(check.warnings.iter().any(|w| w.contains("redrive")));

    // Drained before the re-drive, the failed job is left alone.
    let first = drain_serially(&store).await;
    assert_eq!((first.completed, first.failed), (13, 0), "{first:?}");
    let paid_before = documents(
        &store,
        "transactions",
        doc! {"relatedTransaction": job.checkout_transaction_id},
    )
    .await;
    assert!(paid_before.is_empty());

    let request = RedriveRequest::new(
        RedriveSelection::Failed {
            failed_before: None,
            error_contains: Some("not as its policy does".into()),
            limit: 10,
        },
        "paid as recorded",
        false,
    )
    .unwrap();
    let report = store
        .operators()
        .redrive(&request, DateTime::now())
        .await
        .unwrap();
    assert_eq!(report.redriven, [job.id]);
    let summary = drain_serially(&store).await;
    assert_eq!((summary.completed, summary.failed), (1, 0), "{summary:?}");
    let entries = documents(
        &store,
        "transactions",
        doc! {"relatedTransaction": job.checkout_transaction_id},
    )
    .await;
    let total = MilliPoints::checked_sum(entries.iter().map(|t| amount(t, "amount"))).unwrap();
    assert_eq!(total, job.payload.reward_points, "the entries add up to R");
    let app = entries
        .iter()
        .find(|t| t.get_str("type") == Ok("app_reward"))
        .unwrap();
    assert_ne!(
        amount(app, "amount"),
        job.payload.app_points_share,
        "the residue is the app's"
    );

    // Paid once: nothing is claimed again, a second re-drive finds nothing failed, and the
    // check no longer names it.
    assert_eq!(drain_serially(&store).await.claimed, 0);
    let again = store
        .operators()
        .redrive(&request, DateTime::now())
        .await
        .unwrap();
    assert!(again.redriven.is_empty());
    let check = store
        .operators()
        .cutover_check(later, QueueSettings::default().lease, true)
        .await
        .unwrap();
    assert!(check.redrivable_jobs.is_empty());
}
