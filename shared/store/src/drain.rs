//! Draining the queue (SPEC §6.4): claim and process jobs until none is claimable, the
//! invocation's remaining time falls under a safety margin, or a per-invocation cap is reached,
//! with at most `concurrency` jobs in flight. Several drains may run at once (several Lambda
//! invocations, or `mall drain` beside them): atomic claims keep them apart.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mongodb::bson::DateTime;
use serde::Serialize;
use tokio::task::JoinSet;

use crate::queue::{Claim, FailureOutcome, QueueSettings};
use crate::rewards::JobOutcome;
use crate::Store;

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
        crate::queue::add(DateTime::now(), self.0)
    }
}

/// Bounds of one drain.
#[derive(Clone, Copy, Debug)]
pub struct DrainLimits {
    /// Jobs in flight at once (`WORKER_CONCURRENCY`).
    pub concurrency: usize,
    /// At most this many claims per drain.
    pub max_jobs: usize,
    /// When the invocation must have returned (from the Lambda context), if any.
    pub deadline: Option<Instant>,
    /// Stop claiming when less than this remains before the deadline (`WORKER_TIME_MARGIN_MS`).
    pub margin: Duration,
}

impl Default for DrainLimits {
    fn default() -> Self {
        DrainLimits {
            concurrency: 4,
            max_jobs: 1_000,
            deadline: None,
            margin: Duration::from_millis(5_000),
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
    pub abandoned: usize,
    pub duration_ms: u64,
    pub stopped: Option<StopReason>,
}

struct Lane {
    summary: DrainSummary,
    stopped: StopReason,
}

impl Store {
    /// Drains the queue within `limits` and returns what it did.
    pub async fn drain(
        &self,
        settings: QueueSettings,
        limits: DrainLimits,
        clock: Arc<dyn Clock>,
    ) -> DrainSummary {
        let started = Instant::now();
        let claims = Arc::new(AtomicUsize::new(0));
        let mut lanes = JoinSet::new();
        for _ in 0..limits.concurrency.max(1) {
            let store = self.clone();
            let claims = Arc::clone(&claims);
            let clock = Arc::clone(&clock);
            lanes.spawn(async move { store.drain_lane(settings, limits, clock, claims).await });
        }
        let mut summary = DrainSummary::default();
        let mut reasons = Vec::new();
        while let Some(lane) = lanes.join_next().await {
            let Ok(lane) = lane else {
                reasons.push(StopReason::DatabaseError);
                continue;
            };
            summary.claimed += lane.summary.claimed;
            summary.completed += lane.summary.completed;
            summary.retried += lane.summary.retried;
            summary.failed += lane.summary.failed;
            summary.lost_lease += lane.summary.lost_lease;
            summary.abandoned += lane.summary.abandoned;
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
        &self,
        settings: QueueSettings,
        limits: DrainLimits,
        clock: Arc<dyn Clock>,
        claims: Arc<AtomicUsize>,
    ) -> Lane {
        let mut summary = DrainSummary::default();
        let stopped = loop {
            if let Some(deadline) = limits.deadline {
                if deadline.saturating_duration_since(Instant::now()) < limits.margin {
                    break StopReason::Deadline;
                }
            }
            if claims.fetch_add(1, Ordering::SeqCst) >= limits.max_jobs {
                break StopReason::Cap;
            }
            let claimed = match self.claim_next(clock.now(), settings.lease).await {
                Ok(Some(Claim::Job(claimed))) => *claimed,
                Ok(Some(Claim::Unreadable(unreadable))) => {
                    summary.claimed += 1;
                    match self.fail_unreadable(&unreadable, clock.now()).await {
                        Ok(FailureOutcome::Failed) => {
                            metrics::counter!(crate::telemetry::JOBS_FAILED).increment(1);
                            summary.failed += 1;
                        }
                        Ok(_) => summary.lost_lease += 1,
                        Err(error) => {
                            tracing::error!(%error, "failing an unreadable job failed");
                            break StopReason::DatabaseError;
                        }
                    }
                    continue;
                }
                Ok(None) => break StopReason::Empty,
                Err(error) => {
                    tracing::error!(%error, "claiming a job failed");
                    break StopReason::DatabaseError;
                }
            };
            summary.claimed += 1;
            let job_started = Instant::now();
            match self.process_claimed(&claimed, clock.now(), &settings).await {
                Ok(outcome) => {
                    let elapsed_ms = job_started.elapsed().as_secs_f64() * 1000.0;
                    metrics::histogram!(crate::telemetry::JOB_PROCESSING_MS).record(elapsed_ms);
                    let counter = match outcome {
                        JobOutcome::Completed => Some(crate::telemetry::JOBS_COMPLETED),
                        JobOutcome::Retried { .. } => Some(crate::telemetry::JOBS_RETRIED),
                        JobOutcome::Failed => Some(crate::telemetry::JOBS_FAILED),
                        JobOutcome::LostLease | JobOutcome::Abandoned => None,
                    };
                    if let Some(name) = counter {
                        metrics::counter!(name).increment(1);
                    }
                    tracing::info!(
                        job_id = %claimed.job.id,
                        customer_id = %claimed.job.customer_id,
                        attempt = claimed.attempt(),
                        outcome = ?outcome,
                        processing_ms = u64::try_from(job_started.elapsed().as_millis()).unwrap_or(u64::MAX),
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
                Err(error) => {
                    tracing::error!(job_id = %claimed.job.id, %error, "a reward job could not be processed");
                    break StopReason::DatabaseError;
                }
            }
        };
        Lane { summary, stopped }
    }
}
