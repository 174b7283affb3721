//! `make crowd`: hundreds of distinct buyers checking out at once through the real release
//! `checkout` binary under `cargo lambda watch`, behind the limits the template derives from the
//! connection budget (README "Connection budget"), on a local SecantusDB.
//!
//! - The function runs with as many instances as the template reserves for the budget
//!   (`MALL_CROWD_BUDGET`, default 100: the smallest the template offers, so the instances fit
//!   this machine), and the crowd is several times larger, all sent at once.
//! - API Gateway's stage is modelled in front of it exactly as the template configures it: a
//!   token bucket of the derived burst and rate answers `429 {"message":"Too Many Requests"}`
//!   (API Gateway's own answer) to a buyer above it; a request let in while the function's
//!   reserved concurrency is all in flight is what Lambda would throttle and API Gateway answer
//!   `500` — counted, and a failure.
//! - Each buyer retries a 429 after a second (API Gateway gives no `Retry-After`) and a 503 after
//!   its `Retry-After`, with the same `Idempotency-Key`, until served.
//! - While the crowd runs, the TCP connections the checkout's instances hold to the database are
//!   counted from `/proc` every 20 ms.
//!
//! Then: every request answered 200, 429 or 503 with `Retry-After` (no 500, nothing else); every
//! buyer served once; each wallet charged exactly once to the milli-point; one purchase and one
//! job per buyer, each job naming its purchase (no charge without a job, no job without a
//! charge); the connections never above the checkout's share of the budget. Throughput, p50/p99
//! and connections per instance are reported.
//!
//! With `MALL_CROWD_ORIGINAL` (a command that starts the original Node.js app: `CMD PORT
//! MONGODB_URI JWT_SECRET`), the same crowd is sent to the original's checkout on the same server
//! (its own database), as the app runs today: no throttle, no retry; its answers, time, wallets
//! and connections are reported beside ours.
//!
//! Run by `infra/crowd.sh` (the database, the release build, the budget's figures from
//! `infra/connection-budget.py`). A table, then one JSON object as the last line of stdout; exits
//! non-zero when a promise above is broken.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mall_store::bson::{doc, oid::ObjectId};
use mall_store::{Store, StoreConfig};
use mall_testkit::auth::{in_an_hour, LOCAL_JWT_SECRET};
use mall_testkit::db::documents;
use mall_testkit::emulator::{free_port, EmulatorOptions, LambdaEmulator};
use mall_testkit::seed;
use mall_testkit::stats::percentile;
use serde_json::{json, Value};

const CHECKOUT_PATH: &str = "/api/cart/checkout";
const WALLET: &str = "1000";
const PRICE: &str = "100";
const REWARD: &str = "10";
/// What every served buyer's wallet holds after, in milli-points.
const WALLET_AFTER_MILLI: i64 = 900_000;
const ORIGINAL_SECRET: &str = "crowd-original-secret";

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} must be a number"))
        })
        .unwrap_or(default)
}

/// The limits the template derives from the budget (passed by infra/crowd.sh).
#[derive(Clone, Copy, Debug)]
struct Limits {
    budget: u64,
    checkout_cap: usize,
    burst: f64,
    rate: f64,
    deadline_ms: u64,
    per_instance: usize,
}

impl Limits {
    fn from_env() -> Limits {
        Limits {
            budget: env_number("MALL_CROWD_BUDGET", 100),
            checkout_cap: env_number("MALL_CROWD_CHECKOUT_CAP", 42) as usize,
            burst: env_number("MALL_CROWD_BURST", 21) as f64,
            rate: env_number("MALL_CROWD_RATE", 10) as f64,
            deadline_ms: env_number("MALL_CROWD_DEADLINE_MS", 2_000),
            per_instance: env_number("MALL_CROWD_CONNECTIONS_PER_INSTANCE", 2) as usize,
        }
    }
}

/// API Gateway's stage as the template configures it, and Lambda's reserved concurrency.
struct Gateway {
    bucket: Mutex<(f64, Instant)>,
    in_flight: AtomicUsize,
    limits: Limits,
}

enum Admission {
    /// Let through to the function.
    In,
    /// Above the stage's burst or rate: API Gateway answers 429 itself.
    Throttled,
    /// The function's reserved concurrency is all in flight: Lambda throttles, API Gateway 500.
    OverCap,
}

impl Gateway {
    fn new(limits: Limits) -> Gateway {
        Gateway {
            bucket: Mutex::new((limits.burst, Instant::now())),
            in_flight: AtomicUsize::new(0),
            limits,
        }
    }

    fn admit(&self) -> Admission {
        {
            let mut bucket = self.bucket.lock().unwrap();
            let now = Instant::now();
            let refill = now.duration_since(bucket.1).as_secs_f64() * self.limits.rate;
            *bucket = ((bucket.0 + refill).min(self.limits.burst), now);
            if bucket.0 < 1.0 {
                return Admission::Throttled;
            }
            bucket.0 -= 1.0;
        }
        if self.in_flight.fetch_add(1, Ordering::SeqCst) >= self.limits.checkout_cap {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            return Admission::OverCap;
        }
        Admission::In
    }

    fn done(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What one crowd did.
#[derive(Default)]
struct Outcome {
    /// Answers by status (the modelled gateway's included).
    statuses: HashMap<u16, usize>,
    /// Answers that broke the contract: (status, body).
    bad: Vec<(u16, String)>,
    /// Latency of every request the function answered 200.
    served: Vec<Duration>,
    /// From the start to each buyer's 200.
    buyer_done: Vec<Duration>,
    wall: Duration,
    max_in_flight: usize,
}

/// The sockets to the database's port that `pids` hold, by pid (from /proc).
fn database_connections(port: u16, pids: &[u32]) -> HashMap<u32, usize> {
    let mut inodes = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // remote address "HEX:PORT", state 01 = ESTABLISHED, inode in column 10.
            let (Some(remote), Some(state), Some(inode)) =
                (fields.get(2), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let remote_port = remote
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if *state == "01" && remote_port == Some(port) {
                inodes.insert((*inode).to_owned());
            }
        }
    }
    pids.iter()
        .map(|&pid| {
            let held = std::fs::read_dir(format!("/proc/{pid}/fd"))
                .map(|entries| {
                    entries
                        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                        .filter_map(|link| {
                            let link = link.to_string_lossy().into_owned();
                            link.strip_prefix("socket:[")?
                                .strip_suffix(']')
                                .map(str::to_owned)
                        })
                        .filter(|inode| inodes.contains(inode))
                        .count()
                })
                .unwrap_or(0);
            (pid, held)
        })
        .collect()
}

/// The most connections seen at once, in all and by one process, and the processes seen.
#[derive(Clone, Copy, Debug, Default)]
struct ConnectionPeak {
    total: usize,
    per_process: usize,
    processes: usize,
}

/// Samples the connections of the processes `pids()` names every 20 ms until `stop`.
fn sample_connections(
    port: u16,
    pids: impl Fn() -> Vec<u32> + Send + 'static,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<ConnectionPeak> {
    std::thread::spawn(move || {
        let mut peak = ConnectionPeak::default();
        while !stop.load(Ordering::SeqCst) {
            let pids = pids();
            let held = database_connections(port, &pids);
            peak.total = peak.total.max(held.values().sum());
            peak.per_process = peak
                .per_process
                .max(held.values().copied().max().unwrap_or(0));
            peak.processes = peak
                .processes
                .max(held.values().filter(|&&n| n > 0).count());
            std::thread::sleep(Duration::from_millis(20));
        }
        peak
    })
}

async fn seed_buyers(store: &Store, n: usize) -> Vec<ObjectId> {
    let product = seed::product(store, PRICE, REWARD, true).await;
    let mut buyers = Vec::with_capacity(n);
    for _ in 0..n {
        let buyer = seed::customer(store, WALLET).await;
        seed::fill_cart(store, buyer, &[(product, 1)]).await;
        buyers.push(buyer);
    }
    buyers
}

fn token(secret: &str, buyer: ObjectId) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"Customer_id": buyer.to_hex(), "username": "buyer", "Type": "Customer",
                "exp": in_an_hour()}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// Our crowd: every buyer at once, through the modelled stage, retrying until served.
async fn our_crowd(url: &str, buyers: &[ObjectId], gateway: Arc<Gateway>) -> Outcome {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = buyers
        .iter()
        .enumerate()
        .map(|(i, &buyer)| {
            let (http, url, gateway) = (http.clone(), url.to_owned(), Arc::clone(&gateway));
            let (outcome, max_in_flight) = (Arc::clone(&outcome), Arc::clone(&max_in_flight));
            tokio::spawn(async move {
                let token = token(LOCAL_JWT_SECRET, buyer);
                // A deterministic spread of the retries, as real phones would not retry in step.
                let jitter = Duration::from_millis((i as u64 * 37) % 500);
                for _attempt in 0..200 {
                    let (status, body, retry_after, latency) = match gateway.admit() {
                        Admission::Throttled => (
                            429,
                            r#"{"message":"Too Many Requests"}"#.to_owned(),
                            None,
                            Duration::ZERO,
                        ),
                        Admission::OverCap => (
                            500,
                            r#"{"message":"Internal Server Error"}"#.to_owned(),
                            None,
                            Duration::ZERO,
                        ),
                        Admission::In => {
                            max_in_flight.fetch_max(
                                gateway.in_flight.load(Ordering::SeqCst),
                                Ordering::SeqCst,
                            );
                            let sent = Instant::now();
                            let answer = http
                                .post(&url)
                                .bearer_auth(&token)
                                .header("idempotency-key", format!("crowd-{}", buyer.to_hex()))
                                .header("content-type", "application/json")
                                .body("{}")
                                .send()
                                .await;
                            let latency = sent.elapsed();
                            let answer = match answer {
                                Ok(response) => {
                                    let status = response.status().as_u16();
                                    let retry_after = response
                                        .headers()
                                        .get("retry-after")
                                        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                                    let body = response.text().await.unwrap_or_default();
                                    (status, body, retry_after, latency)
                                }
                                Err(error) => (0, error.to_string(), None, latency),
                            };
                            gateway.done();
                            answer
                        }
                    };
                    let wait = {
                        let mut out = outcome.lock().unwrap();
                        *out.statuses.entry(status).or_default() += 1;
                        match status {
                            200 => {
                                out.served.push(latency);
                                out.buyer_done.push(started.elapsed());
                                None
                            }
                            429 => Some(Duration::from_secs(1) + jitter),
                            503 if retry_after.is_some() => {
                                Some(Duration::from_secs(retry_after.unwrap_or(1)) + jitter)
                            }
                            _ => {
                                out.bad.push((status, body));
                                None
                            }
                        }
                    };
                    match wait {
                        Some(wait) => tokio::time::sleep(wait).await,
                        None => return,
                    }
                }
                outcome
                    .lock()
                    .unwrap()
                    .bad
                    .push((0, "not served after 200 attempts".into()));
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let mut out = Arc::try_unwrap(outcome).ok().unwrap().into_inner().unwrap();
    out.wall = started.elapsed();
    out.max_in_flight = max_in_flight.load(Ordering::SeqCst);
    out
}

/// The original's crowd: every buyer at once, once, as the app is called today.
async fn original_crowd(url: &str, buyers: &[ObjectId]) -> Outcome {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let started = Instant::now();
    let tasks: Vec<_> = buyers
        .iter()
        .map(|&buyer| {
            let (http, url) = (http.clone(), url.to_owned());
            tokio::spawn(async move {
                let sent = Instant::now();
                let answer = http
                    .post(&url)
                    .bearer_auth(token(ORIGINAL_SECRET, buyer))
                    .header("content-type", "application/json")
                    .body("{}")
                    .send()
                    .await;
                match answer {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        (
                            status,
                            response.text().await.unwrap_or_default(),
                            sent.elapsed(),
                        )
                    }
                    Err(error) => (0, error.to_string(), sent.elapsed()),
                }
            })
        })
        .collect();
    let mut out = Outcome::default();
    for task in tasks {
        let (status, body, latency) = task.await.unwrap();
        *out.statuses.entry(status).or_default() += 1;
        if status == 200 {
            out.served.push(latency);
            out.buyer_done.push(started.elapsed());
        } else {
            out.bad.push((status, body));
        }
    }
    out.wall = started.elapsed();
    out
}

/// What the database holds after a crowd: (buyers whose wallet is not exactly one charge,
/// purchases, jobs, purchases without a job, jobs without a purchase).
async fn ledger(store: &Store, buyers: &[ObjectId]) -> Value {
    let ids: Vec<ObjectId> = buyers.to_vec();
    let wallets = documents(store, "customers", doc! {"_id": {"$in": &ids}}).await;
    let wrong_wallets = wallets
        .iter()
        .filter(|c| {
            let points = c.get("points").and_then(|p| match p {
                mall_store::bson::Bson::Double(d) => Some((d * 1000.0).round() as i64),
                mall_store::bson::Bson::Int32(i) => Some(i64::from(*i) * 1000),
                mall_store::bson::Bson::Int64(i) => Some(i * 1000),
                _ => None,
            });
            points != Some(WALLET_AFTER_MILLI)
        })
        .count();
    let purchase_filter = doc! {"type": "purchase", "customerId": {"$in": &ids}};
    let purchases = documents(store, "transactions", purchase_filter).await;
    let jobs = documents(store, "checkoutjobs", doc! {"customerId": {"$in": &ids}}).await;
    let purchase_ids: HashSet<ObjectId> = purchases
        .iter()
        .filter_map(|p| p.get_object_id("_id").ok())
        .collect();
    let job_purchases: HashSet<ObjectId> = jobs
        .iter()
        .filter_map(|j| j.get_object_id("checkoutTransactionId").ok())
        .collect();
    json!({
        "buyers": buyers.len(),
        "wrongWallets": wrong_wallets,
        "purchases": purchases.len(),
        "jobs": jobs.len(),
        "purchasesWithoutJob": purchase_ids.difference(&job_purchases).count(),
        "jobsWithoutPurchase": job_purchases.difference(&purchase_ids).count(),
    })
}

fn summary(name: &str, out: &Outcome, peak: ConnectionPeak, ledger: &Value) -> Value {
    let mut served = out.served.clone();
    served.sort();
    let mut done = out.buyer_done.clone();
    done.sort();
    let ms = |d: Duration| (d.as_secs_f64() * 10_000.0).round() / 10.0;
    let statuses: serde_json::Map<String, Value> = out
        .statuses
        .iter()
        .map(|(s, n)| (s.to_string(), json!(n)))
        .collect();
    json!({
        "system": name,
        "statuses": statuses,
        "violations": out.bad.len(),
        "servedPerSecond": (served.len() as f64 / out.wall.as_secs_f64() * 10.0).round() / 10.0,
        "wallSeconds": (out.wall.as_secs_f64() * 10.0).round() / 10.0,
        "requestP50Ms": ms(percentile(&served, 50.0)),
        "requestP99Ms": ms(percentile(&served, 99.0)),
        "buyerServedP50Ms": ms(percentile(&done, 50.0)),
        "buyerServedP99Ms": ms(percentile(&done, 99.0)),
        "maxInFlight": out.max_in_flight,
        "connectionsMax": peak.total,
        "connectionsPerProcessMax": peak.per_process,
        "processesWithConnections": peak.processes,
        "ledger": ledger,
    })
}

fn database_port(uri: &str) -> u16 {
    let rest = uri.split("://").nth(1).unwrap_or(uri);
    let host = rest.split(['/', '?']).next().unwrap_or(rest);
    let host = host.rsplit('@').next().unwrap_or(host);
    host.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(27017)
}

fn with_database(uri: &str, database: &str) -> String {
    // mongodb://host:port/?opts -> mongodb://host:port/DATABASE?opts
    match uri.split_once("/?") {
        Some((base, options)) => format!("{base}/{database}?{options}"),
        None => format!("{}/{database}", uri.trim_end_matches('/')),
    }
}

async fn store_on(uri: &str, database: &str) -> Store {
    Store::connect(&StoreConfig {
        uri: uri.to_owned(),
        database: database.to_owned(),
        max_pool_size: None,
    })
    .await
    .unwrap()
}

async fn ours(uri: &str, buyers_n: usize, limits: Limits) -> Value {
    let database = format!("crowd_{}", ObjectId::new().to_hex());
    let store = store_on(uri, &database).await;
    store.ensure_indexes().await.unwrap();
    let buyers = seed_buyers(&store, buyers_n).await;
    let deadline = limits.deadline_ms.to_string();
    let env = [
        ("MONGODB_URI", uri),
        ("MONGODB_DATABASE", database.as_str()),
        ("LOCAL_JWT_SECRET", LOCAL_JWT_SECRET),
        ("REWARD_POLICY", r#"{"preset": "current"}"#),
        ("CHECKOUT_DEADLINE_MS", deadline.as_str()),
        ("RUST_LOG", "warn"),
    ];
    let mut emulator = LambdaEmulator::start_with(
        EmulatorOptions {
            release: true,
            concurrency: Some(limits.checkout_cap),
            timeout_seconds: Some(900),
        },
        &env,
    );
    // The first request builds the binary and starts every instance.
    let probe = emulator.function_url("checkout", &format!("{CHECKOUT_PATH}/{}", ObjectId::new()));
    emulator
        .wait_until_ready(&probe, Duration::from_secs(900), |status, _| status == 401)
        .await;
    let emulator = Arc::new(emulator);
    eprintln!(
        "crowd: {buyers_n} buyers at once on {} checkout instances (stage burst {}, rate {}/s)",
        limits.checkout_cap, limits.burst, limits.rate
    );
    let stop = Arc::new(AtomicBool::new(false));
    let watched = Arc::clone(&emulator);
    let sampler = sample_connections(
        database_port(uri),
        move || watched.function_pids("checkout"),
        Arc::clone(&stop),
    );
    let url = emulator.function_url("checkout", CHECKOUT_PATH);
    let out = our_crowd(&url, &buyers, Arc::new(Gateway::new(limits))).await;
    stop.store(true, Ordering::SeqCst);
    let peak = sampler.join().unwrap();
    let ledger = ledger(&store, &buyers).await;
    for (status, body) in out.bad.iter().take(5) {
        eprintln!("crowd: a request answered {status}: {body}");
    }
    drop(emulator);
    store.database().drop().await.unwrap();
    summary("ours", &out, peak, &ledger)
}

async fn original(uri: &str, buyers_n: usize, command: &str) -> Value {
    let database = format!("crowd_original_{}", ObjectId::new().to_hex());
    let store = store_on(uri, &database).await;
    let buyers = seed_buyers(&store, buyers_n).await;
    let port = free_port();
    let mut app: Child = Command::new(command)
        .args([
            port.to_string(),
            with_database(uri, &database),
            ORIGINAL_SECRET.to_owned(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the original ({command}): {e}"));
    let pid = app.id();
    let url = format!("http://127.0.0.1:{port}{CHECKOUT_PATH}");
    // Up when an unauthenticated checkout is refused, connected to the database a moment later.
    let http = reqwest::Client::new();
    let started = Instant::now();
    while !matches!(http.post(&url).send().await, Ok(r) if r.status() == 401) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the original did not come up"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    eprintln!("crowd: the same {buyers_n} buyers at once on the original's checkout");
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_connections(database_port(uri), move || vec![pid], Arc::clone(&stop));
    let out = original_crowd(&url, &buyers).await;
    stop.store(true, Ordering::SeqCst);
    let peak = sampler.join().unwrap();
    let ledger = ledger(&store, &buyers).await;
    let _ = app.kill();
    let _ = app.wait();
    store.database().drop().await.unwrap();
    summary("original", &out, peak, &ledger)
}

fn broken_promises(ours: &Value, limits: Limits) -> Vec<String> {
    let mut broken = vec![];
    let statuses = ours["statuses"].as_object().unwrap();
    for (status, n) in statuses {
        if !["200", "429", "503"].contains(&status.as_str()) {
            broken.push(format!("{n} request(s) answered {status}"));
        }
    }
    if ours["violations"] != 0 {
        broken.push(format!(
            "{} answer(s) broke the contract",
            ours["violations"]
        ));
    }
    let ledger = &ours["ledger"];
    let buyers = &ledger["buyers"];
    for (field, want) in [
        ("wrongWallets", json!(0)),
        ("purchases", buyers.clone()),
        ("jobs", buyers.clone()),
        ("purchasesWithoutJob", json!(0)),
        ("jobsWithoutPurchase", json!(0)),
    ] {
        if ledger[field] != want {
            broken.push(format!(
                "ledger {field} is {}, expected {want}",
                ledger[field]
            ));
        }
    }
    let share = limits.checkout_cap * limits.per_instance;
    let seen = ours["connectionsMax"].as_u64().unwrap() as usize;
    if seen > share || seen as u64 > limits.budget {
        broken.push(format!(
            "{seen} connections from the checkout, above its share {share} of the budget {}",
            limits.budget
        ));
    }
    if ours["connectionsPerProcessMax"].as_u64().unwrap() as usize > limits.per_instance {
        broken.push(format!(
            "an instance held {} connections, the budget counts {}",
            ours["connectionsPerProcessMax"], limits.per_instance
        ));
    }
    broken
}

fn table(rows: &[&Value]) {
    let line = |label: &str, f: &dyn Fn(&Value) -> String| {
        let cells: Vec<String> = rows.iter().map(|r| format!("{:>26}", f(r))).collect();
        println!("{label:<40}{}", cells.join(""));
    };
    line("", &|r| r["system"].as_str().unwrap().to_owned());
    line("answers by status", &|r| {
        let mut s: Vec<_> = r["statuses"].as_object().unwrap().iter().collect();
        s.sort_by_key(|(k, _)| k.to_string());
        s.iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    });
    line("buyers served / s", &|r| r["servedPerSecond"].to_string());
    line("all served after (s)", &|r| r["wallSeconds"].to_string());
    line("request p50 / p99 (ms, 200s)", &|r| {
        format!("{} / {}", r["requestP50Ms"], r["requestP99Ms"])
    });
    line("buyer served p50 / p99 (ms, retries in)", &|r| {
        format!("{} / {}", r["buyerServedP50Ms"], r["buyerServedP99Ms"])
    });
    line("connections at most (all / per process)", &|r| {
        format!(
            "{} / {}",
            r["connectionsMax"], r["connectionsPerProcessMax"]
        )
    });
    line("processes holding connections", &|r| {
        r["processesWithConnections"].to_string()
    });
    line("wallets not charged exactly once", &|r| {
        r["ledger"]["wrongWallets"].to_string()
    });
    line("purchases / jobs / unmatched", &|r| {
        let l = &r["ledger"];
        format!(
            "{} / {} / {}",
            l["purchases"],
            l["jobs"],
            l["purchasesWithoutJob"].as_u64().unwrap() + l["jobsWithoutPurchase"].as_u64().unwrap()
        )
    });
}

#[tokio::main]
async fn main() {
    let uri = std::env::var("MALL_CROWD_MONGODB_URI")
        .expect("MALL_CROWD_MONGODB_URI: run `make crowd` (infra/crowd.sh)");
    let buyers = env_number("MALL_CROWD_BUYERS", 300) as usize;
    let limits = Limits::from_env();
    let ours = ours(&uri, buyers, limits).await;
    let original = match std::env::var("MALL_CROWD_ORIGINAL") {
        Ok(command) if !command.is_empty() => Some(original(&uri, buyers, &command).await),
        _ => None,
    };
    let mut rows = vec![&ours];
    rows.extend(original.as_ref());
    println!(
        "crowd: {buyers} buyers at once; connection budget {}: checkout cap {} instances x {} \
         connections, stage burst {} and {}/s, deadline {} ms",
        limits.budget,
        limits.checkout_cap,
        limits.per_instance,
        limits.burst,
        limits.rate,
        limits.deadline_ms
    );
    table(&rows);
    let broken = broken_promises(&ours, limits);
    for promise in &broken {
        println!("BROKEN: {promise}");
    }
    println!(
        "{}",
        json!({"buyers": buyers, "budget": limits.budget, "checkoutCap": limits.checkout_cap,
               "burst": limits.burst, "rate": limits.rate, "ours": ours, "original": original,
               "broken": broken})
    );
    if !broken.is_empty() {
        std::process::exit(1);
    }
}
