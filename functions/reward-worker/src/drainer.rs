//! The one drainer's loop: an invocation drains only while it holds the drainer lease
//! ([`mall_store::Queue::take_drainer_lease`]), in parts of at most [`JOBS_PER_METRICS_FLUSH`] claims so that every
//! job's metrics are flushed, and looks once more after giving the lease back so that no
//! wake-up is lost.

use std::sync::Arc;
use std::time::Instant;

use mall_store::bson::DateTime;
use mall_store::QueueSettings;
use mall_store::Store;

use crate::drain::{drain_queue, DrainLimits, DrainSummary, StopReason, SystemClock};

/// Jobs drained between two flushes of the metrics: the Embedded Metric Format keeps at most 100
/// values of a histogram per flush (`JobProcessingMs` records one per job), and drops the rest
/// with an error logged.
pub const JOBS_PER_METRICS_FLUSH: usize = 90;

/// Drains the queue as the only drainer, within `limits`, in parts of at most
/// [`JOBS_PER_METRICS_FLUSH`] claims, calling `flush` after each part so that every job's metrics
/// reach CloudWatch however long the backlog. One summary for the whole drain.
///
/// Before each part it takes (or renews) the drainer lease for `holder` (see
/// [`mall_store::Queue::take_drainer_lease`]); if another invocation holds it, this one stops at once with
/// [`StopReason::AnotherDrainer`]. When the queue is empty it gives the lease back and looks once
/// more: a job whose wake-up found the lease held is drained here, not left to the schedule.
pub async fn drain_as_the_drainer(
    store: &Store,
    queue: QueueSettings,
    limits: DrainLimits,
    holder: &str,
    flush: &(dyn Fn() + Sync),
) -> DrainSummary {
    let started = Instant::now();
    let mut summary = DrainSummary::default();
    let mut looked_again = false;
    loop {
        let now = DateTime::now();
        let left = limits
            .deadline
            .map(|deadline| deadline.saturating_duration_since(Instant::now()));
        match store.queue().take_drainer_lease(holder, now, left).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(
                    claimed = summary.claimed,
                    "another invocation is draining the queue: leaving it to that one"
                );
                summary.stopped = Some(StopReason::AnotherDrainer);
                break;
            }
            // The lease only saves work; the batches' turn keeps two drainers correct.
            Err(error) => {
                tracing::warn!(%error, "the drainer lease could not be taken: draining anyway")
            }
        }
        let left = limits.max_jobs.saturating_sub(summary.claimed);
        let part = drain_queue(
            store,
            queue,
            DrainLimits {
                max_jobs: left.min(JOBS_PER_METRICS_FLUSH),
                ..limits
            },
            Arc::new(SystemClock),
        )
        .await;
        flush();
        summary.absorb(&part);
        // A part stops at its cap while lanes that found no claim left to reserve say so too:
        // only a part that claimed something may have left more to do.
        summary.stopped = match part.stopped {
            Some(StopReason::Cap) if part.claimed == 0 => Some(StopReason::Empty),
            other => other,
        };
        if summary.stopped == Some(StopReason::Cap) && summary.claimed < limits.max_jobs {
            continue;
        }
        if let Err(error) = store
            .queue()
            .release_drainer_lease(holder, DateTime::now())
            .await
        {
            tracing::warn!(%error, "the drainer lease could not be given back: it runs out by itself");
        }
        if summary.stopped != Some(StopReason::Empty) || (looked_again && part.claimed == 0) {
            break;
        }
        looked_again = true;
        match store
            .queue()
            .any_claimable(DateTime::now(), queue.lease)
            .await
        {
            Ok(true) => continue,
            Ok(false) => break,
            Err(error) => {
                tracing::warn!(%error, "the queue could not be looked at once more");
                break;
            }
        }
    }
    summary.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    summary
}
