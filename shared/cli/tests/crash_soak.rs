//! Crash soak: checkouts queue reward jobs, then three worker processes (`mall drain`, the same
//! drain the `reward-worker` Lambda runs) drain them while a driver SIGKILLs one at random every
//! few hundred milliseconds and starts it again. Kills land anywhere: between claims, inside the
//! reward transaction (left open on the server until it is reaped), after the commit.
//!
//! Then the queue is drained to empty and the promises are checked: `mall audit` finds no
//! violation, every job is `completed`, and every wallet holds exactly what the pure rules say —
//! computed here independently from the tree, the purchases and `RewardPlan`, not from what the
//! workers wrote.
//!
//! `MALL_SOAK_CHECKOUTS` (default 150) and `MALL_SOAK_KILL_SECONDS` (default 10) size it;
//! `make soak` runs 1,000 checkouts with a minute of kills.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mall_domain::checkout::CheckoutRequest;
use mall_domain::scenario::Scenario;
use mall_domain::MilliPoints;
use mall_store::bson::{doc, oid::ObjectId, DateTime};
use mall_store::Store;
use mall_testkit::db::{fresh_database_name, store_on, test_mongodb_uri};
use mall_testkit::seed;
use serde_json::{json, Value};

const TREES: usize = 8;
const PER_TREE: usize = 30;
const WALLET: &str = "100000";
const WORKERS: usize = 3;
/// How long the queue may take to finish after the kills: the server's transaction lifetime
/// (60 s, as mongod) for what the kills left open, plus a generous half second per job.
fn finish_within(jobs: usize) -> Duration {
    Duration::from_secs(120) + Duration::from_millis(500) * u32::try_from(jobs).unwrap()
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A forest of `TREES` trees; in each, node `i` hangs under `i - 1` (odd `i`) or `i - 2` (even
/// `i`): chains ~15 deep, and nobody has more than two directs. With the policy's
/// `promotionDirects` at 3 no promotion can happen, so every job's plan is independent of the
/// order the jobs run in and can be computed up front.
fn forest() -> Value {
    let mut customers = Vec::new();
    for tree in 0..TREES {
        for i in 0..PER_TREE {
            let parent = match i {
                0 => Value::Null,
                i if i % 2 == 1 => json!(format!("t{tree}n{}", i - 1)),
                i => json!(format!("t{tree}n{}", i - 2)),
            };
            let n = tree * PER_TREE + i;
            customers.push(json!({
                "id": format!("t{tree}n{i}"),
                "parent": parent,
                "level": (["A", "B", "C", "D", "E", "F", "G", "H", "I", "J"][(n * 7) % 10]),
                "active": n % 7 != 3,
                "verified": n % 5 != 4,
            }));
        }
    }
    json!({ "customers": customers, "policy": {"promotionDirects": 3} })
}

/// A small xorshift: reproducible kills from a printed seed, no dependency.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

struct Workers {
    uri: String,
    database: String,
    slots: Vec<Option<Child>>,
    started: usize,
    killed: usize,
}

impl Workers {
    fn spawn(&mut self) -> Child {
        self.started += 1;
        Command::new(env!("CARGO_BIN_EXE_mall"))
            // Small batches: many transactions for the kills to land in (a drain of large batches
            // can finish the whole queue before the driver's third kill).
            .args([
                "drain",
                "--concurrency",
                "2",
                "--batch-size",
                "4",
                "--max-jobs",
                "100000",
            ])
            .env("MONGODB_URI", &self.uri)
            .env("MONGODB_DATABASE", &self.database)
            // A killed worker's job is taken over 2 s later (in production: JOB_LEASE_SECONDS).
            .env("JOB_LEASE_SECONDS", "2")
            .env("JOB_BACKOFF_BASE_SECONDS", "0")
            .env("RUST_LOG", "off")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// Starts a worker in every empty slot and in every slot whose worker has exited (a drain
    /// ends when nothing is claimable right now; a scheduled worker would be invoked again).
    fn keep_running(&mut self) {
        for i in 0..self.slots.len() {
            let exited = match &mut self.slots[i] {
                Some(child) => child.try_wait().unwrap().is_some(),
                None => true,
            };
            if exited {
                let child = self.spawn();
                self.slots[i] = Some(child);
            }
        }
    }

    fn kill(&mut self, slot: usize) {
        if let Some(mut child) = self.slots[slot].take() {
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap(); // SIGKILL
                self.killed += 1;
            }
            child.wait().unwrap();
        }
    }
}

/// What mongod's periodic reaper does for transactions a killed worker left open
/// (`transactionLifetimeLimitSeconds`, 60 s): SecantusDB reaps them only when some statement
/// runs inside a transaction, and a plain write blocked behind one (a claim) retries without end
/// on the server. With every live worker blocked in a claim nothing would ever run such a
/// statement, so the driver does, as the reaper's tick: one read in a transaction, aborted.
async fn tick_transaction_reaper(store: &Store) {
    let mut session = store.client().start_session().await.unwrap();
    session.start_transaction().await.unwrap();
    store
        .database()
        .collection::<mall_store::bson::Document>("settings")
        .find_one(doc! {})
        .session(&mut session)
        .await
        .unwrap();
    session.abort_transaction().await.unwrap();
}

async fn completed(store: &Store) -> u64 {
    store
        .checkout_jobs()
        .count_documents(doc! {"status": "completed"})
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_never_pay_twice_and_every_job_completes() {
    let checkouts = setting("MALL_SOAK_CHECKOUTS", 150) as usize;
    let kill_for = Duration::from_secs(setting("MALL_SOAK_KILL_SECONDS", 10));
    let (uri, database) = (test_mongodb_uri(), fresh_database_name());
    let store = store_on(&database).await;
    store.ensure_indexes().await.unwrap();

    let tree = forest();
    let ids = seed::scenario_customers(&store, &tree, WALLET).await;
    let names: HashMap<ObjectId, &str> = ids.iter().map(|(n, id)| (*id, n.as_str())).collect();
    let dates = seed::product(&store, "3", "7.777", true).await;

    // The checkouts, and what the rules say each will pay, computed from the tree alone.
    let policy = mall_domain::RewardPolicy::from_json(&tree["policy"].to_string()).unwrap();
    let mut expected: HashMap<String, MilliPoints> = ids
        .keys()
        .map(|name| (name.clone(), WALLET.parse().unwrap()))
        .collect();
    let all: Vec<&String> = {
        let mut all: Vec<&String> = ids.keys().collect();
        all.sort();
        all
    };
    for k in 0..checkouts {
        let buyer = all[(k * 37) % all.len()];
        let quantity = 1 + (k % 3) as i64;
        seed::fill_cart(&store, ids[buyer], &[(dates, quantity)]).await;
        let receipt = store
            .checkouts()
            .checkout(&mall_store::CheckoutCommand {
                customer_id: ids[buyer],
                request: &CheckoutRequest::default(),
                idempotency_key: None,
                policy: &policy,
                // Kills spend attempts (a claim counts one); the soak is about never paying
                // twice, so no job may run out of them here.
                economy: mall_store::testing::checkout::Economy::Split,
                job_max_attempts: 100,
            })
            .await
            .unwrap();
        let spent = expected.get_mut(buyer.as_str()).unwrap();
        *spent = spent.checked_sub(receipt.cart_total).unwrap();

        let mut scenario = tree.clone();
        scenario["buyer"] = json!(buyer);
        scenario["rewardPoints"] = json!(receipt.reward_points.to_string());
        let plan = Scenario::from_json(&scenario.to_string())
            .unwrap()
            .plan()
            .unwrap();
        assert!(plan.promotions.is_empty(), "the forest admits no promotion");
        for payout in &plan.payouts {
            let wallet = expected.get_mut(&payout.id).unwrap();
            *wallet = wallet.checked_add(payout.amount).unwrap();
        }
    }

    // Three workers, one of them killed every 200–600 ms.
    let seed = DateTime::now().timestamp_millis().unsigned_abs() | 1;
    eprintln!("soak: {checkouts} jobs, kills for {kill_for:?}, dice seed {seed}");
    let mut dice = Dice(seed);
    let mut workers = Workers {
        uri: uri.clone(),
        database: database.clone(),
        slots: (0..WORKERS).map(|_| None).collect(),
        started: 0,
        killed: 0,
    };
    let started = Instant::now();
    while started.elapsed() < kill_for && completed(&store).await < checkouts as u64 {
        workers.keep_running();
        tick_transaction_reaper(&store).await;
        tokio::time::sleep(Duration::from_millis(200 + dice.below(400))).await;
        workers.kill(dice.below(WORKERS as u64) as usize);
    }
    let done_under_kills = completed(&store).await;

    // No more kills: the workers finish the queue (transactions the kills left open are reaped
    // by the server after 60 s; until then the jobs they touched back off as contended).
    while completed(&store).await < checkouts as u64 {
        assert!(
            started.elapsed() < kill_for + finish_within(checkouts),
            "the queue did not drain: {:?}",
            store
                .operators()
                .queue_status(DateTime::now())
                .await
                .unwrap()
        );
        workers.keep_running();
        tick_transaction_reaper(&store).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for slot in 0..WORKERS {
        workers.kill(slot);
    }
    let retried = store
        .checkout_jobs()
        .count_documents(doc! {"attempts": {"$gt": 1}})
        .await
        .unwrap();
    eprintln!(
        "soak: {} worker processes started, {} SIGKILLed; {done_under_kills} jobs completed \
         under kills; {retried} jobs needed more than one claim; all done in {:.1?}",
        workers.started,
        workers.killed,
        started.elapsed()
    );
    assert!(workers.killed >= 3, "the driver must really have killed");

    // The audit, as an operator runs it.
    let out = Command::new(env!("CARGO_BIN_EXE_mall"))
        .args(["audit", "--json"])
        .env("MONGODB_URI", &uri)
        .env("MONGODB_DATABASE", &database)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out.status.success(), "audit: {report:#}");
    assert_eq!(report["violations"], json!([]));
    assert_eq!(report["jobsByStatus"]["completed"], json!(checkouts));
    assert_eq!(report["purchases"], json!(checkouts));
    let status = store
        .operators()
        .queue_status(DateTime::now())
        .await
        .unwrap();
    assert_eq!(
        (status.pending, status.processing, status.failed),
        (0, 0, 0)
    );

    // Every wallet, to the milli-point, as the rules computed without the database.
    let mut wrong = Vec::new();
    let (mut total, mut expected_total) = (0i128, 0i128);
    for customer in store.operators().list_customers(10_000).await.unwrap() {
        let name = names[&customer.id];
        let want = expected[name];
        total += i128::from(customer.points.as_milli());
        expected_total += i128::from(want.as_milli());
        if customer.points != want {
            wrong.push(format!("{name}: {} ≠ expected {want}", customer.points));
        }
    }
    assert!(wrong.is_empty(), "wallets differ: {wrong:#?}");
    assert_eq!(total, expected_total);
    eprintln!("soak: Σ wallets {total} milli-points, exactly as computed");
}
