//! `mall drain`: the reward queue drained once with the worker's own drain and configuration,
//! its summary printed as JSON on standard output and its log (warnings and errors by default,
//! `RUST_LOG` for more) on standard error.

use anyhow::Context;

pub fn drain(
    concurrency: Option<usize>,
    batch_size: Option<u8>,
    max_jobs: Option<usize>,
) -> anyhow::Result<()> {
    use reward_worker::drain::{drain_queue, StopReason, SystemClock};
    // The drain logs what goes wrong (a batch's error, a lost lease): the log the error below
    // points to.
    mall_runtime::telemetry::init_terminal_logs();
    let config = reward_worker::WorkerConfig::read(&mall_runtime::Env::process())?;
    let mut limits = config.limits;
    limits.concurrency = concurrency.unwrap_or(limits.concurrency).max(1);
    limits.batch_size = batch_size.map_or(limits.batch_size, usize::from);
    limits.max_jobs = max_jobs.unwrap_or(limits.max_jobs);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let summary = runtime.block_on(async {
        let store = mall_store::Store::connect(&config.store).await?;
        store.ensure_indexes().await?;
        let clock = std::sync::Arc::new(SystemClock);
        anyhow::Ok(drain_queue(&store, config.queue, limits, clock).await)
    })?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    anyhow::ensure!(
        summary.stopped != Some(StopReason::DatabaseError),
        "the drain stopped on a database error (see the log above)"
    );
    Ok(())
}
