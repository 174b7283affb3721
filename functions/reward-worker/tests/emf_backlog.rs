//! The worker's metrics over a backlog, as CloudWatch will read them: the real handler with the
//! real Embedded Metric Format recorder installed (this test binary is its own process, so the
//! global recorder is this test's alone). The format keeps at most 100 values of a histogram per
//! flush; a drain of 1,000 jobs must still record every job's processing time, and log no error
//! (the recorder logs one for every value past the hundredth).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::io::Write;
use std::sync::Mutex;

/// Everything logged at warning level or above, by anyone in this process.
static LOGGED: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Logged;

impl Write for Logged {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        LOGGED.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

use mall_domain::RewardPolicy;
use mall_runtime::telemetry;
use serde_json::{json, Value};
use support::*;

#[tokio::test]
async fn a_backlog_drain_records_every_jobs_metrics() {
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(telemetry::NAMESPACE)
        .with_dimension("Service", "reward-worker")
        .with_timestamp(1_700_000_000_000)
        .init()
        .unwrap();
    telemetry::describe_metrics();
    tracing_subscriber::fmt()
        .with_writer(|| Logged)
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .init();

    // 1,000 jobs: ten times what one flush can hold.
    const JOBS: usize = 1_000;
    let mut world = World::new().await;
    world.seed_customers(&buyer_under_root(), "100000").await;
    let product = world.product("1", "1").await;
    for _ in 0..JOBS {
        world
            .checkout(world.id("buyer"), product, &RewardPolicy::default())
            .await;
    }

    let config =
        reward_worker::WorkerConfig::read(&mall_runtime::Env::from_lookup(|name| match name {
            "MONGODB_URI" => Some(test_uri()),
            "MONGODB_DATABASE" => Some(world.database.clone()),
            // One batch at a time, as the template deploys it: every job here credits the same
            // chain, and concurrent batches would only conflict.
            "WORKER_CONCURRENCY" => Some("1".to_owned()),
            _ => None,
        }))
        .unwrap();
    let flushed = Mutex::new(Vec::new());
    let flush = || collector.flush(&mut *flushed.lock().unwrap()).unwrap();
    let mut context = lambda_runtime::Context::default();
    context.deadline = 600_000;
    let summary = reward_worker::handle(
        &world.store,
        &config,
        lambda_runtime::LambdaEvent::new(json!({}), context),
        &flush,
    )
    .await
    .unwrap();
    assert_eq!(
        (summary.claimed, summary.completed),
        (JOBS, JOBS),
        "{summary:?}"
    );
    // What the runtime flushes after the invocation.
    flush();

    let text = String::from_utf8(flushed.into_inner().unwrap()).unwrap();
    let documents: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let times: usize = documents
        .iter()
        .filter_map(|d| d.get(telemetry::JOB_PROCESSING_MS))
        .map(|values| values.as_array().map_or(1, Vec::len))
        .sum();
    assert_eq!(times, JOBS, "one processing time per job, none dropped");
    let completed: u64 = documents
        .iter()
        .filter_map(|d| d.get(telemetry::JOBS_COMPLETED))
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(completed, JOBS as u64);
    assert!(
        documents
            .iter()
            .filter_map(|d| d.get(telemetry::JOB_PROCESSING_MS))
            .all(|values| values.as_array().map_or(1, Vec::len) <= 100),
        "no flush holds more than the format's 100 values"
    );
    let logged = String::from_utf8(LOGGED.lock().unwrap().clone()).unwrap();
    assert!(
        !logged.contains("ERROR"),
        "nothing logged an error:\n{logged}"
    );
}
