//! Draining the queue (SPEC §6.4): claim and process jobs until none is claimable, the
//! invocation's remaining time falls under a safety margin, or a per-invocation cap is reached,
//! with at most `concurrency` batches of up to `batch_size` jobs in flight. Several drains may run at once (several Lambda
//! invocations, or `mall drain` beside them): atomic claims keep them apart.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mall_runtime::{env, telemetry};
use mall_store::bson::DateTime;
use mall_store::Store;
use mall_store::{Claim, JobOutcome, QueueSettings};
use serde::Serialize;
use tokio::task::JoinSet;

/// Where "now" comes from, so tests can move time (for example past a lease).
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime {
        DateTime::now()
    }
}

/// The system clock moved by a fixed offset (a test's way to stand later in time).
#[derive(Clone, Copy, Debug)]
pub struct OffsetClock(pub Duration);

impl Clock for OffsetClock {
    fn now(&self) -> DateTime {
        let offset = i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX);
        DateTime::from_millis(DateTime::now().timestamp_millis().saturating_add(offset))
    }
}

/// Jobs per batch unless `WORKER_BATCH_SIZE` says otherwise (measured by `make bench`; declared
/// in the environment table).
pub const DEFAULT_BATCH_SIZE: usize = declared(env::WORKER_BATCH_SIZE.integer_default());
/// The largest batch (the table's bound): a batch's transaction must stay short.
pub const MAX_BATCH_SIZE: usize = declared(env::WORKER_BATCH_SIZE.integer_max());

/// A count the environment table declares (at least 1).
const fn declared(value: Option<i64>) -> usize {
    match value {
        Some(n) if n >= 1 => n as usize,
        _ => 1,
    }
}

/// Bounds of one drain.
#[derive(Clone, Copy, Debug)]
pub struct DrainLimits {
    /// Batches in flight at once (`WORKER_CONCURRENCY`).
    pub concurrency: usize,
    /// Jobs claimed and applied together, in one transaction (`WORKER_BATCH_SIZE`).
    pub batch_size: usize,
    /// At most this many claims per drain.
    pub max_jobs: usize,
    /// When the invocation must have returned (from the Lambda context), if any.
    pub deadline: Option<Instant>,
    /// Stop claiming when less than this remains before the deadline (`WORKER_TIME_MARGIN_MS`).
    pub margin: Duration,
}

impl Default for DrainLimits {
    fn default() -> Self {
        // The environment table's defaults: what an unset environment gives.
        DrainLimits {
            concurrency: declared(env::WORKER_CONCURRENCY.integer_default()),
            batch_size: DEFAULT_BATCH_SIZE,
            max_jobs: declared(env::WORKER_MAX_JOBS.integer_default()),
            deadline: None,
            margin: Duration::from_millis(
                u64::try_from(env::WORKER_TIME_MARGIN_MS.integer_default().unwrap_or(0))
                    .unwrap_or(0),
            ),
        }
    }
}

/// Why a drain stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// No job was claimable.
    Empty,
    /// The remaining time fell under the margin.
    Deadline,
    /// The per-drain cap of claims was reached.
    Cap,
    /// The database failed; the jobs in hand stay claimed until their lease expires.
    DatabaseError,
    /// Another invocation holds the drainer lease (see [`crate::drainer`]) and drains.
    AnotherDrainer,
}

/// What one drain did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrainSummary {
    pub claimed: usize,
    pub completed: usize,
    pub retried: usize,
    /// Dead jobs (`failed`).
    pub failed: usize,
    /// Claims taken over by another worker (nothing written by this one).
    pub lost_lease: usize,
    /// Jobs a test's simulated crash left claimed (never in a function's build).
    #[serde(skip_serializing_if = "is_zero")]
    pub abandoned: usize,
    /// Batches committed or given up (a batch split in halves counts once).
    pub batches: usize,
    /// Transaction attempts lost to other writers of the same customers.
    pub conflicts: usize,
    /// Times a batch was split in halves (it kept conflicting, one of its jobs was refused, or
    /// it ran past its time budget).
    pub splits: usize,
    /// Of those, splits because a batch's load and plan ran past the time budget; each makes
    /// the lane's next claims smaller.
    pub cuts: usize,
    /// Times a batch waited for its turn while another batch's transaction held it.
    pub turn_waits: usize,
    /// The longest batch transaction (load, plan and writes of one attempt), in milliseconds.
    pub longest_batch_ms: u64,
    /// Claimed jobs of ours that another worker (the app's own) had claimed meanwhile.
    pub foreign_claims: usize,
    /// Jobs of the app's own checkout paid on reward settings with fields that cannot be used
    /// (counted as `InvalidRewardSettings`; the fields are in the log).
    #[serde(skip_serializing_if = "is_zero")]
    pub on_unusable_settings: usize,
    pub duration_ms: u64,
    pub stopped: Option<StopReason>,
}

impl DrainSummary {
    /// Adds another part of the same drain's counts to this one (its `stopped` and duration
    /// are the caller's to set).
    pub fn absorb(&mut self, part: &DrainSummary) {
        self.claimed += part.claimed;
        self.completed += part.completed;
        self.retried += part.retried;
        self.failed += part.failed;
        self.lost_lease += part.lost_lease;
        self.abandoned += part.abandoned;
        self.batches += part.batches;
        self.conflicts += part.conflicts;
        self.splits += part.splits;
        self.cuts += part.cuts;
        self.turn_waits += part.turn_waits;
        self.longest_batch_ms = self.longest_batch_ms.max(part.longest_batch_ms);
        self.foreign_claims += part.foreign_claims;
        self.on_unusable_settings += part.on_unusable_settings;
    }
}

struct Lane {
    summary: DrainSummary,
    stopped: StopReason,
}

/// A lane's claim size: the configured batch size, halved after a batch had to be cut for
/// time (its data is slow to load), doubled back towards the configured size after a batch
/// that took under a quarter of the budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BatchSize {
    configured: usize,
    now: usize,
}

impl BatchSize {
    fn new(configured: usize) -> Self {
        BatchSize {
            configured,
            now: configured,
        }
    }

    fn now(&self) -> usize {
        self.now
    }

    fn after(&mut self, cut: bool, took: Duration, budget: Duration) {
        self.now = if cut {
            (self.now / 2).max(1)
        } else if took < budget / 4 {
            (self.now * 2).min(self.configured)
        } else {
            self.now
        };
    }
}

/// Drains the queue within `limits` and returns what it did.
pub async fn drain_queue(
    store: &Store,
    settings: QueueSettings,
    limits: DrainLimits,
    clock: Arc<dyn Clock>,
) -> DrainSummary {
    let started = Instant::now();
    let claims = Arc::new(AtomicUsize::new(0));
    let mut lanes = JoinSet::new();
    for _ in 0..limits.concurrency.max(1) {
        let store = store.clone();
        let claims = Arc::clone(&claims);
        let clock = Arc::clone(&clock);
        lanes.spawn(async move { drain_lane(&store, settings, limits, clock, claims).await });
    }
    let mut summary = DrainSummary::default();
    let mut reasons = Vec::new();
    while let Some(lane) = lanes.join_next().await {
        let Ok(lane) = lane else {
            reasons.push(StopReason::DatabaseError);
            continue;
        };
        summary.absorb(&lane.summary);
        reasons.push(lane.stopped);
    }
    // The most telling reason: a database error, then the deadline, then the cap.
    summary.stopped = [
        StopReason::DatabaseError,
        StopReason::Deadline,
        StopReason::Cap,
    ]
    .into_iter()
    .find(|r| reasons.contains(r))
    .or(Some(StopReason::Empty));
    summary.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    summary
}

async fn drain_lane(
    store: &Store,
    settings: QueueSettings,
    limits: DrainLimits,
    clock: Arc<dyn Clock>,
    claims: Arc<AtomicUsize>,
) -> Lane {
    let mut summary = DrainSummary::default();
    let mut size = BatchSize::new(limits.batch_size.clamp(1, MAX_BATCH_SIZE));
    let stopped = loop {
        if let Some(deadline) = limits.deadline {
            if deadline.saturating_duration_since(Instant::now()) < limits.margin {
                break StopReason::Deadline;
            }
        }
        // Reserve up to a batch of the drain's claims.
        let wanted = size.now();
        let reserved = claims.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |taken| {
            (taken < limits.max_jobs).then(|| taken + wanted.min(limits.max_jobs - taken))
        });
        let wanted = match reserved {
            Ok(taken) => wanted.min(limits.max_jobs - taken),
            Err(_) => break StopReason::Cap,
        };
        let claims = match store
            .queue()
            .claim_batch(clock.now(), settings.lease, wanted)
            .await
        {
            Ok(claims) if claims.is_empty() => break StopReason::Empty,
            Ok(claims) => claims,
            Err(error) => {
                tracing::error!(%error, "claiming jobs failed");
                break StopReason::DatabaseError;
            }
        };
        summary.claimed += claims.len();
        let mut jobs = Vec::with_capacity(claims.len());
        let mut database_failed = false;
        for claim in claims {
            match claim {
                Claim::Job(claimed) => {
                    if claimed.touched_by_another_worker() {
                        // The app's own worker is still running beside us: say so loudly.
                        tracing::error!(job_id = %claimed.job.id, attempts = claimed.job.attempts,
                                            claims = claimed.attempt(),
                                            "another worker claimed this job too: stop the app's worker");
                        metrics::counter!(telemetry::FOREIGN_CLAIMS).increment(1);
                        summary.foreign_claims += 1;
                    }
                    jobs.push(*claimed)
                }
                Claim::Unreadable(unreadable) => {
                    match store
                        .queue()
                        .fail_unreadable(&unreadable, clock.now())
                        .await
                    {
                        Ok(JobOutcome::Failed) => {
                            metrics::counter!(telemetry::JOBS_FAILED).increment(1);
                            summary.failed += 1;
                        }
                        Ok(_) => summary.lost_lease += 1,
                        Err(error) => {
                            tracing::error!(%error, "failing an unreadable job failed");
                            database_failed = true;
                        }
                    }
                }
            }
        }
        if database_failed {
            break StopReason::DatabaseError;
        }
        if jobs.is_empty() {
            continue;
        }
        let batch_started = Instant::now();
        let report = match store
            .rewards()
            .process_batch(&jobs, clock.now(), &settings)
            .await
        {
            Ok(report) => report,
            Err(error) => {
                tracing::error!(jobs = jobs.len(), %error, "a batch of reward jobs could not be processed");
                break StopReason::DatabaseError;
            }
        };
        let elapsed = batch_started.elapsed();
        // Per job, its share of the batch's time.
        let per_job_ms = elapsed.as_secs_f64() * 1000.0 / jobs.len() as f64;
        summary.batches += 1;
        summary.conflicts += report.conflicts;
        summary.splits += report.splits;
        summary.cuts += report.cuts;
        summary.turn_waits += report.waits;
        let longest = report.longest_transaction;
        summary.longest_batch_ms = summary
            .longest_batch_ms
            .max(u64::try_from(longest.as_millis()).unwrap_or(u64::MAX));
        size.after(report.cuts > 0, longest, settings.batch_time_budget);
        metrics::histogram!(telemetry::BATCH_TRANSACTION_MS).record(longest.as_secs_f64() * 1000.0);
        metrics::counter!(telemetry::BATCH_TURN_WAITS)
            .increment(u64::try_from(report.waits).unwrap_or(u64::MAX));
        summary.on_unusable_settings += report.on_unusable_settings;
        if report.on_unusable_settings > 0 {
            metrics::counter!(telemetry::INVALID_REWARD_SETTINGS)
                .increment(u64::try_from(report.on_unusable_settings).unwrap_or(u64::MAX));
        }
        for (claimed, outcome) in jobs.iter().zip(&report.outcomes) {
            let counter = match outcome {
                JobOutcome::Completed => Some(telemetry::JOBS_COMPLETED),
                JobOutcome::Retried { .. } => Some(telemetry::JOBS_RETRIED),
                JobOutcome::Failed => Some(telemetry::JOBS_FAILED),
                JobOutcome::LostLease => None,
                JobOutcome::Abandoned => None,
            };
            if let Some(name) = counter {
                metrics::counter!(name).increment(1);
            }
            metrics::histogram!(telemetry::JOB_PROCESSING_MS).record(per_job_ms);
            tracing::info!(
                job_id = %claimed.job.id,
                customer_id = %claimed.job.customer_id,
                attempt = claimed.attempt(),
                outcome = ?outcome,
                batch = jobs.len(),
                batch_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                "reward job processed"
            );
            match outcome {
                JobOutcome::Completed => summary.completed += 1,
                JobOutcome::Retried { .. } => summary.retried += 1,
                JobOutcome::Failed => summary.failed += 1,
                JobOutcome::LostLease => summary.lost_lease += 1,
                JobOutcome::Abandoned => summary.abandoned += 1,
            }
        }
    };
    Lane { summary, stopped }
}

fn is_zero(count: &usize) -> bool {
    *count == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lane_claims_less_after_a_cut_and_grows_back_after_fast_batches() {
        let budget = Duration::from_secs(4);
        let mut size = BatchSize::new(50);
        size.after(true, Duration::from_secs(5), budget);
        assert_eq!(size.now(), 25);
        size.after(true, Duration::from_secs(5), budget);
        size.after(false, Duration::from_secs(2), budget);
        assert_eq!(
            size.now(),
            12,
            "a batch within budget but not fast keeps the size"
        );
        size.after(false, Duration::from_millis(100), budget);
        size.after(false, Duration::from_millis(100), budget);
        size.after(false, Duration::from_millis(100), budget);
        assert_eq!(size.now(), 50, "never above the configured size");
        for _ in 0..10 {
            size.after(true, Duration::from_secs(5), budget);
        }
        assert_eq!(size.now(), 1);
    }
}
