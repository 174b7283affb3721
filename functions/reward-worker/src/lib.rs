//! The `reward-worker` Lambda (SPEC §6.4): whatever woke it — the EventBridge schedule, a
//! `CheckoutJobQueued` event, an Atlas trigger's change event, or a manual invoke with any or no
//! payload — it drains the reward queue within the invocation's time and returns a summary.
//!
//! The event only says *that* there may be work; the queue says *what*. So every event shape is
//! accepted, and a malformed one is logged, not refused.
//!
//! The crate holds the drain itself: [`drain`] (lanes of batches, the deadline, the clock, the
//! metrics), [`drainer`] (the one drainer's lease loop) and [`config`]; `mall drain` runs the
//! same code with the same configuration.

pub mod config;
pub mod drain;
pub mod drainer;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_runtime::LambdaEvent;
use mall_runtime::telemetry;
use mall_store::Store;
use serde_json::Value;

pub use config::WorkerConfig;
pub use drain::{drain_queue, DrainLimits, DrainSummary, StopReason};
pub use drainer::{drain_as_the_drainer, JOBS_PER_METRICS_FLUSH};

/// What woke the worker, for the log.
pub fn trigger_of(event: &Value) -> String {
    match event {
        Value::Null => "manual".into(),
        Value::Object(fields) if fields.is_empty() => "manual".into(),
        Value::Object(fields) => match fields.get("detail-type").and_then(Value::as_str) {
            Some(kind) => kind.to_owned(),
            None => "manual".into(),
        },
        _ => "unrecognised".into(),
    }
}

/// Deadlines below this many milliseconds cannot be epoch times (it is September 2001).
const EPOCH_MS_FLOOR: u64 = 1_000_000_000_000;

/// The invocation's deadline as an `Instant`. AWS Lambda sends it as epoch milliseconds; the
/// local emulator (`cargo lambda watch`) sends the invocation's time budget in milliseconds
/// instead (e.g. `600000`), so a value that cannot be a recent epoch time is read as a budget
/// from now.
pub fn deadline_from_context(deadline_ms: u64) -> Instant {
    if deadline_ms < EPOCH_MS_FLOOR {
        return Instant::now() + Duration::from_millis(deadline_ms);
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

/// Handles one invocation: drain (flushing the metrics with `flush` as it goes), log the
/// summary, return it.
pub async fn handle(
    store: &Store,
    config: &WorkerConfig,
    event: LambdaEvent<Value>,
    flush: &(dyn Fn() + Sync),
) -> Result<DrainSummary, lambda_runtime::Error> {
    let trigger = trigger_of(&event.payload);
    let deadline = deadline_from_context(event.context.deadline);
    let remaining_ms = deadline
        .saturating_duration_since(Instant::now())
        .as_millis();
    if remaining_ms < config.limits.margin.as_millis() {
        tracing::warn!(
            remaining_ms,
            deadline_ms = event.context.deadline,
            margin_ms = config.limits.margin.as_millis(),
            "the invocation has less time than WORKER_TIME_MARGIN_MS: nothing will be claimed; \
             raise the function's timeout or lower the margin"
        );
    }
    let limits = DrainLimits {
        deadline: Some(deadline),
        ..config.limits
    };
    // The lease's holder: the request id, which names the invocation in the logs too.
    let holder = if event.context.request_id.is_empty() {
        mall_store::bson::oid::ObjectId::new().to_hex()
    } else {
        event.context.request_id.clone()
    };
    let summary = drain_as_the_drainer(store, config.queue, limits, &holder, flush).await;
    // The drainer reports the queue's health; an invocation that left the queue to it costs
    // the one command it took to find out.
    if summary.stopped != Some(StopReason::AnotherDrainer) {
        report_queue_health(store, config).await;
    }
    tracing::info!(
        request_id = %event.context.request_id,
        %trigger,
        remaining_ms,
        claimed = summary.claimed,
        completed = summary.completed,
        retried = summary.retried,
        failed = summary.failed,
        lost_lease = summary.lost_lease,
        foreign_claims = summary.foreign_claims,
        duration_ms = summary.duration_ms,
        stopped = ?summary.stopped,
        "drain finished"
    );
    Ok(summary)
}

/// The queue's depth and oldest pending age (gauges), and any job of ours a worker that is not
/// ours started within the last lease (logged as an error and counted).
async fn report_queue_health(store: &Store, config: &WorkerConfig) {
    match store
        .queue()
        .queue_depth(mall_store::bson::DateTime::now())
        .await
    {
        Ok((pending, oldest_age)) => {
            #[allow(clippy::cast_precision_loss)]
            metrics::gauge!(telemetry::QUEUE_DEPTH).set(pending as f64);
            #[allow(clippy::cast_precision_loss)]
            metrics::gauge!(telemetry::OLDEST_PENDING_AGE_SECONDS)
                .set(oldest_age.unwrap_or(0) as f64);
        }
        Err(error) => tracing::warn!(%error, "queue depth unknown after the drain"),
    }
    match store
        .queue()
        .foreign_activity(mall_store::bson::DateTime::now(), config.queue.lease)
        .await
    {
        Ok(0) => {}
        Ok(jobs) => {
            tracing::error!(
                jobs,
                "jobs of ours were started by a worker that is not ours within the last lease: \
                 the app's own worker is running; turn it off (README, cutover step 2)"
            );
            metrics::counter!(telemetry::FOREIGN_CLAIMS).increment(jobs);
        }
        Err(error) => tracing::warn!(%error, "foreign workers not checked after the drain"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_trigger_is_accepted_and_named() {
        assert_eq!(trigger_of(&json!({})), "manual");
        assert_eq!(trigger_of(&Value::Null), "manual");
        assert_eq!(
            trigger_of(&json!({"detail-type": "Scheduled Event", "source": "aws.events"})),
            "Scheduled Event"
        );
        assert_eq!(
            trigger_of(&json!({"detail-type": "CheckoutJobQueued", "detail": {"jobId": "x"}})),
            "CheckoutJobQueued"
        );
        assert_eq!(
            trigger_of(&json!({"detail-type": "MongoDB Database Trigger for mall.checkoutjobs"})),
            "MongoDB Database Trigger for mall.checkoutjobs"
        );
        assert_eq!(trigger_of(&json!([1, 2])), "unrecognised");
    }

    #[test]
    fn the_deadline_is_measured_from_now() {
        let in_ten_seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
            + 10_000;
        let deadline = deadline_from_context(in_ten_seconds);
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(left > Duration::from_secs(8) && left <= Duration::from_secs(10));
        let long_past = in_ten_seconds - 3_600_000;
        assert!(deadline_from_context(long_past) <= Instant::now());
    }

    #[test]
    fn the_emulators_time_budget_is_read_as_a_budget() {
        let left = deadline_from_context(600_000).saturating_duration_since(Instant::now());
        assert!(left > Duration::from_secs(590) && left <= Duration::from_secs(600));
        assert!(deadline_from_context(0) <= Instant::now());
    }
}
