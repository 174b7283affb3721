//! The `mall` binary as a user runs it. `simulate`: a file or standard input, JSON out, and
//! one line on standard error with a non-zero exit for invalid input.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use mall_testkit::db::{fresh_database_name, store_on, test_mongodb_uri};
use serde_json::Value;

fn scenarios() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../infra/scenarios")
}

fn mall(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mall"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// `mall ARGS` against a test database, quietly.
fn mall_on(uri: &str, database: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mall"))
        .args(args)
        .env("MONGODB_URI", uri)
        .env("MONGODB_DATABASE", database)
        .env("RUST_LOG", "off")
        .output()
        .unwrap()
}

fn expected_spec_report() -> Value {
    let text = std::fs::read_to_string(scenarios().join("spec-section-9.expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn reproduces_the_spec_example_from_a_file() {
    let file = scenarios().join("spec-section-9.json");
    let out = mall(&["simulate", file.to_str().unwrap()], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report, expected_spec_report());
    assert!(out.stderr.is_empty());
}

#[test]
fn reads_standard_input_without_a_file_or_with_a_dash() {
    let scenario = std::fs::read_to_string(scenarios().join("spec-section-9.json")).unwrap();
    for args in [&["simulate"][..], &["simulate", "-"][..]] {
        let out = mall(args, &scenario);
        assert!(out.status.success(), "{args:?}");
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report, expected_spec_report(), "{args:?}");
    }
}

#[test]
fn invalid_input_prints_one_line_on_stderr_and_nothing_on_stdout() {
    let cycle = r#"{"buyer": "a", "rewardPoints": "1", "customers": [
        {"id": "a", "parent": "b", "active": true, "verified": true},
        {"id": "b", "parent": "a", "active": true, "verified": true}]}"#;
    for (input, says) in [
        (cycle, "cycle"),
        (
            r#"{"buyer": "x", "rewardPoints": "1", "customers": []}"#,
            "does not exist",
        ),
        ("{", "invalid scenario"),
    ] {
        let out = mall(&["simulate"], input);
        assert!(!out.status.success());
        assert!(out.stdout.is_empty(), "stdout must stay empty");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
        assert!(stderr.contains(says), "{stderr:?} should say {says:?}");
    }
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let out = mall(&["simulate", "/nonexistent/scenario.json"], "");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("cannot read /nonexistent/scenario.json"));
}

#[test]
fn token_mints_a_verifiable_local_token() {
    let customer = "65f0c0ffee0000000000beef";
    let out = mall(
        &[
            "token",
            "--customer",
            customer,
            "--secret",
            "s3cret",
            "--ttl-seconds",
            "60",
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.required_spec_claims = ["exp".to_owned()].into();
    let claims = jsonwebtoken::decode::<Value>(
        token.trim(),
        &jsonwebtoken::DecodingKey::from_secret(b"s3cret"),
        &validation,
    )
    .unwrap()
    .claims;
    // The app's own format, as the phone sends it.
    assert_eq!(claims["Customer_id"], customer);
    assert_eq!(claims["Type"], "Customer");
    assert_eq!(claims["username"], "customer");

    let bad = mall(&["token", "--customer", "nope", "--secret", "s3cret"], "");
    assert!(!bad.status.success());
    assert!(bad.stdout.is_empty());
    assert!(String::from_utf8(bad.stderr)
        .unwrap()
        .contains("24 hex digits"));
}

#[tokio::test]
async fn drain_processes_what_checkout_queued() {
    use mall_store::bson::{doc, oid::ObjectId, DateTime};
    use mall_store::testing::documents::{CustomerDoc, JobStatus, ProductDoc};

    let (uri, database) = (test_mongodb_uri(), fresh_database_name());
    let store = store_on(&database).await;
    store.ensure_indexes().await.unwrap();
    let now = DateTime::now();
    let (parent, buyer, product) = (ObjectId::new(), ObjectId::new(), ObjectId::new());
    for (id, parent_customer) in [(parent, None), (buyer, Some(parent))] {
        store
            .customers()
            .insert_one(CustomerDoc {
                id,
                name: None,
                username: "c".into(),
                email: "c@example.com".into(),
                points: "100".parse().unwrap(),
                parent_customer,
                level_letter: mall_domain::Level::B,
                referral_status: "active".into(),
                is_verified: true,
                address: None,
                created_at: now,
                updated_at: now,
            })
            .await
            .unwrap();
    }
    store
        .products()
        .insert_one(ProductDoc {
            id: product,
            name: "p".into(),
            name_arabic: String::new(),
            price: "10".parse().unwrap(),
            reward_points: "100".parse().unwrap(),
            is_active: true,
        })
        .await
        .unwrap();
    store
        .database()
        .collection::<mall_store::bson::Document>("carts")
        .insert_one(
            doc! {"customerId": buyer, "items": [{"productId": product.to_hex(), "quantity": 1_i32}]},
        )
        .await
        .unwrap();
    let receipt = mall_testkit::seed::checkout(&store, buyer).await;

    let out = mall_on(&uri, &database, &["drain"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["claimed"], 1);
    assert_eq!(summary["completed"], 1);
    assert_eq!(summary["stopped"], "empty");
    let job = store.queue().job(receipt.job_id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Completed);
    // The parent (B, active, verified) got one level bucket of the 35-point tree pool.
    let parent_doc = store
        .customers()
        .find_one(doc! {"_id": parent})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(parent_doc.points, "101.75".parse().unwrap());
}

#[tokio::test]
async fn jobs_status_and_redrive_work_from_the_shell() {
    use mall_store::bson::{doc, oid::ObjectId, DateTime};

    let (uri, database) = (test_mongodb_uri(), fresh_database_name());
    let store = store_on(&database).await;
    let (job_id, purchase_id) = (ObjectId::new(), ObjectId::new());
    let now = DateTime::now();
    store
        .database()
        .collection::<mall_store::bson::Document>("checkoutjobs")
        .insert_one(doc! {
            "_id": job_id, "checkoutTransactionId": purchase_id, "customerId": ObjectId::new(),
            "status": "failed", "attempts": 3_i32, "maxAttempts": 3_i32, "runAfter": now,
            "failedAt": now, "createdAt": now,
            "payload": {"totalRewardPoints": 1_i32, "appPointsShare": 0.5, "giftsPointsShare": 0.15,
                        "treePointsShare": 0.35, "policy": {}},
            "errors": [{"attempt": 3_i32, "at": now, "kind": "permanent", "message": "the buyer does not exist"}],
            "redrives": [],
        })
        .await
        .unwrap();
    let mall_jobs = |args: &[&str]| mall_on(&uri, &database, &[&["jobs"], args].concat());

    let table = mall_jobs(&["status"]);
    assert!(
        table.status.success(),
        "{}",
        String::from_utf8_lossy(&table.stderr)
    );
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(table.contains("failed 1"), "{table}");
    assert!(
        table.contains(&job_id.to_hex()) && table.contains("the buyer does not exist"),
        "{table}"
    );

    let id = job_id.to_hex();
    let dry = String::from_utf8(
        mall_jobs(&["redrive", "--id", &id, "--reason", "restored", "--dry-run"]).stdout,
    )
    .unwrap();
    assert!(
        dry.contains("would re-drive 1") && dry.contains("nothing changed"),
        "{dry}"
    );
    assert_eq!(
        store.queue().job(job_id).await.unwrap().unwrap().status,
        mall_store::testing::documents::JobStatus::Failed
    );

    let out = mall_jobs(&["redrive", "--id", &id, "--reason", "restored", "--json"]);
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["redriven"], serde_json::json!([id]));
    assert_eq!(
        store.queue().job(job_id).await.unwrap().unwrap().status,
        mall_store::testing::documents::JobStatus::Pending
    );

    let no_selection = mall_jobs(&["redrive", "--reason", "r"]);
    assert!(!no_selection.status.success(), "an id or --all is required");
    let no_reason = mall_jobs(&["redrive", "--id", &id, "--reason", " "]);
    assert!(!no_reason.status.success());
    assert!(String::from_utf8(no_reason.stderr)
        .unwrap()
        .contains("reason is required"));
}

#[tokio::test]
async fn audit_passes_after_real_work_and_names_every_planted_violation() {
    use mall_store::bson::{doc, Document};
    use mall_testkit::seed;
    use reward_worker::drain::{DrainLimits, SystemClock};

    let (uri, database) = (test_mongodb_uri(), fresh_database_name());
    let store = store_on(&database).await;
    store.ensure_indexes().await.unwrap();
    let referrer = seed::customer(&store, "0").await;
    let buyer = seed::customer(&store, "1000").await;
    seed::refer(&store, buyer, referrer).await;
    let dates = seed::product(&store, "10", "7.777", true).await;
    let mut purchases = Vec::new();
    for _ in 0..3 {
        seed::fill_cart(&store, buyer, &[(dates, 3)]).await;
        let receipt = seed::checkout(&store, buyer).await;
        purchases.push(receipt.transaction_id);
    }
    let audit = |args: &[&str]| mall_on(&uri, &database, &[&["audit"], args].concat());

    // Queued but not yet paid is consistent too.
    let out = audit(&["--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["jobsByStatus"]["pending"], 3);
    assert_eq!(report["violations"], serde_json::json!([]));

    let queue = mall_store::testing::queue::QueueSettings::default();
    let summary = reward_worker::drain_queue(
        &store,
        queue,
        DrainLimits::default(),
        std::sync::Arc::new(SystemClock),
    )
    .await;
    assert_eq!(summary.completed, 3);
    let out = audit(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("completed 3"), "{table}");
    assert!(
        table.contains("completed R total 69993 milli-points"),
        "{table}"
    );
    assert!(table.contains("no invariant violated"), "{table}");

    // Plant one of each kind of damage.
    let transactions = store.database().collection::<Document>("transactions");
    let jobs = store.database().collection::<Document>("checkoutjobs");
    transactions
        .update_one(
            doc! {"relatedTransaction": purchases[0], "type": "app_reward"},
            doc! {"$inc": {"amount": 1_i64}},
        )
        .await
        .unwrap();
    transactions
        .drop_index("one_payout_per_recipient")
        .await
        .unwrap();
    let mut copy = transactions
        .find_one(doc! {"relatedTransaction": purchases[1], "type": "tree_reward"})
        .await
        .unwrap()
        .unwrap();
    copy.insert("_id", mall_store::bson::oid::ObjectId::new());
    copy.insert("amount", 0_i64);
    transactions.insert_one(copy).await.unwrap();
    store
        .customers()
        .update_one(doc! {"_id": referrer}, doc! {"$set": {"points": -5_i64}})
        .await
        .unwrap();
    jobs.update_one(
        doc! {"checkoutTransactionId": purchases[2]},
        doc! {"$set": {"status": "failed", "errors": []}},
    )
    .await
    .unwrap();

    let out = audit(&["--json"]);
    assert!(!out.status.success(), "violations must fail the command");
    assert!(String::from_utf8(out.stderr.clone())
        .unwrap()
        .contains("invariant violation"));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut kinds: Vec<&str> = report["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["violation"].as_str().unwrap())
        .collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "duplicate_payout",
            "failed_job_without_errors",
            "negative_wallet",
            "reward_not_conserved",
            "status_mismatch",
        ]
    );
}

#[tokio::test]
async fn cutover_check_exits_1_while_an_original_worker_runs_and_0_once_it_stopped() {
    use mall_store::bson::{doc, DateTime, Document};

    let (uri, database) = (test_mongodb_uri(), fresh_database_name());
    let store = store_on(&database).await;
    let jobs = store.database().collection::<Document>("checkoutjobs");
    // A job the original's worker is processing right now (no claim token, fresh startedAt).
    mall_testkit::seed::original_job_in_progress(&store).await;
    // A wallet the functions cannot read.
    store
        .database()
        .collection::<Document>("customers")
        .insert_one(doc! {"username": "odd", "email": "odd@example.com", "points": "12"})
        .await
        .unwrap();

    let out = mall_on(&uri, &database, &["cutover", "check", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ready"], false);
    assert!(report["blockers"][0]
        .as_str()
        .unwrap()
        .contains("original worker is still running"));
    assert_eq!(report["unreadableCount"], 1);
    assert_eq!(report["unreadable"][0]["collection"], "customers");
    assert!(report["unreadable"][0]["problem"]
        .as_str()
        .unwrap()
        .contains("string"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not ready"));

    // The original's worker stopped: its job is now an abandoned one, and nothing blocks.
    jobs.update_many(
        doc! {},
        doc! {"$set": {"startedAt": DateTime::from_millis(DateTime::now().timestamp_millis() - 3_600_000)}},
    )
    .await
    .unwrap();
    let out = mall_on(&uri, &database, &["cutover", "check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.starts_with("READY"), "{table}");
    assert!(table.contains("processing"), "{table}");
}

/// Today's economy: the admin's settings in the scenario, the same pure plan the worker pays by.
/// R = 28.05 with D raised to 10 %: the parent is paid 2.805; the pool (40 + this job's 4.207)
/// does not cover the 50-point signup gift, and covers the level gifts of the buyer's promotion
/// from A to D (B 10 + D 20, one entry named D).
#[test]
fn simulate_today_pays_what_the_settings_in_the_scenario_say() {
    let file = scenarios().join("current-economy.json");
    let out = mall(&["simulate", file.to_str().unwrap()], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["split"]["referral"], "2.805");
    assert_eq!(report["split"]["tree"], "14.025");
    assert_eq!(report["direct"]["id"], "u1");
    assert_eq!(report["direct"]["kind"], "referral");
    assert_eq!(report["gifts"][0]["level"], "D");
    assert_eq!(report["gifts"][0]["amount"], "30.000");
    assert_eq!(report["giftsUncovered"][0]["kind"], "signup");
    assert_eq!(report["giftsPoolAfter"], "14.207");
    assert_eq!(report["settings"]["levelGifts"]["B"], "10.000");

    // The admin switches the signup gift off with `null` and sends the shares over 1: no gift
    // the admin switched off, the shares' defaults, and the unusable field named.
    let mut scenario: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    scenario["settings"]["signupPoints"]["enabled"] = Value::Null;
    scenario["settings"]["firstPaymentReferral"] = serde_json::json!(0.4);
    scenario["settings"]["enableLevelGifts"] = serde_json::json!(false);
    let out = mall(&["simulate"], &scenario.to_string());
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["split"]["referral"], "1.402", "the default 5 %");
    assert_eq!(report["gifts"], serde_json::json!([]));
    assert_eq!(report["giftsUncovered"], serde_json::json!([]));
    assert_eq!(report["settings"]["signupGift"], Value::Null);
    assert!(report["settingsProblems"][0]
        .as_str()
        .unwrap()
        .contains("is more than 1"));

    // Settings are only read with the current economy.
    let mut fixed = scenario.clone();
    fixed.as_object_mut().unwrap().remove("economy");
    let out = mall(&["simulate"], &fixed.to_string());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("economy"));
}

/// `--live-settings`: the settings stored now, read as a checkout reads them.
#[tokio::test]
async fn the_stored_settings_price_a_scenario_of_today() {
    use mall_store::bson::{doc, Document};

    let (uri, database) = (test_mongodb_uri(), fresh_database_name());
    let store = store_on(&database).await;
    store
        .database()
        .collection::<Document>("rewardsettings")
        .insert_one(doc! {"treeShare": 0.5, "giftsShare": 0.15, "appShare": 0.3,
        "firstPaymentReferral": 0.2, "signupPoints": {"enabled": false, "amount": 50}})
        .await
        .unwrap();
    let mut scenario: Value = serde_json::from_str(
        &std::fs::read_to_string(scenarios().join("current-economy.json")).unwrap(),
    )
    .unwrap();
    scenario.as_object_mut().unwrap().remove("settings");
    let path = std::env::temp_dir().join(format!("{database}.json"));
    std::fs::write(&path, scenario.to_string()).unwrap();
    let out = mall_on(
        &uri,
        &database,
        &["simulate", path.to_str().unwrap(), "--live-settings"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["split"]["referral"], "5.610", "the stored 20 %");
    assert_eq!(report["settings"]["signupGift"], Value::Null);
    std::fs::remove_file(&path).unwrap();
}
