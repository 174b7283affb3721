//! `make bench`: the whole system measured the way it runs, on two workloads in a local
//! SecantusDB (or the server `MALL_BENCH_MONGODB_URI` names):
//!
//! - **the original's own test data** (`tests/data/bench/input.json`, copied from the team's handbook: 2,000 customers in ten
//!   trees, 40 products, 200 carts, 200 ordered checkouts of which 10 cannot be paid), loaded in
//!   the app's shapes (Int32 and Double points, carts with string product ids);
//! - **generated forests of 2,000, 10,000 and 100,000 customers with one depth profile** (copies
//!   of one 2,000-customer block: a spine 100 deep and a bushy forest; generated, not committed),
//!   200 checkouts each by the same buyers, chosen at random in the first block.
//!
//! For each: the checkouts in order through the real release `checkout` binary under
//! `cargo lambda watch` (p50/p95), the jobs drained by one real `reward-worker` instance, and the
//! same jobs (in a second database loaded alike, the first dropped) drained by three instances at once, each
//! ledger checked against the pure rules replayed in commit order, every wallet and level to the
//! milli-point; conflicts, splits, turn waits and lost claims per 100 jobs, and the longest batch
//! transaction. Then the commands of one batch at chain depths 5, 50 and 500 (in-process, by
//! command monitoring), cold (the environment learns the chains' links first) and warm, the batch
//! size sweep behind `WORKER_BATCH_SIZE`'s default, each binary's start-to-ready time, the
//! stripped arm64 binaries' sizes and the instances' peak memory (the worker's at 100,000).
//!
//! Run by `infra/bench.sh`, which starts the database (`MALL_BENCH_MONGODB_URI`), builds the
//! release and arm64 binaries, then runs this executable itself (not through `cargo bench`). It
//! prints a table, then one JSON object as the last line of stdout; progress goes to stderr. A
//! benchmark run, not a test: it exits non-zero only when something failed (a checkout or a job
//! that should have succeeded, a ledger that is not exact), never because a figure misses its
//! target (the table marks those).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use mall_domain::checkout::{CheckoutRequest, IdempotencyKey};
use mall_domain::{ForestView, Level, LevelCounts, MilliPoints, RewardPolicy, ViewMember};
use mall_store::bson::{doc, oid::ObjectId, Bson, DateTime, Document};
use mall_store::testing::documents::{CheckoutJobDoc, CustomerDoc, REFERRAL_ACTIVE};
use mall_store::testing::queue::QueueSettings;
use mall_store::{CheckoutCommand, Store, StoreConfig};
use mall_testkit::auth::{local_token, LOCAL_JWT_SECRET};
use mall_testkit::db::counted_store_on;
use mall_testkit::emulator::{read_json, workspace_root, EmulatorOptions, LambdaEmulator};
use mall_testkit::stats::percentile;
use reward_worker::drain::{DrainLimits, SystemClock, DEFAULT_BATCH_SIZE};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::signal::unix::{signal, SignalKind};

/// The generated forests' sizes, all of one depth profile.
const FOREST_SIZES: [usize; 3] = [2_000, 10_000, 100_000];
/// A forest is copies of one block of this many customers...
const BLOCK: usize = 2_000;
/// ... whose spine is this deep.
const BLOCK_SPINE: usize = 100;
/// The longest chain the command counts walk.
const MAX_DEPTH: usize = 500;
/// Checkouts (and so jobs) on each generated forest.
const FOREST_CHECKOUTS: usize = 200;
/// Chain depths (ancestors above the buyer) at which commands are counted.
const COUNT_DEPTHS: [usize; 3] = [5, 50, 500];
/// Jobs per counted batch.
const COUNT_BATCH: usize = 16;
/// Batch sizes tried on the fixture (one in-process worker) to choose the default.
const SWEEP: [usize; 3] = [1, 16, 50];
/// Concurrent workers in the second drain of each workload.
const WORKERS: usize = 3;
/// Starts of each binary for its start-to-ready time (the median is reported).
const INIT_RUNS: usize = 10;

const CHECKOUT_PATH: &str = "/api/cart/checkout";
const FUNCTIONS: [&str; 3] = ["checkout", "reward-worker", "retry-failed"];

/// The original system on the same server (the issue's measurements).
const ORIGINAL_JOBS_PER_SEC_2K: f64 = 3.2;
const ORIGINAL_CHECKOUT_P50_2K: f64 = 88.0;
/// Targets: issue 15 (throughput ×5 and ×2, half the checkout p50, ≤ 1.5 commands a job at a
/// batch of 16), issue 7 (start-up, binary size, memory).
const TARGET_CMDS_PER_JOB: f64 = 1.5;
const TARGET_CHECKOUT_CMDS: usize = 6;
const TARGET_INIT_MS: f64 = 30.0;
const TARGET_BINARY_BYTES: u64 = 8 * 1024 * 1024;
const TARGET_RSS_MB: f64 = 40.0;
/// Issue 20: drains flat in the forest's size, three workers never slower than one, checkout
/// flat, a batch's round trips, the worker's memory at 100,000, short transactions.
const TARGET_SIZE_RATIO: f64 = 0.67;
const TARGET_CHECKOUT_RATIO: f64 = 1.2;
const TARGET_BATCH_ROUND_TRIPS_COLD: usize = 12;
const TARGET_RSS_MB_100K: f64 = 64.0;
const TARGET_LONGEST_BATCH_MS: u64 = 10_000;

/// A small deterministic generator (xorshift64*), so every run seeds the same forest.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The referral forest: customer `i`'s parent (an index) and its depth (ancestors above it).
struct Forest {
    parent: Vec<Option<usize>>,
    depth: Vec<usize>,
}

impl Forest {
    /// `customers` (a multiple of [`BLOCK`]) as copies of one block, so every size has the same
    /// depth profile. The block: a spine `0 ← 1 ← … ← 100` (customer `k` has exactly `k`
    /// ancestors), then a bushy forest as referrals grow: each customer joins under a random
    /// earlier one of the forest, one in fifty is a new root, and one in two hundred joins under
    /// a random spine member instead (as a leaf, so deep chains stay rare).
    fn generate(customers: usize, rng: &mut Rng) -> Forest {
        let block = Forest::block(rng);
        let mut parent = Vec::with_capacity(customers);
        let mut depth = Vec::with_capacity(customers);
        for copy in 0..customers / BLOCK {
            let offset = copy * BLOCK;
            parent.extend(block.parent.iter().map(|p| p.map(|p| p + offset)));
            depth.extend(&block.depth);
        }
        Forest { parent, depth }
    }

    fn block(rng: &mut Rng) -> Forest {
        let mut parent = Vec::with_capacity(BLOCK);
        let mut depth = Vec::with_capacity(BLOCK);
        for k in 0..=BLOCK_SPINE {
            parent.push(k.checked_sub(1));
            depth.push(k);
        }
        // Customers of the bushy part that others may join under.
        let mut referrers: Vec<usize> = Vec::with_capacity(BLOCK);
        for i in BLOCK_SPINE + 1..BLOCK {
            let chosen = if i % 200 == 0 {
                Some(rng.below(BLOCK_SPINE))
            } else if i % 50 == 0 || referrers.is_empty() {
                referrers.push(i);
                None
            } else {
                referrers.push(i);
                Some(referrers[rng.below(referrers.len() - 1)])
            };
            depth.push(chosen.map_or(0, |p| depth[p] + 1));
            parent.push(chosen);
        }
        Forest { parent, depth }
    }
}

fn level(rng: &mut Rng) -> Level {
    match rng.below(100) {
        0..=49 => Level::A,
        50..=64 => Level::B,
        65..=74 => Level::C,
        75..=81 => Level::D,
        82..=86 => Level::E,
        87..=90 => Level::F,
        91..=93 => Level::G,
        94..=95 => Level::H,
        96..=97 => Level::I,
        _ => Level::J,
    }
}

/// The original's policy preset, as the functions read it from `REWARD_POLICY`.
const POLICY_JSON: &str = r#"{"preset": "original"}"#;

fn policy() -> RewardPolicy {
    RewardPolicy::from_json(POLICY_JSON).unwrap()
}

/// A workload: what a database holds before the checkouts, and the checkouts in order.
struct Workload {
    name: String,
    /// A short name for the JSON line's keys.
    key: String,
    customers: Vec<Document>,
    products: Vec<Document>,
    carts: Vec<Document>,
    /// Each checkout's buyer and request body, in order.
    checkouts: Vec<(ObjectId, String)>,
    /// The chain depth (ancestors) of each checkout's buyer.
    depths: Vec<usize>,
}

/// A JSON number as the app's driver stores it: Int32 when it is a small integer, else Double.
fn app_number(value: &Value) -> Bson {
    match value.as_i64().and_then(|n| i32::try_from(n).ok()) {
        Some(n) => Bson::Int32(n),
        None => Bson::Double(value.as_f64().unwrap()),
    }
}

fn oid(value: &Value) -> ObjectId {
    ObjectId::parse_str(value.as_str().unwrap()).unwrap()
}

impl Workload {
    /// The original's test data (`MALL_BENCH_FIXTURE`, default `tests/data/bench/input.json`),
    /// converted to the app's shapes.
    fn fixture() -> Workload {
        let path = std::env::var_os("MALL_BENCH_FIXTURE")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("tests/data/bench/input.json"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let input: Value = serde_json::from_str(&text).unwrap();
        let now = DateTime::now();
        let list = |key: &str| input[key].as_array().unwrap().clone();
        let mut depth_of = HashMap::new();
        let customers = list("customers")
            .iter()
            .map(|c| {
                depth_of.insert(oid(&c["_id"]), c["depth"].as_u64().unwrap() as usize);
                doc! {
                    "_id": oid(&c["_id"]),
                    "username": c["username"].as_str().unwrap(),
                    "email": c["email"].as_str().unwrap(),
                    "parentCustomer": c["parentCustomer"].as_str().map_or(Bson::Null, |p| {
                        Bson::ObjectId(ObjectId::parse_str(p).unwrap())
                    }),
                    "levelLetter": c["levelLetter"].as_str().unwrap(),
                    "referralStatus": c["referralStatus"].as_str().unwrap(),
                    "isVerified": c["isVerified"].as_bool().unwrap(),
                    "points": app_number(&c["points"]),
                    "referenceNumber": c["referenceNumber"].as_str().unwrap(),
                    "Address": c["Address"].as_str().unwrap(),
                    "createdAt": now,
                    "updatedAt": now,
                }
            })
            .collect();
        let products = list("products")
            .iter()
            .map(|p| {
                doc! {
                    "_id": oid(&p["_id"]),
                    "name": p["name"].as_str().unwrap(),
                    "nameArabic": p["nameArabic"].as_str().unwrap(),
                    "price": app_number(&p["price"]),
                    "percentage": app_number(&p["percentage"]),
                    "category": p["category"].as_str().unwrap(),
                    "stock": app_number(&p["stock"]),
                    "sku": p["sku"].as_str().unwrap(),
                    "isActive": true,
                }
            })
            .collect();
        let carts = list("carts")
            .iter()
            .map(|cart| {
                let items = cart["items"].as_array().unwrap();
                let total: f64 = items
                    .iter()
                    .map(|i| i["price"].as_f64().unwrap() * i["quantity"].as_f64().unwrap())
                    .sum();
                let count: i64 = items.iter().map(|i| i["quantity"].as_i64().unwrap()).sum();
                let items: Vec<Document> = items
                    .iter()
                    .map(|i| {
                        doc! {
                            // As the app's cart screen writes it: the id as a string.
                            "productId": i["productId"].as_str().unwrap(),
                            "productName": i["productName"].as_str().unwrap(),
                            "productNameArabic": i["productNameArabic"].as_str().unwrap(),
                            "price": app_number(&i["price"]),
                            "quantity": app_number(&i["quantity"]),
                        }
                    })
                    .collect();
                doc! {
                    "_id": ObjectId::new(),
                    "customerId": oid(&cart["customerId"]),
                    "items": items,
                    "totalAmount": app_number(&json!(total)),
                    "totalItems": app_number(&json!(count)),
                    "createdAt": now,
                    "updatedAt": now,
                }
            })
            .collect();
        let checkouts: Vec<(ObjectId, String)> = list("checkouts")
            .iter()
            .map(|c| {
                let body = match c["deliveryAddress"].as_str() {
                    Some(address) => json!({ "deliveryAddress": address }).to_string(),
                    None => "{}".to_owned(),
                };
                (oid(&c["customerId"]), body)
            })
            .collect();
        let depths = checkouts.iter().map(|(id, _)| depth_of[id]).collect();
        Workload {
            name: "2,000 customers (the original's data)".to_owned(),
            key: "2k".to_owned(),
            customers,
            products,
            carts,
            checkouts,
            depths,
        }
    }

    /// A generated forest of `size` customers, and [`FOREST_CHECKOUTS`] buyers chosen at random
    /// in its first block.
    fn forest(size: usize) -> Workload {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let forest = Forest::generate(size, &mut rng);
        let ids: Vec<ObjectId> = (0..size).map(|_| ObjectId::new()).collect();
        let now = DateTime::now();
        let customers = (0..size)
            .map(|i| {
                doc! {
                    "_id": ids[i],
                    "username": format!("bench{i}"),
                    "email": format!("bench{i}@example.com"),
                    "parentCustomer": forest.parent[i].map_or(Bson::Null, |p| Bson::ObjectId(ids[p])),
                    "levelLetter": level(&mut rng).to_string(),
                    "referralStatus": if rng.below(20) == 0 { "suspended" } else { REFERRAL_ACTIVE },
                    "isVerified": rng.below(20) != 0,
                    "points": 100_000,
                    "createdAt": now,
                    "updatedAt": now,
                }
            })
            .collect();
        let product = ObjectId::new();
        let products = vec![doc! {
            "_id": product, "name": "bench product", "nameArabic": "منتج", "price": 10,
            "percentage": 1.5, "isActive": true,
        }];
        // The same buyers at every size, in the first block (whose customers, levels and
        // statuses are the same at every size): the same work, so only the collection's size
        // differs. Buyers spread over a larger forest would share fewer ancestors in a batch,
        // which is more work per job, not a cost of size.
        let mut pick = Rng(0xD1B5_4A32_D192_ED03);
        let mut order: Vec<usize> = (0..BLOCK).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, pick.below(i + 1));
        }
        order.truncate(FOREST_CHECKOUTS);
        let carts = order
            .iter()
            .map(|&i| {
                doc! {
                    "_id": ObjectId::new(), "customerId": ids[i],
                    "items": [{"productId": product.to_hex(), "productName": "bench product",
                               "price": 10, "quantity": 1}],
                    "totalAmount": 10, "totalItems": 1,
                }
            })
            .collect();
        let body = json!({"deliveryAddress": "1 Bench Street"}).to_string();
        Workload {
            name: format!("{size} customers (generated forest)"),
            key: format!("forest{}k", size / 1_000),
            customers,
            products,
            carts,
            checkouts: order.iter().map(|&i| (ids[i], body.clone())).collect(),
            depths: order.iter().map(|&i| forest.depth[i]).collect(),
        }
    }

    /// A fresh database holding the workload (and our indexes).
    async fn seed(&self, uri: &str, label: &str) -> (Store, String) {
        let database = format!("bench_{label}_{}", ObjectId::new().to_hex());
        let store = Store::connect(&StoreConfig {
            uri: uri.to_owned(),
            database: database.clone(),
            max_pool_size: None,
        })
        .await
        .unwrap();
        store.ensure_indexes().await.unwrap();
        for (collection, docs) in [
            ("customers", &self.customers),
            ("products", &self.products),
            ("carts", &self.carts),
        ] {
            for chunk in docs.chunks(1_000) {
                store
                    .database()
                    .collection::<Document>(collection)
                    .insert_many(chunk)
                    .await
                    .unwrap();
            }
        }
        (store, database)
    }

    /// Customers a batch of `batch` consecutive checkouts reads (each buyer and ancestor once),
    /// per job: the work a batch needs, which falls as chains share more ancestors.
    fn chain_members_per_job(&self, batch: usize) -> f64 {
        let parent: HashMap<ObjectId, Option<ObjectId>> = self
            .customers
            .iter()
            .map(|c| {
                (
                    c.get_object_id("_id").unwrap(),
                    c.get_object_id("parentCustomer").ok(),
                )
            })
            .collect();
        let mut members = 0;
        for checkouts in self.checkouts.chunks(batch) {
            let mut seen = std::collections::HashSet::new();
            for (buyer, _) in checkouts {
                let mut current = Some(*buyer);
                while let Some(id) = current {
                    if !seen.insert(id) {
                        break;
                    }
                    current = parent.get(&id).copied().flatten();
                }
            }
            members += seen.len();
        }
        members as f64 / self.checkouts.len() as f64
    }

    fn mean_depth(&self) -> f64 {
        self.depths.iter().sum::<usize>() as f64 / self.depths.len() as f64
    }
}

/// The settings every function instance of the benchmark gets.
fn function_env<'a>(uri: &'a str, database: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("MONGODB_URI", uri),
        ("MONGODB_DATABASE", database),
        ("LOCAL_JWT_SECRET", LOCAL_JWT_SECRET),
        ("REWARD_POLICY", POLICY_JSON),
        ("WORKER_CONCURRENCY", "1"),
        ("RUST_LOG", "warn"),
    ]
}

fn release(instances: usize) -> EmulatorOptions {
    EmulatorOptions {
        release: true,
        concurrency: Some(instances),
        timeout_seconds: Some(900),
    }
}

const READY: Duration = Duration::from_secs(900);

/// A worker emulator with `instances` warm instances (each has drained the empty queue).
async fn warm_workers(uri: &str, database: &str, instances: usize) -> LambdaEmulator {
    let mut worker = LambdaEmulator::start_with(release(instances), &function_env(uri, database));
    let scheduled = read_json("infra/events/worker-scheduled.json");
    worker
        .wait_until_invocable("reward-worker", &scheduled, READY, |status, body| {
            status == 200 && body.contains("\"claimed\":0")
        })
        .await;
    worker
}

/// What the checkouts over HTTP measured.
struct CheckoutFigures {
    /// Of the checkouts answered 200, sorted.
    latencies: Vec<Duration>,
    refused: usize,
    hwm_kb: u64,
}

/// The workload's checkouts in order through the release checkout binary, one at a time.
async fn http_checkouts(uri: &str, database: &str, work: &Workload) -> CheckoutFigures {
    let mut checkouts = LambdaEmulator::start_with(release(1), &function_env(uri, database));
    let probe = checkouts.function_url("checkout", &format!("{CHECKOUT_PATH}/{}", ObjectId::new()));
    checkouts
        .wait_until_ready(&probe, READY, |status, body| {
            status == 401 && body.contains("UNAUTHENTICATED")
        })
        .await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(900))
        .build()
        .unwrap();
    let url = checkouts.function_url("checkout", CHECKOUT_PATH);
    let mut latencies = Vec::with_capacity(work.checkouts.len());
    let mut refused = 0;
    for (i, (buyer, body)) in work.checkouts.iter().enumerate() {
        let started = Instant::now();
        let response = http
            .post(&url)
            .bearer_auth(local_token(*buyer))
            .header("idempotency-key", format!("bench-{i:04}"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let elapsed = started.elapsed();
        match status {
            200 => latencies.push(elapsed),
            // The buyers the original could not charge either (the app's code and status).
            400 if text.contains("INSUFFICIENT_BALANCE") => refused += 1,
            _ => panic!("checkout {i} answered {status}: {text}"),
        }
    }
    latencies.sort();
    let hwm_kb = checkouts
        .function_pids("checkout")
        .iter()
        .filter_map(|&p| peak_rss_kb(p))
        .max()
        .unwrap_or(0);
    CheckoutFigures {
        latencies,
        refused,
        hwm_kb,
    }
}

/// The workload's checkouts in order through the store, as the checkout binary runs them
/// (untimed: they only make the jobs of a second database).
async fn direct_checkouts(store: &Store, work: &Workload) -> usize {
    let policy = policy();
    let mut queued = 0;
    for (i, (buyer, body)) in work.checkouts.iter().enumerate() {
        let request = CheckoutRequest::parse(body.as_bytes()).unwrap();
        let key = IdempotencyKey::parse(&format!("bench-{i:04}")).unwrap();
        let done = store
            .checkouts()
            .checkout(&CheckoutCommand {
                customer_id: *buyer,
                request: &request,
                idempotency_key: Some(&key),
                policy: &policy,
                economy: mall_store::testing::checkout::Economy::Split,
                job_max_attempts: 3,
            })
            .await;
        match done {
            Ok(_) => queued += 1,
            Err(mall_store::CheckoutError::InsufficientBalance { .. }) => {}
            Err(other) => panic!("checkout {i}: {other}"),
        }
    }
    queued
}

/// What a drain by worker instances measured.
#[derive(Default)]
struct DrainFigures {
    jobs: usize,
    wall: Duration,
    invocations: usize,
    batches: usize,
    conflicts: usize,
    splits: usize,
    released: usize,
    /// Batches cut smaller for time, waits for the batches' turn, claims lost to an expired
    /// lease, and the longest batch transaction (from the workers' own summaries).
    cuts: usize,
    turn_waits: usize,
    lost_leases: usize,
    longest_batch_ms: u64,
    hwm_kb: u64,
    instances: usize,
    /// Customers whose wallet or level differs from the rules replayed in commit order.
    ledger_mismatches: usize,
    ledger_checked: usize,
}

impl DrainFigures {
    fn jobs_per_sec(&self) -> f64 {
        self.jobs as f64 / self.wall.as_secs_f64()
    }

    fn per_100(&self, n: usize) -> f64 {
        100.0 * n as f64 / self.jobs as f64
    }
}

/// Every job of the queue drained by the warm `worker` instances, invoked at once and again
/// until all `jobs` are completed.
async fn drain_by(worker: &LambdaEmulator, instances: usize, jobs: usize) -> DrainFigures {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(900))
        .build()
        .unwrap();
    let scheduled = read_json("infra/events/worker-scheduled.json");
    let invoke = worker.invoke_url("reward-worker");
    let completed = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut lanes = tokio::task::JoinSet::new();
    for _ in 0..instances {
        let (http, invoke, scheduled) = (http.clone(), invoke.clone(), scheduled.clone());
        let completed = Arc::clone(&completed);
        lanes.spawn(async move {
            let mut totals = DrainFigures::default();
            while completed.load(Ordering::SeqCst) < jobs {
                assert!(
                    started.elapsed() < Duration::from_secs(600),
                    "the workers did not drain {jobs} jobs in 10 minutes"
                );
                let response = http.post(&invoke).json(&scheduled).send().await.unwrap();
                assert_eq!(response.status(), 200, "{:?}", response.text().await);
                let summary: Value = response.json().await.unwrap();
                assert_eq!(summary["failed"], json!(0), "a job died: {summary}");
                let count = |field: &str| summary[field].as_u64().unwrap_or(0) as usize;
                completed.fetch_add(count("completed"), Ordering::SeqCst);
                totals.invocations += 1;
                totals.batches += count("batches");
                totals.conflicts += count("conflicts");
                totals.splits += count("splits");
                totals.released += count("retried");
                totals.cuts += count("cuts");
                totals.turn_waits += count("turnWaits");
                totals.lost_leases += count("lostLease");
                totals.longest_batch_ms = totals
                    .longest_batch_ms
                    .max(summary["longestBatchMs"].as_u64().unwrap_or(0));
                if count("claimed") == 0 {
                    // Jobs released under contention are due again within a second or two.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            totals
        });
    }
    let mut figures = DrainFigures::default();
    while let Some(lane) = lanes.join_next().await {
        let lane = lane.unwrap();
        figures.invocations += lane.invocations;
        figures.batches += lane.batches;
        figures.conflicts += lane.conflicts;
        figures.splits += lane.splits;
        figures.released += lane.released;
        figures.cuts += lane.cuts;
        figures.turn_waits += lane.turn_waits;
        figures.lost_leases += lane.lost_leases;
        figures.longest_batch_ms = figures.longest_batch_ms.max(lane.longest_batch_ms);
    }
    figures.wall = started.elapsed();
    figures.jobs = jobs;
    let pids = worker.function_pids("reward-worker");
    figures.instances = pids.len();
    figures.hwm_kb = pids
        .iter()
        .filter_map(|&p| peak_rss_kb(p))
        .max()
        .unwrap_or(0);
    figures
}

async fn all_customers(store: &Store) -> Vec<CustomerDoc> {
    store
        .customers()
        .find(doc! {})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

/// The pure rules replayed on `before` (the customers as the drain found them), job by job in
/// commit order (`completedAt`, then claim order), against the customers now: how many differ
/// in wallet or level, of how many.
async fn ledger_check(store: &Store, before: &[CustomerDoc]) -> (usize, usize) {
    let mut view = ForestView::new();
    let mut directs: HashMap<ObjectId, LevelCounts> = HashMap::new();
    for c in before {
        if let Some(parent) = c.parent_customer {
            directs.entry(parent).or_default().add(c.level_letter, 1);
        }
    }
    let mut wallets: HashMap<ObjectId, MilliPoints> = HashMap::new();
    for c in before {
        view.insert(
            c.id,
            ViewMember {
                parent: c.parent_customer,
                level: c.level_letter,
                active: c.referral_status == REFERRAL_ACTIVE,
                verified: c.is_verified,
                directs: directs.get(&c.id).copied().unwrap_or_default(),
            },
        );
        wallets.insert(c.id, c.points);
    }
    let jobs: Vec<CheckoutJobDoc> = store
        .checkout_jobs()
        .find(doc! {"status": "completed"})
        .sort(doc! {"completedAt": 1, "runAfter": 1, "_id": 1})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    for job in &jobs {
        let policy = job.payload.paying_policy().unwrap();
        let plan = view
            .plan(&policy, job.payload.reward_points, &job.customer_id)
            .unwrap();
        view.apply(&plan);
        for payout in &plan.payouts {
            let wallet = wallets.get_mut(&payout.id).unwrap();
            *wallet = wallet.checked_add(payout.amount).unwrap();
        }
    }
    let after = all_customers(store).await;
    let mismatches = after
        .iter()
        .filter(|c| {
            Some(&c.points) != wallets.get(&c.id)
                || Some(c.level_letter) != view.get(&c.id).map(|m| m.level)
        })
        .count();
    (mismatches, after.len())
}

/// One workload measured: checkouts over HTTP and one worker instance on one database; three
/// worker instances on a second.
struct WorkloadFigures {
    checkouts: CheckoutFigures,
    one: DrainFigures,
    three: DrainFigures,
}

async fn measure(uri: &str, work: &Workload, label: &str) -> WorkloadFigures {
    eprintln!(
        "bench: {}: {} checkouts over HTTP",
        work.name,
        work.checkouts.len()
    );
    let (store, database) = work.seed(uri, &format!("{label}_1")).await;
    let worker = warm_workers(uri, &database, 1).await;
    let checkouts = http_checkouts(uri, &database, work).await;
    let jobs = work.checkouts.len() - checkouts.refused;
    let before = all_customers(&store).await;
    eprintln!("bench: {}: one worker draining {jobs} jobs", work.name);
    let mut one = drain_by(&worker, 1, jobs).await;
    drop(worker);
    (one.ledger_mismatches, one.ledger_checked) = ledger_check(&store, &before).await;
    // The three workers' run finds the server as this one did: one database of this size.
    store.database().drop().await.unwrap();

    let (store, database) = work.seed(uri, &format!("{label}_3")).await;
    let worker = warm_workers(uri, &database, WORKERS).await;
    let queued = direct_checkouts(&store, work).await;
    assert_eq!(queued, jobs, "the same checkouts succeed in both databases");
    let before = all_customers(&store).await;
    eprintln!(
        "bench: {}: {WORKERS} workers draining {jobs} jobs",
        work.name
    );
    let mut three = drain_by(&worker, WORKERS, jobs).await;
    drop(worker);
    (three.ledger_mismatches, three.ledger_checked) = ledger_check(&store, &before).await;
    WorkloadFigures {
        checkouts,
        one,
        three,
    }
}

/// Jobs per second of one in-process worker on the fixture, per batch size of [`SWEEP`].
async fn batch_size_sweep(uri: &str, work: &Workload) -> Vec<(usize, f64)> {
    let mut rates = Vec::new();
    for batch_size in SWEEP {
        let (store, _) = work.seed(uri, &format!("sweep{batch_size}")).await;
        let jobs = direct_checkouts(&store, work).await;
        let limits = DrainLimits {
            concurrency: 1,
            batch_size,
            ..DrainLimits::default()
        };
        let started = Instant::now();
        let summary = reward_worker::drain_queue(
            &store,
            QueueSettings::default(),
            limits,
            Arc::new(SystemClock),
        )
        .await;
        let wall = started.elapsed();
        assert_eq!(summary.completed, jobs, "{summary:?}");
        rates.push((batch_size, jobs as f64 / wall.as_secs_f64()));
        eprintln!(
            "bench: batch size {batch_size}: {:.1} jobs/s",
            jobs as f64 / wall.as_secs_f64()
        );
    }
    rates
}

/// What the in-process command monitoring saw.
struct CommandCounts {
    per_checkout: usize,
    checkout_names: Vec<String>,
    /// Per depth of [`COUNT_DEPTHS`]: commands of one batch of [`COUNT_BATCH`] jobs (claim
    /// included) in a cold environment, of which learning the chains' links, and in a warm one
    /// (the same buyers again); of one job alone (warm).
    per_batch: Vec<usize>,
    learning: Vec<usize>,
    per_batch_warm: Vec<usize>,
    per_single_job: Vec<usize>,
    batch_names: Vec<String>,
}

/// One checkout of the buyer's cart under the benchmark's policy (a fixed split).
async fn checkout_split(store: &Store, buyer: ObjectId, key: &IdempotencyKey) {
    store
        .checkouts()
        .checkout(&CheckoutCommand {
            customer_id: buyer,
            request: &CheckoutRequest::default(),
            idempotency_key: Some(key),
            policy: &policy(),
            economy: mall_store::testing::checkout::Economy::Split,
            job_max_attempts: 3,
        })
        .await
        .unwrap();
}

/// Batches of [`COUNT_BATCH`] jobs, and single jobs, by buyers whose chains are exactly 5, 50
/// and 500 deep, through a store whose every command is counted: the same store code the
/// binaries run, so the same commands (the handlers add none).
async fn count_commands(uri: &str) -> CommandCounts {
    let database = format!("bench_count_{}", ObjectId::new().to_hex());
    let (store, log) = counted_store_on(uri, &database).await;
    store.ensure_indexes().await.unwrap();
    // A line c0 ← c1 ← … ← c500 (c_k has k ancestors), each with one more direct at B.
    let now = DateTime::now();
    let line: Vec<ObjectId> = (0..=MAX_DEPTH).map(|_| ObjectId::new()).collect();
    let customer = |id: ObjectId, parent: Option<ObjectId>, level: &str| {
        doc! {"_id": id, "username": id.to_hex(), "email": format!("{id}@example.com"),
        "parentCustomer": parent.map_or(Bson::Null, Bson::ObjectId),
        "levelLetter": level, "referralStatus": REFERRAL_ACTIVE, "isVerified": true,
        "points": 100_000, "createdAt": now, "updatedAt": now}
    };
    let mut docs: Vec<Document> = line
        .iter()
        .enumerate()
        .map(|(k, &id)| {
            customer(
                id,
                k.checked_sub(1).map(|p| line[p]),
                ["A", "C", "E", "G", "J"][k % 5],
            )
        })
        .collect();
    docs.extend(
        line.iter()
            .map(|&p| customer(ObjectId::new(), Some(p), "B")),
    );
    let buyers: Vec<Vec<ObjectId>> = COUNT_DEPTHS
        .iter()
        .map(|_| (0..=COUNT_BATCH).map(|_| ObjectId::new()).collect())
        .collect();
    for (d, depth) in COUNT_DEPTHS.iter().enumerate() {
        docs.extend(
            buyers[d]
                .iter()
                .map(|&b| customer(b, Some(line[depth - 1]), "A")),
        );
    }
    store
        .database()
        .collection::<Document>("customers")
        .insert_many(docs)
        .await
        .unwrap();
    let product = mall_testkit::seed::product(&store, "10", "1", true).await;
    let mut counts = CommandCounts {
        per_checkout: 0,
        checkout_names: vec![],
        per_batch: vec![],
        learning: vec![],
        per_batch_warm: vec![],
        per_single_job: vec![],
        batch_names: vec![],
    };
    let drain = |batch_size| DrainLimits {
        concurrency: 1,
        batch_size,
        max_jobs: batch_size,
        ..DrainLimits::default()
    };
    for (d, depth) in COUNT_DEPTHS.iter().enumerate() {
        // A cold environment: no link known.
        store.links().clear();
        for (k, &buyer) in buyers[d].iter().take(COUNT_BATCH).enumerate() {
            mall_testkit::seed::fill_cart(&store, buyer, &[(product, 1)]).await;
            let key = IdempotencyKey::parse(&format!("count-{depth}-{k}")).unwrap();
            log.clear();
            checkout_split(&store, buyer, &key).await;
            counts.per_checkout = counts.per_checkout.max(log.count());
            counts.checkout_names = log.names();
            if k + 1 == COUNT_BATCH {
                log.clear();
                let summary = reward_worker::drain_queue(
                    &store,
                    QueueSettings::default(),
                    drain(COUNT_BATCH),
                    Arc::new(SystemClock),
                )
                .await;
                assert_eq!(summary.completed, COUNT_BATCH, "depth {depth}: {summary:?}");
                counts.per_batch.push(log.count());
                counts.learning.push(log.learning());
            }
        }
        // Warm: the same buyers again.
        for (k, &buyer) in buyers[d].iter().take(COUNT_BATCH).enumerate() {
            mall_testkit::seed::fill_cart(&store, buyer, &[(product, 1)]).await;
            let key = IdempotencyKey::parse(&format!("count-{depth}-{k}-again")).unwrap();
            checkout_split(&store, buyer, &key).await;
        }
        log.clear();
        let summary = reward_worker::drain_queue(
            &store,
            QueueSettings::default(),
            drain(COUNT_BATCH),
            Arc::new(SystemClock),
        )
        .await;
        assert_eq!(summary.completed, COUNT_BATCH, "depth {depth}: {summary:?}");
        counts.per_batch_warm.push(log.count());
        counts.batch_names = log.names();
        // One job alone: its buyer is new to the environment, its parent's chain known.
        let single = buyers[d][COUNT_BATCH];
        mall_testkit::seed::fill_cart(&store, single, &[(product, 1)]).await;
        let key = IdempotencyKey::parse(&format!("count-{depth}-single")).unwrap();
        checkout_split(&store, single, &key).await;
        log.clear();
        let summary = reward_worker::drain_queue(
            &store,
            QueueSettings::default(),
            drain(1),
            Arc::new(SystemClock),
        )
        .await;
        assert_eq!(summary.completed, 1, "depth {depth}: {summary:?}");
        counts.per_single_job.push(log.count());
    }
    // Every counted job walked its whole chain.
    let cut: u64 = store
        .purchases()
        .count_documents(doc! {"type": "purchase", "rewardLog.missingParent": {"$ne": null}})
        .await
        .unwrap();
    assert_eq!(cut, 0, "a counted job did not walk its whole chain");
    counts
}

/// `VmHWM` (peak resident set) of a process, in kB.
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Spawns a release binary with a runtime API of our own and returns the time from the spawn to
/// its first `GET /2018-06-01/runtime/invocation/next` (it is initialised and waits for work).
async fn start_to_ready(binary: &Path, uri: &str, database: &str) -> Duration {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap().to_string();
    let name = binary.file_name().unwrap().to_string_lossy().into_owned();
    let mut command = Command::new(binary);
    for variable in [
        "REWARD_POLICY",
        "EVENT_BUS_NAME",
        "RUST_LOG",
        "WORKER_CONCURRENCY",
    ] {
        command.env_remove(variable);
    }
    command
        .env("AWS_LAMBDA_RUNTIME_API", &api)
        .env("AWS_LAMBDA_FUNCTION_NAME", &name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("MONGODB_URI", uri)
        .env("MONGODB_DATABASE", database)
        .env("LOCAL_JWT_SECRET", LOCAL_JWT_SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let started = Instant::now();
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    let ready = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buffer = [0u8; 1024];
            while !request.windows(2).any(|w| w == b"\r\n") {
                let n = socket.read(&mut buffer).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buffer[..n]);
            }
            if request.starts_with(b"GET /2018-06-01/runtime/invocation/next") {
                return started.elapsed();
            }
        }
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    ready.unwrap_or_else(|_| {
        panic!(
            "{} did not ask for an invocation within 30 s",
            binary.display()
        )
    })
}

/// A built arm64 Lambda binary: its size, and whether it is stripped and really aarch64.
struct Artifact {
    function: &'static str,
    bytes: u64,
    stripped: bool,
    aarch64: bool,
}

fn artifact(lambda_dir: &Path, function: &'static str) -> Artifact {
    let path = lambda_dir.join(function).join("bootstrap");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (infra/bench.sh builds it as sam build does: infra/check-deployed-builds.py)",
            path.display()
        )
    });
    const EM_AARCH64: u16 = 183;
    let machine = bytes.get(18..20).map(|b| u16::from_le_bytes([b[0], b[1]]));
    Artifact {
        function,
        bytes: bytes.len() as u64,
        stripped: !bytes.windows(8).any(|w| w == b".symtab\0"),
        aarch64: bytes.starts_with(b"\x7fELF") && machine == Some(EM_AARCH64),
    }
}

fn mark(met: bool) -> &'static str {
    if met {
        "✓"
    } else {
        "✗"
    }
}

/// Environment variables `cargo bench` sets for the package it runs. A build script reruns when
/// one changes (ring's does on `CARGO_MANIFEST_DIR`), so the emulator's `cargo run` would rebuild
/// the functions that `infra/bench.sh` has just built, and the next plain build again.
fn is_cargo_package_variable(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || matches!(
            name,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "CARGO_RUSTC_CURRENT_DIR"
        )
}

fn main() {
    // Before any thread exists: nothing else reads the environment concurrently.
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(is_cargo_package_variable) {
            std::env::remove_var(&name);
        }
    }
    let uri = std::env::var("MALL_BENCH_MONGODB_URI").expect(
        "MALL_BENCH_MONGODB_URI is not set: run `make bench` (infra/bench.sh starts the database)",
    );
    let lambda_dir = std::env::var_os("MALL_BENCH_LAMBDA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("lambda"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let interrupted = runtime.block_on(async {
        let mut terminate = signal(SignalKind::terminate()).unwrap();
        let mut interrupt = signal(SignalKind::interrupt()).unwrap();
        // Interrupted, the run is dropped: its emulators stop their function instances.
        tokio::select! {
            () = run(&uri, &lambda_dir) => false,
            _ = terminate.recv() => true,
            _ = interrupt.recv() => true,
        }
    });
    if interrupted {
        eprintln!("bench: interrupted");
        std::process::exit(130);
    }
}

async fn run(uri: &str, lambda_dir: &Path) {
    let bench_started = Instant::now();
    let fixture = Workload::fixture();

    eprintln!(
        "bench: counting commands per checkout, per batch and per job at depths {COUNT_DEPTHS:?}"
    );
    let counts = count_commands(uri).await;
    eprintln!("bench: batch sizes {SWEEP:?} on the original's data, one in-process worker");
    let sweep = batch_size_sweep(uri, &fixture).await;
    let mut measured = vec![(measure(uri, &fixture, "2k").await, fixture)];
    for size in FOREST_SIZES {
        let forest = Workload::forest(size);
        let key = forest.key.clone();
        measured.push((measure(uri, &forest, &key).await, forest));
    }

    eprintln!("bench: start-to-ready of each binary, {INIT_RUNS} starts each");
    let (_, init_database) = measured[0].1.seed(uri, "init").await;
    let release_dir = target_dir().join("release");
    let mut init_ms = vec![];
    for function in FUNCTIONS {
        let mut samples = vec![];
        for _ in 0..INIT_RUNS {
            samples.push(start_to_ready(&release_dir.join(function), uri, &init_database).await);
        }
        samples.sort();
        let (low, high) = (samples[0], samples[samples.len() - 1]);
        init_ms.push((function, ms(median(samples)), ms(low), ms(high)));
    }
    let artifacts: Vec<Artifact> = FUNCTIONS.iter().map(|f| artifact(lambda_dir, f)).collect();

    // ---- the table ----
    let row = |label: &str, value: String, rest: String| {
        println!("{label:<52} {value:>12}  {rest}");
    };
    let server = std::env::var("MALL_BENCH_SERVER")
        .unwrap_or_else(|_| "the server at MALL_BENCH_MONGODB_URI".to_owned());
    println!();
    println!(
        "make bench: {server}, {} cores; the original's policy preset; WORKER_BATCH_SIZE={DEFAULT_BATCH_SIZE}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("{}", "-".repeat(110));
    let mut json_fields: Vec<(String, Value)> = vec![];
    for (figures, work) in &measured {
        let key = &work.key;
        let lat = &figures.checkouts.latencies;
        let p50 = ms(percentile(lat, 50.0));
        let p95 = ms(percentile(lat, 95.0));
        println!(
            "{}: {} checkouts ({} refused: insufficient points), buyers' mean chain depth {:.1}, \
             customers on a batch's chains per job {:.1}",
            work.name,
            work.checkouts.len(),
            figures.checkouts.refused,
            work.mean_depth(),
            work.chain_members_per_job(DEFAULT_BATCH_SIZE)
        );
        let original =
            (key == "2k").then_some((ORIGINAL_CHECKOUT_P50_2K, ORIGINAL_JOBS_PER_SEC_2K));
        row(
            "  checkout p50 / p95, release binary over HTTP",
            format!("{p50:.1} / {p95:.1} ms"),
            original.map_or(String::new(), |(p, _)| {
                format!(
                    "≤ {:.0} ms (half the original's {p:.0}) {}",
                    p / 2.0,
                    mark(p50 <= p / 2.0)
                )
            }),
        );
        for (label, drain) in [("1 worker", &figures.one), ("3 workers", &figures.three)] {
            let ledger = if drain.ledger_mismatches == 0 {
                format!("ledger exact ({} customers)", drain.ledger_checked)
            } else {
                format!(
                    "LEDGER: {} of {} customers differ",
                    drain.ledger_mismatches, drain.ledger_checked
                )
            };
            let target = original.map_or(String::new(), |(_, rate)| {
                format!(
                    "≥ {:.1} (5× the original's {rate}) {}   ",
                    rate * 5.0,
                    mark(drain.jobs_per_sec() >= rate * 5.0)
                )
            });
            row(
                &format!("  jobs/s, {label}"),
                format!("{:.1} /s", drain.jobs_per_sec()),
                format!(
                    "{target}{} jobs in {:.1} s, {} batches, {} invocations, {ledger}",
                    drain.jobs,
                    drain.wall.as_secs_f64(),
                    drain.batches,
                    drain.invocations,
                ),
            );
            row(
                &format!("    conflicts / splits / turn waits per 100 jobs, {label}"),
                format!(
                    "{:.1} / {:.1} / {:.1}",
                    drain.per_100(drain.conflicts),
                    drain.per_100(drain.splits),
                    drain.per_100(drain.turn_waits)
                ),
                format!(
                    "longest batch {} ms, cut for time {}, released {}, claims lost {}",
                    drain.longest_batch_ms, drain.cuts, drain.released, drain.lost_leases
                ),
            );
        }
        let ratio = figures.three.jobs_per_sec() / figures.one.jobs_per_sec();
        row(
            "  3 workers ÷ 1 worker",
            format!("{ratio:.2}×"),
            format!("≥ 1.0 {}", mark(ratio >= 1.0)),
        );
        json_fields.extend([
            (format!("checkout_p50_ms_{key}"), json!(round2(p50))),
            (format!("checkout_p95_ms_{key}"), json!(round2(p95))),
            (
                format!("jobs_per_sec_1w_{key}"),
                json!(round2(figures.one.jobs_per_sec())),
            ),
            (
                format!("jobs_per_sec_3w_{key}"),
                json!(round2(figures.three.jobs_per_sec())),
            ),
            (
                format!("conflicts_per_100_3w_{key}"),
                json!(round2(figures.three.per_100(figures.three.conflicts))),
            ),
            (
                format!("longest_batch_ms_{key}"),
                json!(figures
                    .one
                    .longest_batch_ms
                    .max(figures.three.longest_batch_ms)),
            ),
            (
                format!("lost_claims_{key}"),
                json!(figures.one.lost_leases + figures.three.lost_leases),
            ),
            (
                format!("ledger_exact_{key}"),
                json!(figures.one.ledger_mismatches == 0 && figures.three.ledger_mismatches == 0),
            ),
        ]);
    }

    // Issue 20's figures, side by side.
    let by_key = |key: &str| &measured.iter().find(|(_, w)| w.key == key).unwrap().0;
    let (small, large) = (by_key("forest2k"), by_key("forest100k"));
    println!("flat in size, never slower with more workers (generated forests, one depth profile)");
    let size_ratio = large.one.jobs_per_sec() / small.one.jobs_per_sec();
    row(
        "  1 worker, jobs/s at 100,000 ÷ at 2,000",
        format!("{size_ratio:.2}"),
        format!(
            "≥ {TARGET_SIZE_RATIO} {}",
            mark(size_ratio >= TARGET_SIZE_RATIO)
        ),
    );
    let p50_of = |f: &WorkloadFigures| ms(percentile(&f.checkouts.latencies, 50.0));
    let checkout_ratio = p50_of(large) / p50_of(small);
    row(
        "  checkout p50 at 100,000 ÷ at 2,000",
        format!("{checkout_ratio:.2}"),
        format!(
            "≤ {TARGET_CHECKOUT_RATIO} {}",
            mark(checkout_ratio <= TARGET_CHECKOUT_RATIO)
        ),
    );
    let longest = measured
        .iter()
        .map(|(f, _)| f.one.longest_batch_ms.max(f.three.longest_batch_ms))
        .max()
        .unwrap_or(0);
    row(
        "  longest batch transaction, any run",
        format!("{longest} ms"),
        format!(
            "≤ {TARGET_LONGEST_BATCH_MS} ms {}",
            mark(longest <= TARGET_LONGEST_BATCH_MS)
        ),
    );
    let lost: usize = measured
        .iter()
        .map(|(f, _)| f.one.lost_leases + f.three.lost_leases)
        .sum();
    row(
        "  claims lost to an expired lease, any run",
        lost.to_string(),
        format!("= 0 {}", mark(lost == 0)),
    );
    let rss_100k = large.one.hwm_kb.max(large.three.hwm_kb) as f64 / 1024.0;
    row(
        "  reward-worker peak RSS at 100,000",
        format!("{rss_100k:.1} MiB"),
        format!(
            "≤ {TARGET_RSS_MB_100K} MiB {}",
            mark(rss_100k <= TARGET_RSS_MB_100K)
        ),
    );
    json_fields.extend([
        (
            "size_ratio_1w_100k_2k".to_owned(),
            json!(round2(size_ratio)),
        ),
        (
            "checkout_p50_ratio_100k_2k".to_owned(),
            json!(round2(checkout_ratio)),
        ),
        ("longest_batch_ms".to_owned(), json!(longest)),
        ("lost_claims".to_owned(), json!(lost)),
        ("worker_rss_mb_100k".to_owned(), json!(round2(rss_100k))),
    ]);

    println!("jobs/s by WORKER_BATCH_SIZE, the original's data, one in-process worker");
    for (batch_size, rate) in &sweep {
        row(
            &format!("  batch of {batch_size}"),
            format!("{rate:.1} /s"),
            String::new(),
        );
    }
    println!("database commands, in-process store code with command monitoring (claim included)");
    row(
        "  per checkout",
        counts.per_checkout.to_string(),
        format!(
            "≤ {TARGET_CHECKOUT_CMDS} {}",
            mark(counts.per_checkout <= TARGET_CHECKOUT_CMDS)
        ),
    );
    let same = counts
        .per_batch_warm
        .iter()
        .all(|&n| n == counts.per_batch_warm[0]);
    for (i, depth) in COUNT_DEPTHS.iter().enumerate() {
        let per_job = counts.per_batch_warm[i] as f64 / COUNT_BATCH as f64;
        // Round trips of the batch itself: the claim's and the transaction's (the commands
        // counted), learning the links cold.
        let cold = counts.per_batch[i];
        row(
            &format!("  depth {depth}: batch of {COUNT_BATCH} cold (learning) / warm"),
            format!("{cold} ({}) / {}", counts.learning[i], counts.per_batch_warm[i]),
            format!(
                "cold ≤ {TARGET_BATCH_ROUND_TRIPS_COLD} {}; warm the same at every depth, ≤ {TARGET_CMDS_PER_JOB} a job {}; \
                 customers read by _id {}; one job alone: {}",
                mark(cold <= TARGET_BATCH_ROUND_TRIPS_COLD),
                mark(per_job <= TARGET_CMDS_PER_JOB && same),
                COUNT_BATCH + depth,
                counts.per_single_job[i]
            ),
        );
        json_fields.push((format!("cmds_per_batch_cold_d{depth}"), json!(cold)));
        json_fields.push((
            format!("cmds_per_batch_d{depth}"),
            json!(counts.per_batch_warm[i]),
        ));
        json_fields.push((format!("cmds_per_job_d{depth}"), json!(round2(per_job))));
    }
    println!("    checkout: {}", counts.checkout_names.join(" "));
    println!("    batch:    {}", counts.batch_names.join(" "));
    println!(
        "start to ready: spawn to first GET /runtime/invocation/next, median of {INIT_RUNS} \
         (connect + ensure indexes included)"
    );
    for (function, median_ms, low, high) in &init_ms {
        let target = if *function == "retry-failed" {
            String::new()
        } else {
            format!(
                "≤ {TARGET_INIT_MS} ms {}   ",
                mark(*median_ms <= TARGET_INIT_MS)
            )
        };
        row(
            &format!("  {function}"),
            format!("{median_ms:.2} ms"),
            format!("{target}min {low:.2}, max {high:.2}"),
        );
    }
    println!("arm64 binaries as sam build makes them, checked (infra/check-deployed-builds.py)");
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    for a in &artifacts {
        row(
            &format!("  {}", a.function),
            format!("{:.2} MiB", mib(a.bytes)),
            format!(
                "≤ 8 MiB {}   {} bytes, {}, {}",
                mark(a.bytes <= TARGET_BINARY_BYTES),
                a.bytes,
                if a.stripped {
                    "stripped"
                } else {
                    "NOT stripped"
                },
                if a.aarch64 { "aarch64" } else { "NOT aarch64" },
            ),
        );
    }
    println!("peak resident memory (VmHWM)");
    let worker_mb = measured
        .iter()
        .flat_map(|(f, _)| [f.one.hwm_kb, f.three.hwm_kb])
        .max()
        .unwrap_or(0) as f64
        / 1024.0;
    row(
        "  reward-worker, largest instance after its drains (any size)",
        format!("{worker_mb:.1} MiB"),
        format!("≤ {TARGET_RSS_MB} MiB {}", mark(worker_mb <= TARGET_RSS_MB)),
    );
    let checkout_mb = measured
        .iter()
        .map(|(f, _)| f.checkouts.hwm_kb)
        .max()
        .unwrap_or(0) as f64
        / 1024.0;
    row(
        "  checkout, after its checkouts",
        format!("{checkout_mb:.1} MiB"),
        String::new(),
    );
    row(
        "harness wall time",
        format!("{:.1} s", bench_started.elapsed().as_secs_f64()),
        String::new(),
    );
    println!();

    let binary_max = artifacts.iter().map(|a| a.bytes).max().unwrap();
    json_fields.extend([
        ("cmds_per_checkout".to_owned(), json!(counts.per_checkout)),
        ("init_ms_checkout".to_owned(), json!(round2(init_ms[0].1))),
        ("init_ms_worker".to_owned(), json!(round2(init_ms[1].1))),
        ("binary_bytes_max".to_owned(), json!(binary_max)),
        ("worker_rss_mb".to_owned(), json!(round2(worker_mb))),
    ]);
    let ledger_ok = measured
        .iter()
        .all(|(f, _)| f.one.ledger_mismatches == 0 && f.three.ledger_mismatches == 0);
    let line: Vec<String> = json_fields
        .iter()
        .map(|(k, v)| format!("\"{k}\": {v}"))
        .collect();
    println!("{{{}}}", line.join(", "));
    assert!(ledger_ok, "a ledger is not exact (see the table)");
}
