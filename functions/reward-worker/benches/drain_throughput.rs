//! Worker throughput: one worker draining 1,000 checkout-created jobs on the local MongoDB wire
//! server (`make bench-worker`), at concurrency 1 and at the default 4, with the database
//! commands per job. A benchmark run, not a test: it prints figures and fails only if a job does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Instant;

use mall_domain::RewardPolicy;
use mall_store::testing::queue::QueueSettings;
use reward_worker::drain::{DrainLimits, SystemClock};
use serde_json::{json, Value};
use support::World;

const JOBS: usize = 1_000;
const CUSTOMERS: usize = 400;

/// A forest where customer i's parent is i + 1 + (i mod 3): chains of up to ~200 deep.
fn tree() -> Value {
    let customers: Vec<Value> = (0..CUSTOMERS)
        .map(|i| {
            let parent = i + 1 + i % 3;
            let parent = if parent < CUSTOMERS {
                json!(format!("c{parent}"))
            } else {
                Value::Null
            };
            json!({"id": format!("c{i}"), "parent": parent,
                   "level": (["A", "B", "C", "D", "E", "J"][i % 6]),
                   "active": i % 11 != 0, "verified": i % 13 != 0})
        })
        .collect();
    json!({"customers": customers})
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        for concurrency in [1usize, 4] {
            let mut world = World::new().await;
            world.seed_customers(&tree(), "1000000").await;
            let product = world.product("1", "10").await;
            for i in 0..JOBS {
                let buyer = world.id(&format!("c{}", (i * 7) % CUSTOMERS));
                world.checkout(buyer, product, &RewardPolicy::default()).await;
            }
            world.commands.clear();
            let limits = DrainLimits { concurrency, max_jobs: 10 * JOBS, ..DrainLimits::default() };
            let started = Instant::now();
            let mut completed = 0;
            while completed < JOBS {
                let summary = reward_worker::drain_queue(&world.store, QueueSettings::default(), limits, Arc::new(SystemClock)).await;
                assert_eq!(summary.failed, 0, "{summary:?}");
                completed += summary.completed;
                if summary.claimed == 0 {
                    // Released under contention: due again within a second.
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                }
            }
            let seconds = started.elapsed().as_secs_f64();
            let commands = world.commands.names().len();
            println!(
                "concurrency {concurrency}: {JOBS} jobs in {seconds:.2} s = {:.1} jobs/s, {:.2} commands per job (claims included)",
                JOBS as f64 / seconds,
                commands as f64 / JOBS as f64
            );
        }
    });
}
