//! `make bench`: the whole system measured the way it runs. On a referral forest of 10,000
//! customers (chains up to 500 deep) in a local SecantusDB, or the server `MALL_BENCH_MONGODB_URI`
//! names: checkout latency and throughput through the real release `checkout` binary under
//! `cargo lambda watch`; one real `reward-worker`
//! (one instance, under an emulator of its own) draining 1,000 jobs, and its peak memory; the
//! database commands of one checkout and of one job at chain depths 5, 50 and 500 (in-process, by
//! command monitoring); each binary's start-to-ready time; the stripped arm64 binaries' sizes.
//!
//! Run by `infra/bench.sh`, which starts the database (`MALL_BENCH_MONGODB_URI`), builds the
//! release and arm64 binaries, then runs this executable itself (not through `cargo bench`). It
//! prints a table, then one JSON object as the last line of stdout; progress goes to stderr. A
//! benchmark run, not a test: it exits non-zero only when something failed, never because a
//! figure misses its target (the table marks those).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mall_domain::checkout::{CheckoutRequest, IdempotencyKey};
use mall_domain::{Level, RewardPolicy};
use mall_store::bson::{doc, oid::ObjectId, DateTime};
use mall_store::documents::{CartDoc, CartItemDoc, CustomerDoc, REFERRAL_ACTIVE};
use mall_store::drain::{DrainLimits, SystemClock};
use mall_store::queue::QueueSettings;
use mall_store::{CheckoutCommand, Store, StoreConfig};
use mall_testkit::auth::{local_token, LOCAL_JWT_SECRET};
use mall_testkit::db::counted_store_on;
use mall_testkit::emulator::{read_json, workspace_root, EmulatorOptions, LambdaEmulator};
use mall_testkit::seed;
use mall_testkit::stats::percentile;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::signal::unix::{signal, SignalKind};

const CUSTOMERS: usize = 10_000;
/// The longest chain: the customer at the end of the spine has this many ancestors.
const MAX_DEPTH: usize = 500;
/// Chain depths (ancestors above the buyer) at which commands are counted.
const COUNT_DEPTHS: [usize; 3] = [5, 50, 500];
/// Counted checkout + job pairs per depth.
const COUNT_REPEATS: usize = 2;
const WALLET: &str = "1000000";

/// Warm-up checkouts: sequential ones, then one per client at once (so that every instance the
/// emulator started has served before the measured runs).
const WARM_UP_SEQUENTIAL: usize = 12;
const CLIENTS: usize = 8;
const SEQUENTIAL: usize = 300;
const PER_CLIENT: usize = 85;
/// Every checkout above queues one job; the worker then drains them all. The buyers are distinct,
/// chosen at random, so their chains are as deep as the forest's usually are.
const JOBS: usize = WARM_UP_SEQUENTIAL + CLIENTS + SEQUENTIAL + CLIENTS * PER_CLIENT;
/// `WORKER_CONCURRENCY` of the drained worker (one job in flight), unless
/// `MALL_BENCH_WORKER_CONCURRENCY` says otherwise. Not the deployed 4: the local server runs one
/// command at a time, and jobs in one tree write the same ancestors, so on it 4 in flight drain
/// about three times slower (conflicts, released jobs) and `make bench` would outlast 10 minutes.
const WORKER_CONCURRENCY: usize = 1;
/// Starts of each binary for its start-to-ready time (the median is reported).
const INIT_RUNS: usize = 10;

const CHECKOUT_PATH: &str = "/api/cart/checkout";
const CHECKOUT_BODY: &str = r#"{"deliveryAddress": "1 Bench Street"}"#;
const FUNCTIONS: [&str; 3] = ["checkout", "reward-worker", "retry-failed"];

/// The targets of issue 7.
const TARGET_CHECKOUT_CMDS: usize = 6;
const TARGET_JOB_CMDS: usize = 10;
const TARGET_INIT_MS: f64 = 30.0;
const TARGET_BINARY_BYTES: u64 = 8 * 1024 * 1024;
const TARGET_RSS_MB: f64 = 40.0;

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
    /// A spine `0 ← 1 ← … ← 500` (customer `k` has exactly `k` ancestors), then a bushy forest as
    /// referrals grow: each customer joins under a random earlier one of the forest, one in fifty
    /// is a new root, and one in two hundred joins under a random spine member instead (as a leaf,
    /// so deep chains stay rare). No chain is longer than the spine.
    fn generate(rng: &mut Rng) -> Forest {
        let mut parent = Vec::with_capacity(CUSTOMERS);
        let mut depth = Vec::with_capacity(CUSTOMERS);
        for k in 0..=MAX_DEPTH {
            parent.push(k.checked_sub(1));
            depth.push(k);
        }
        // Customers of the bushy part that others may join under.
        let mut referrers: Vec<usize> = Vec::with_capacity(CUSTOMERS);
        for i in MAX_DEPTH + 1..CUSTOMERS {
            let chosen = if i % 200 == 0 {
                Some(rng.below(MAX_DEPTH))
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

/// Inserts the forest's customers (mostly active and verified, levels mostly low), in batches.
async fn seed_forest(store: &Store, forest: &Forest, rng: &mut Rng) -> Vec<ObjectId> {
    let ids: Vec<ObjectId> = (0..CUSTOMERS).map(|_| ObjectId::new()).collect();
    let now = DateTime::now();
    let docs: Vec<CustomerDoc> = (0..CUSTOMERS)
        .map(|i| CustomerDoc {
            id: ids[i],
            name: Some(format!("bench{i}")),
            username: format!("bench{i}"),
            email: format!("bench{i}@example.com"),
            points: WALLET.parse().unwrap(),
            parent_customer: forest.parent[i].map(|p| ids[p]),
            level_letter: level(rng),
            referral_status: if rng.below(20) == 0 {
                "suspended".into()
            } else {
                REFERRAL_ACTIVE.into()
            },
            is_verified: rng.below(20) != 0,
            address: None,
            created_at: now,
            updated_at: now,
        })
        .collect();
    for batch in docs.chunks(1_000) {
        store.customers().insert_many(batch).await.unwrap();
    }
    ids
}

/// One line of `product` in the cart of each of `buyers`.
async fn seed_carts(store: &Store, buyers: &[ObjectId], product: ObjectId) {
    let carts: Vec<CartDoc> = buyers
        .iter()
        .map(|&customer_id| CartDoc {
            id: ObjectId::new(),
            customer_id,
            // As the app's cart screen writes it.
            items: vec![CartItemDoc {
                product_id: product.to_hex(),
                product_name: Some("bench product".into()),
                price: None,
                quantity: 1,
            }],
            total_amount: mall_domain::MilliPoints::ZERO,
            total_items: 1,
        })
        .collect();
    for batch in carts.chunks(1_000) {
        store.carts().insert_many(batch).await.unwrap();
    }
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

/// What the in-process command monitoring saw.
struct CommandCounts {
    per_checkout: Vec<usize>,
    checkout_names: Vec<String>,
    /// Per depth of [`COUNT_DEPTHS`]: the commands of each counted job, and its drain's time.
    per_job: Vec<Vec<usize>>,
    job_time: Vec<Vec<Duration>>,
    job_names: Vec<String>,
}

/// Checkouts and drains of one job each (claim included) by buyers whose chains are exactly 5,
/// 50 and 500 deep, through a store whose every command is counted: the same store code the
/// binaries run, so the same commands (the handler adds none to `Store::checkout`).
async fn count_commands(
    uri: &str,
    database: &str,
    plain: &Store,
    ids: &[ObjectId],
    product: ObjectId,
) -> CommandCounts {
    let (store, log) = counted_store_on(uri, database).await;
    let request = CheckoutRequest::parse(CHECKOUT_BODY.as_bytes()).unwrap();
    let policy = RewardPolicy::default();
    let limits = DrainLimits {
        concurrency: 1,
        max_jobs: 1,
        ..DrainLimits::default()
    };
    let mut counts = CommandCounts {
        per_checkout: vec![],
        checkout_names: vec![],
        per_job: vec![],
        job_time: vec![],
        job_names: vec![],
    };
    for depth in COUNT_DEPTHS {
        let buyer = ids[depth];
        let (mut jobs, mut times) = (vec![], vec![]);
        for repeat in 0..COUNT_REPEATS {
            seed::fill_cart(plain, buyer, &[(product, 1)]).await;
            let key = IdempotencyKey::parse(&format!("bench-count-{depth}-{repeat}")).unwrap();
            log.clear();
            let receipt = store
                .checkout(&CheckoutCommand {
                    customer_id: buyer,
                    request: &request,
                    idempotency_key: Some(&key),
                    policy: &policy,
                    job_max_attempts: 3,
                })
                .await
                .unwrap();
            counts.per_checkout.push(log.count());
            counts.checkout_names = log.names();

            log.clear();
            let started = Instant::now();
            let summary = store
                .drain(QueueSettings::default(), limits, Arc::new(SystemClock))
                .await;
            times.push(started.elapsed());
            assert_eq!(
                (summary.claimed, summary.completed),
                (1, 1),
                "the counted job of depth {depth} did not complete: {summary:?}"
            );
            jobs.push(log.count());
            counts.job_names = log.names();
            let purchase = plain
                .purchases()
                .find_one(doc! {"_id": receipt.transaction_id})
                .await
                .unwrap()
                .expect("the counted purchase");
            let walked = purchase.reward_log.expect("the counted job's log");
            assert_eq!(
                walked.missing_parent, None,
                "the job of depth {depth} did not walk its whole chain"
            );
        }
        counts.per_job.push(jobs);
        counts.job_time.push(times);
    }
    counts
}

/// One checkout over HTTP; panics unless the function answers 200.
async fn post_checkout(http: &reqwest::Client, url: &str, token: &str, key: &str) -> Duration {
    let started = Instant::now();
    let response = http
        .post(url)
        .bearer_auth(token)
        .header("idempotency-key", key)
        .header("content-type", "application/json")
        .body(CHECKOUT_BODY)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let elapsed = started.elapsed();
    assert_eq!(status, 200, "checkout {key} failed: {body}");
    elapsed
}

/// `clients` concurrent clients, each checking out its own slice of `buyers` in turn; returns
/// the wall time.
async fn concurrent_checkouts(
    http: &reqwest::Client,
    url: &str,
    buyers: &[(ObjectId, String)],
    clients: usize,
    label: &str,
) -> Duration {
    let per_client = buyers.len().div_ceil(clients);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (c, slice) in buyers.chunks(per_client).enumerate() {
        let (http, url, slice) = (http.clone(), url.to_owned(), slice.to_vec());
        let label = label.to_owned();
        tasks.spawn(async move {
            for (i, (buyer, token)) in slice.iter().enumerate() {
                let key = format!("bench-{label}-{c}-{i}-{}", buyer.to_hex());
                post_checkout(&http, &url, token, &key).await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    started.elapsed()
}

/// What the emulator phase measured.
struct EmulatorFigures {
    latencies: Vec<Duration>,
    concurrent_wall: Duration,
    checkout_instances: usize,
    drain_wall: Duration,
    drain_invocations: usize,
    drain_reported_ms: u64,
    worker_instances: usize,
    worker_hwm_kb: u64,
    checkout_hwm_kb: u64,
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

/// Checkouts through the checkout binary (up to [`CLIENTS`] instances), then the drain by one
/// worker instance: two emulators, so that the worker's is limited to one instance.
async fn under_emulator(
    uri: &str,
    database: &str,
    plain: &Store,
    buyers: &[(ObjectId, String)],
) -> EmulatorFigures {
    let concurrency = worker_concurrency().to_string();
    let env = [
        ("MONGODB_URI", uri),
        ("MONGODB_DATABASE", database),
        ("LOCAL_JWT_SECRET", LOCAL_JWT_SECRET),
        ("WORKER_CONCURRENCY", concurrency.as_str()),
        ("RUST_LOG", "info"),
    ];
    let release = |instances| EmulatorOptions {
        release: true,
        concurrency: Some(instances),
        timeout_seconds: Some(900),
    };
    let mut checkouts = LambdaEmulator::start_with(release(CLIENTS), &env);
    let mut worker = LambdaEmulator::start_with(release(1), &env);
    let ready = Duration::from_secs(900);
    let probe = checkouts.function_url("checkout", &format!("{CHECKOUT_PATH}/{}", ObjectId::new()));
    checkouts
        .wait_until_ready(&probe, ready, |status, body| {
            status == 401 && body.contains("UNAUTHENTICATED")
        })
        .await;
    // The queue is empty now: this drain finds nothing, and leaves a warm worker instance.
    let scheduled = read_json("infra/events/worker-scheduled.json");
    worker
        .wait_until_invocable("reward-worker", &scheduled, ready, |status, body| {
            status == 200 && body.contains("\"claimed\":0")
        })
        .await;
    eprintln!("bench: both functions answer under cargo lambda watch --release");

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(900))
        .build()
        .unwrap();
    let url = checkouts.function_url("checkout", CHECKOUT_PATH);
    let (warm_sequential, rest) = buyers.split_at(WARM_UP_SEQUENTIAL);
    let (warm_concurrent, rest) = rest.split_at(CLIENTS);
    let (sequential, concurrent) = rest.split_at(SEQUENTIAL);

    for (i, (_, token)) in warm_sequential.iter().enumerate() {
        post_checkout(&http, &url, token, &format!("bench-warm-{i:04}")).await;
    }
    concurrent_checkouts(&http, &url, warm_concurrent, CLIENTS, "warm").await;
    let checkout_instances = checkouts.function_pids("checkout").len();

    eprintln!("bench: {SEQUENTIAL} sequential checkouts");
    let mut latencies = Vec::with_capacity(SEQUENTIAL);
    for (i, (_, token)) in sequential.iter().enumerate() {
        latencies.push(post_checkout(&http, &url, token, &format!("bench-seq-{i:04}")).await);
    }
    latencies.sort();

    eprintln!(
        "bench: {} checkouts by {CLIENTS} concurrent clients",
        concurrent.len()
    );
    let concurrent_wall = concurrent_checkouts(&http, &url, concurrent, CLIENTS, "conc").await;
    let checkout_hwm_kb = checkouts
        .function_pids("checkout")
        .iter()
        .filter_map(|&p| peak_rss_kb(p))
        .max()
        .unwrap_or(0);
    drop(checkouts);

    let (pending, _) = plain.queue_depth(DateTime::now()).await.unwrap();
    assert_eq!(pending, JOBS as u64, "every checkout queued one job");
    eprintln!("bench: one worker draining {JOBS} jobs");
    let invoke = worker.invoke_url("reward-worker");
    let started = Instant::now();
    let (mut completed, mut invocations, mut reported_ms) = (0usize, 0usize, 0u64);
    while completed < JOBS {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the worker did not drain {JOBS} jobs in 10 minutes ({completed} completed)"
        );
        let response = http.post(&invoke).json(&scheduled).send().await.unwrap();
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
        let summary: Value = response.json().await.unwrap();
        invocations += 1;
        assert_eq!(summary["failed"], json!(0), "a job died: {summary}");
        let count = |field: &str| summary[field].as_u64().unwrap_or(0) as usize;
        completed += count("completed");
        reported_ms += summary["durationMs"].as_u64().unwrap_or(0);
        if count("claimed") == 0 {
            // Jobs released under write contention are due again within a second.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let drain_wall = started.elapsed();

    let worker_pids = worker.function_pids("reward-worker");
    let worker_hwm_kb = worker_pids.iter().filter_map(|&p| peak_rss_kb(p)).max();
    EmulatorFigures {
        latencies,
        concurrent_wall,
        checkout_instances,
        drain_wall,
        drain_invocations: invocations,
        drain_reported_ms: reported_ms,
        worker_instances: worker_pids.len(),
        worker_hwm_kb: worker_hwm_kb.expect("the reward-worker process under the emulator"),
        checkout_hwm_kb,
    }
}

fn worker_concurrency() -> usize {
    std::env::var("MALL_BENCH_WORKER_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(WORKER_CONCURRENCY)
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
            "{}: {e} (infra/bench.sh builds it with cargo lambda build --release --arm64)",
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
    let database = format!("bench_{}", ObjectId::new().to_hex());
    let plain = Store::connect(&StoreConfig {
        uri: uri.to_owned(),
        database: database.clone(),
    })
    .await
    .unwrap();
    plain.ensure_indexes().await.unwrap();

    // The forest, a product, and a filled cart for each of the 1,000 HTTP buyers.
    let seeding = Instant::now();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let forest = Forest::generate(&mut rng);
    let ids = seed_forest(&plain, &forest, &mut rng).await;
    let product = seed::product(&plain, "10", "1", true).await;
    let reserved: HashSet<usize> = COUNT_DEPTHS.into_iter().collect();
    let mut order: Vec<usize> = (0..CUSTOMERS).filter(|i| !reserved.contains(i)).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    order.truncate(JOBS);
    let buyer_ids: Vec<ObjectId> = order.iter().map(|&i| ids[i]).collect();
    seed_carts(&plain, &buyer_ids, product).await;
    let buyers: Vec<(ObjectId, String)> =
        buyer_ids.iter().map(|&id| (id, local_token(id))).collect();
    let buyer_depths: Vec<usize> = order.iter().map(|&i| forest.depth[i]).collect();
    let mean_depth = buyer_depths.iter().sum::<usize>() as f64 / buyer_depths.len() as f64;
    let max_buyer_depth = buyer_depths.iter().max().copied().unwrap_or(0);
    let deepest = forest.depth.iter().max().copied().unwrap_or(0);
    let forest_mean = forest.depth.iter().sum::<usize>() as f64 / CUSTOMERS as f64;
    let seed_time = seeding.elapsed();
    eprintln!(
        "bench: seeded {CUSTOMERS} customers (deepest chain {deepest}) in {:.1} s",
        seed_time.as_secs_f64()
    );

    eprintln!("bench: counting commands per checkout and per job at depths {COUNT_DEPTHS:?}");
    let counts = count_commands(uri, &database, &plain, &ids, product).await;

    let figures = under_emulator(uri, &database, &plain, &buyers).await;

    eprintln!("bench: start-to-ready of each binary, {INIT_RUNS} starts each");
    let release = target_dir().join("release");
    let mut init_ms = vec![];
    for function in FUNCTIONS {
        let mut samples = vec![];
        for _ in 0..INIT_RUNS {
            samples.push(start_to_ready(&release.join(function), uri, &database).await);
        }
        samples.sort();
        let (low, high) = (samples[0], samples[samples.len() - 1]);
        init_ms.push((function, ms(median(samples)), ms(low), ms(high)));
    }

    let artifacts: Vec<Artifact> = FUNCTIONS.iter().map(|f| artifact(lambda_dir, f)).collect();

    // ---- figures ----
    let lat = &figures.latencies;
    let p50 = ms(percentile(lat, 50.0));
    let p95 = ms(percentile(lat, 95.0));
    let p99 = ms(percentile(lat, 99.0));
    let mean = ms(lat.iter().sum::<Duration>() / lat.len() as u32);
    let concurrent_n = CLIENTS * PER_CLIENT;
    let per_sec_8 = concurrent_n as f64 / figures.concurrent_wall.as_secs_f64();
    let jobs_per_sec = JOBS as f64 / figures.drain_wall.as_secs_f64();
    let cmds_per_checkout = counts.per_checkout.iter().copied().max().unwrap();
    let job_max: Vec<usize> = counts
        .per_job
        .iter()
        .map(|v| *v.iter().max().unwrap())
        .collect();
    let job_min: Vec<usize> = counts
        .per_job
        .iter()
        .map(|v| *v.iter().min().unwrap())
        .collect();
    let init_checkout = init_ms[0].1;
    let init_worker = init_ms[1].1;
    let binary_max = artifacts.iter().map(|a| a.bytes).max().unwrap();
    let rss_mb = figures.worker_hwm_kb as f64 / 1024.0;
    let jobs_equal = job_max.iter().all(|&n| n == job_max[0]) && job_min == job_max;

    // ---- the table ----
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let row = |label: &str, value: String, rest: String| {
        println!("{label:<50} {value:>12}  {rest}");
    };
    println!();
    let server = std::env::var("MALL_BENCH_SERVER")
        .unwrap_or_else(|_| "the server at MALL_BENCH_MONGODB_URI".to_owned());
    println!(
        "make bench: {CUSTOMERS} customers (deepest chain {deepest}, mean depth {forest_mean:.1}), \
         {server}, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("{}", "-".repeat(100));
    println!(
        "checkout, release binary under cargo lambda watch, over HTTP ({SEQUENTIAL} sequential)"
    );
    for (label, value) in [("p50", p50), ("p95", p95), ("p99", p99), ("mean", mean)] {
        row(
            &format!("  {label}"),
            format!("{value:.2} ms"),
            String::new(),
        );
    }
    row(
        "  max",
        format!("{:.2} ms", ms(*lat.last().unwrap())),
        String::new(),
    );
    row(
        &format!("  checkouts/s, {CLIENTS} concurrent clients"),
        format!("{per_sec_8:.1} /s"),
        format!(
            "{concurrent_n} in {:.2} s, {} instances",
            figures.concurrent_wall.as_secs_f64(),
            figures.checkout_instances
        ),
    );
    println!(
        "reward-worker, one release instance under cargo lambda watch (WORKER_CONCURRENCY={})",
        worker_concurrency()
    );
    row(
        "  jobs/s draining the checkouts' jobs",
        format!("{jobs_per_sec:.1} /s"),
        format!(
            "{JOBS} jobs in {:.2} s, {} invocation(s), drains {:.2} s",
            figures.drain_wall.as_secs_f64(),
            figures.drain_invocations,
            figures.drain_reported_ms as f64 / 1000.0
        ),
    );
    row(
        "  chain depth of those jobs' buyers",
        format!("{mean_depth:.1}"),
        format!("mean (max {max_buyer_depth})"),
    );
    println!(
        "database commands, in-process store code with command monitoring \
         ({COUNT_REPEATS} runs each)"
    );
    row(
        "  per checkout",
        cmds_per_checkout.to_string(),
        format!(
            "≤ {TARGET_CHECKOUT_CMDS} {}",
            mark(cmds_per_checkout <= TARGET_CHECKOUT_CMDS)
        ),
    );
    for (i, depth) in COUNT_DEPTHS.iter().enumerate() {
        let shown = if job_min[i] == job_max[i] {
            job_max[i].to_string()
        } else {
            format!("{}-{}", job_min[i], job_max[i])
        };
        row(
            &format!("  per job, chain depth {depth} (claim included)"),
            shown,
            format!(
                "≤ {TARGET_JOB_CMDS}, equal {}   one job in {:.0} ms",
                mark(job_max[i] <= TARGET_JOB_CMDS && jobs_equal),
                ms(median(counts.job_time[i].clone()))
            ),
        );
    }
    println!("    checkout: {}", counts.checkout_names.join(" "));
    println!("    job:      {}", counts.job_names.join(" "));
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
    println!("arm64 binaries, cargo lambda build --release --arm64 (target/lambda/*/bootstrap)");
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
    row(
        "  reward-worker, after the drain",
        format!("{rss_mb:.1} MiB"),
        format!(
            "≤ {TARGET_RSS_MB} MiB {}   {} instance",
            mark(rss_mb <= TARGET_RSS_MB),
            figures.worker_instances
        ),
    );
    row(
        "  checkout, after its checkouts (largest instance)",
        format!("{:.1} MiB", figures.checkout_hwm_kb as f64 / 1024.0),
        String::new(),
    );
    row(
        "harness wall time",
        format!("{:.1} s", bench_started.elapsed().as_secs_f64()),
        format!("seeding {:.1} s", seed_time.as_secs_f64()),
    );
    println!();

    // ---- the JSON line, last ----
    let fields: Vec<(&str, Value)> = vec![
        ("checkout_p50_ms", json!(round2(p50))),
        ("checkout_p95_ms", json!(round2(p95))),
        ("checkout_p99_ms", json!(round2(p99))),
        ("checkouts_per_sec_8", json!(round2(per_sec_8))),
        ("jobs_per_sec", json!(round2(jobs_per_sec))),
        ("cmds_per_checkout", json!(cmds_per_checkout)),
        ("cmds_per_job_d5", json!(job_max[0])),
        ("cmds_per_job_d50", json!(job_max[1])),
        ("cmds_per_job_d500", json!(job_max[2])),
        ("init_ms_checkout", json!(round2(init_checkout))),
        ("init_ms_worker", json!(round2(init_worker))),
        ("binary_bytes_max", json!(binary_max)),
        ("worker_rss_mb", json!(round2(rss_mb))),
    ];
    let line: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("\"{k}\": {v}"))
        .collect();
    println!("{{{}}}", line.join(", "));
}
