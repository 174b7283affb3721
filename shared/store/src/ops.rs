//! Operator actions on the reward queue (SPEC §7): the queue's status, and the safe re-drive of
//! dead jobs.
//!
//! Guarantees:
//! - `status` is one aggregation (`$facet`), read-only.
//! - `redrive` touches only jobs that are `failed`, each in its own small transaction whose
//!   update has `status: "failed"` in its filter: the job goes back to `pending` (attempts reset,
//!   due now, lease cleared, a `redrives` entry) and its purchase back to `rewardsStatus:
//!   processing`. A completed, pending or processing job is never touched, and two operators
//!   re-driving the same jobs at once re-drive each job once.
//! - A dry run reads and reports, and writes nothing.

use futures_util::TryStreamExt;
use mongodb::bson::{doc, oid::ObjectId, Bson, DateTime, Document};
use serde::{Deserialize, Serialize};

use crate::collections;
use crate::documents::CustomerDoc;
use crate::documents::{JobErrorDoc, JobStatus, RedriveDoc};
use crate::error::StoreError;
use crate::store::Store;
use crate::transaction::TransactionRetry;

/// How many jobs one re-drive may touch at most.
pub const MAX_REDRIVE: usize = 1000;
/// How many jobs a re-drive by filter touches when no limit is given.
pub const DEFAULT_REDRIVE_LIMIT: usize = 100;
/// How many recent failures `status` lists.
pub const RECENT_FAILURES: i64 = 10;

/// The queue at a glance.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueStatus {
    pub pending: u64,
    pub processing: u64,
    pub completed: u64,
    pub failed: u64,
    /// Seconds since the oldest pending job was created.
    pub oldest_pending_age_seconds: Option<i64>,
    /// `processing` jobs whose lease has expired: their worker died; the next drain takes them.
    pub expired_leases: u64,
    /// The most recent dead jobs, newest first.
    pub recent_failures: Vec<FailedJob>,
    /// Time from the claim that completed a job to its completion (completed jobs still kept).
    pub processing_ms_avg: Option<i64>,
    pub processing_ms_max: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedJob {
    #[serde(serialize_with = "plain::id")]
    pub job_id: ObjectId,
    #[serde(serialize_with = "plain::id")]
    pub checkout_transaction_id: ObjectId,
    #[serde(serialize_with = "plain::id")]
    pub customer_id: ObjectId,
    pub attempts: i32,
    #[serde(serialize_with = "plain::time")]
    pub failed_at: Option<DateTime>,
    #[serde(serialize_with = "plain::error")]
    pub last_error: Option<JobErrorDoc>,
}

/// Operators read JSON, not BSON: ids as hex strings, times as RFC 3339.
pub(crate) mod plain {
    use mongodb::bson::{oid::ObjectId, DateTime};
    use serde::ser::{SerializeSeq, SerializeStruct};
    use serde::Serializer;

    use crate::documents::JobErrorDoc;

    pub fn id<S: Serializer>(id: &ObjectId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&id.to_hex())
    }

    pub fn ids<S: Serializer>(ids: &[ObjectId], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(ids.len()))?;
        for id in ids {
            seq.serialize_element(&id.to_hex())?;
        }
        seq.end()
    }

    fn rfc3339(time: DateTime) -> String {
        time.try_to_rfc3339_string()
            .unwrap_or_else(|_| time.timestamp_millis().to_string())
    }

    pub fn time<S: Serializer>(time: &Option<DateTime>, s: S) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => s.serialize_str(&rfc3339(*time)),
            None => s.serialize_none(),
        }
    }

    pub fn error<S: Serializer>(error: &Option<JobErrorDoc>, s: S) -> Result<S::Ok, S::Error> {
        let Some(error) = error else {
            return s.serialize_none();
        };
        let mut out = s.serialize_struct("JobError", 4)?;
        out.serialize_field("attempt", &error.attempt)?;
        out.serialize_field("at", &rfc3339(error.at))?;
        out.serialize_field("kind", &error.kind)?;
        out.serialize_field("message", &error.message)?;
        out.end()
    }
}

/// Which jobs an operator wants re-driven.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedriveSelection {
    /// These jobs (each is reported: re-driven, or skipped with the reason).
    Ids(Vec<ObjectId>),
    /// Failed jobs, oldest failure first, optionally failed before a time or with an error
    /// message containing a text (case-insensitive), at most `limit`.
    Failed {
        failed_before: Option<DateTime>,
        error_contains: Option<String>,
        limit: usize,
    },
}

/// A validated re-drive: build it with [`RedriveRequest::new`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedriveRequest {
    selection: RedriveSelection,
    reason: String,
    dry_run: bool,
}

/// A re-drive as an operator writes it — the `mall jobs redrive` flags or the `retry-failed`
/// event's fields — before it is checked: [`RedriveRequest::parse`] is the one reading of it
/// for both.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedriveInput {
    /// The jobs named (24 hex digits each).
    pub job_ids: Option<Vec<String>>,
    /// Every failed job that matches the filters.
    pub all: bool,
    /// With `all`: only jobs that failed before this RFC 3339 time.
    pub failed_before: Option<String>,
    /// With `all`: only jobs whose error contains this text (case-insensitive; empty: any).
    pub error_contains: Option<String>,
    /// With `all`: at most this many (default [`DEFAULT_REDRIVE_LIMIT`]).
    pub limit: Option<usize>,
    pub reason: String,
    pub dry_run: bool,
}

/// Why a re-drive request was refused (before anything was read or written).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RedriveRequestError {
    #[error(
        "choose the jobs: either job ids (jobIds, --id) or all failed jobs (all, --all), not both"
    )]
    Selection,
    #[error("the filters failedBefore, errorContains and limit go with all failed jobs, not with job ids")]
    FiltersWithIds,
    #[error("{0:?} is not a job id (24 hex digits)")]
    JobId(String),
    #[error("the failed-before time {0:?} is not an RFC 3339 time")]
    FailedBefore(String),
    #[error("a reason is required (1 to 500 characters)")]
    Reason,
    #[error("name 1 to {MAX_REDRIVE} job ids")]
    IdCount,
    #[error("limit must be from 1 to {MAX_REDRIVE}")]
    Limit,
}

impl RedriveRequest {
    /// Reads and checks an operator's re-drive, from either front.
    pub fn parse(input: RedriveInput) -> Result<Self, RedriveRequestError> {
        let filtered = input.failed_before.is_some()
            || input.error_contains.is_some()
            || input.limit.is_some();
        let selection = match (input.job_ids, input.all) {
            (Some(_), false) if filtered => return Err(RedriveRequestError::FiltersWithIds),
            (Some(ids), false) => RedriveSelection::Ids(
                ids.iter()
                    .map(|id| {
                        ObjectId::parse_str(id).map_err(|_| RedriveRequestError::JobId(id.clone()))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            (None, true) => RedriveSelection::Failed {
                failed_before: input
                    .failed_before
                    .map(|text| {
                        DateTime::parse_rfc3339_str(&text)
                            .map_err(|_| RedriveRequestError::FailedBefore(text))
                    })
                    .transpose()?,
                error_contains: input.error_contains.filter(|text| !text.is_empty()),
                limit: input.limit.unwrap_or(DEFAULT_REDRIVE_LIMIT),
            },
            _ => return Err(RedriveRequestError::Selection),
        };
        Self::new(selection, &input.reason, input.dry_run)
    }

    pub fn new(
        selection: RedriveSelection,
        reason: &str,
        dry_run: bool,
    ) -> Result<Self, RedriveRequestError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(RedriveRequestError::Reason);
        }
        match &selection {
            RedriveSelection::Ids(ids) if ids.is_empty() || ids.len() > MAX_REDRIVE => {
                return Err(RedriveRequestError::IdCount)
            }
            RedriveSelection::Failed { limit, .. } if *limit == 0 || *limit > MAX_REDRIVE => {
                return Err(RedriveRequestError::Limit)
            }
            _ => {}
        }
        Ok(RedriveRequest {
            selection,
            reason: reason.to_owned(),
            dry_run,
        })
    }

    pub fn selection(&self) -> &RedriveSelection {
        &self.selection
    }

    pub fn dry_run(&self) -> bool {
        self.dry_run
    }
}

/// Why a job asked for was not re-driven.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "reason")]
pub enum NotRedriven {
    /// No job has this id.
    UnknownId,
    /// Only `failed` jobs are re-driven.
    NotFailed { status: JobStatus },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SkippedJob {
    #[serde(serialize_with = "plain::id")]
    pub job_id: ObjectId,
    #[serde(flatten)]
    pub reason: NotRedriven,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RedriveReport {
    pub dry_run: bool,
    /// Failed jobs the selection found.
    #[serde(serialize_with = "plain::ids")]
    pub matched: Vec<ObjectId>,
    /// Jobs put back to `pending` by this call (none in a dry run).
    #[serde(serialize_with = "plain::ids")]
    pub redriven: Vec<ObjectId>,
    pub skipped: Vec<SkippedJob>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobState {
    #[serde(rename = "_id")]
    id: ObjectId,
    status: JobStatus,
}

#[derive(Deserialize)]
struct StatusCount {
    #[serde(rename = "_id")]
    status: Option<JobStatus>,
    n: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FailedRow {
    #[serde(rename = "_id")]
    id: ObjectId,
    checkout_transaction_id: ObjectId,
    customer_id: ObjectId,
    #[serde(default)]
    attempts: i32,
    #[serde(default)]
    failed_at: Option<DateTime>,
    #[serde(default)]
    last_error: Option<JobErrorDoc>,
}

#[derive(Deserialize)]
struct StatusFacets {
    #[serde(default)]
    counts: Vec<StatusCount>,
    #[serde(default, rename = "oldestPending")]
    oldest_pending: Vec<Document>,
    #[serde(default, rename = "expiredLeases")]
    expired_leases: Vec<Document>,
    #[serde(default, rename = "recentFailures")]
    recent_failures: Vec<FailedRow>,
    /// How long completed jobs took, start to completion.
    #[serde(default)]
    durations: Vec<Document>,
}

/// A regular expression that matches `text` literally.
fn literal_regex(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\^$.|?*+()[]{}".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

impl Operators<'_> {
    /// One job, atomically with its purchase. `None` when re-driven; the job's status when it was
    /// no longer `failed` (another operator, or a worker, got there first).
    async fn redrive_one(
        self,
        id: ObjectId,
        reason: &str,
        now: DateTime,
    ) -> Result<Option<JobStatus>, StoreError> {
        let entry = mongodb::bson::to_bson(&RedriveDoc {
            at: now,
            reason: reason.to_owned(),
        })
        .map_err(|e| StoreError::Unreadable(e.to_string()))?;
        let redriven = self
            .store
            .in_transaction(
                &TransactionRetry::default().snapshotless(),
                &mut (self, id, &entry, now),
                |session, (operators, id, entry, now)| {
                    Box::pin(
                        operators
                            .store
                            .queue()
                            .redrive_in(session, *id, entry, *now),
                    )
                },
            )
            .await?
            .value;
        if redriven {
            return Ok(None);
        }
        let status = self
            .store
            .queue()
            .job(id)
            .await?
            .map(|job| job.status)
            .unwrap_or(JobStatus::Failed);
        Ok(Some(status))
    }
}

/// The operators' operations (feature `operators`): queue status, re-drive, audit, cutover check, customers, demo seeding.
#[derive(Clone, Copy, Debug)]
pub struct Operators<'a> {
    pub(crate) store: &'a Store,
}

impl Operators<'_> {
    /// The queue's status in one aggregation.
    pub async fn queue_status(self, now: DateTime) -> Result<QueueStatus, StoreError> {
        let pipeline = vec![doc! {"$facet": {
            "counts": [{"$group": {"_id": "$status", "n": {"$sum": 1}}}],
            "oldestPending": [
                {"$match": {"status": JobStatus::Pending}},
                {"$sort": {"createdAt": 1}},
                {"$limit": 1},
                {"$project": {"createdAt": 1}},
            ],
            "expiredLeases": [
                {"$match": {"status": JobStatus::Processing, "leaseUntil": {"$lt": now}}},
                {"$count": "n"},
            ],
            "recentFailures": [
                {"$match": {"status": JobStatus::Failed}},
                {"$sort": {"failedAt": -1, "_id": -1}},
                {"$limit": RECENT_FAILURES},
                {"$project": {
                    "checkoutTransactionId": 1, "customerId": 1, "attempts": 1, "failedAt": 1,
                    "lastError": {"$arrayElemAt": ["$errors", -1]},
                }},
            ],
            "durations": [
                {"$match": {"status": JobStatus::Completed, "startedAt": {"$type": "date"},
                            "completedAt": {"$type": "date"}}},
                {"$project": {"ms": {"$subtract": ["$completedAt", "$startedAt"]}}},
                {"$group": {"_id": Bson::Null, "avg": {"$avg": "$ms"}, "max": {"$max": "$ms"}}},
            ],
        }}];
        let facets: Option<Document> = self
            .store
            .aggregate_first(collections::CHECKOUT_JOBS, pipeline)
            .await?;
        let facets: StatusFacets = match facets {
            Some(doc) => mongodb::bson::from_document(doc)
                .map_err(|e| StoreError::Unreadable(e.to_string()))?,
            None => return Ok(QueueStatus::default()),
        };

        let mut status = QueueStatus::default();
        for count in facets.counts {
            let n = u64::try_from(count.n).unwrap_or(0);
            match count.status {
                Some(JobStatus::Pending) => status.pending = n,
                Some(JobStatus::Processing) => status.processing = n,
                Some(JobStatus::Completed) => status.completed = n,
                Some(JobStatus::Failed) => status.failed = n,
                None => {}
            }
        }
        status.oldest_pending_age_seconds = facets
            .oldest_pending
            .first()
            .and_then(|d| d.get_datetime("createdAt").ok())
            .map(|created| (now.timestamp_millis() - created.timestamp_millis()) / 1000);
        status.expired_leases = facets
            .expired_leases
            .first()
            .and_then(|d| crate::documents::number(d, "n"))
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0);
        status.recent_failures = facets
            .recent_failures
            .into_iter()
            .map(|row| FailedJob {
                job_id: row.id,
                checkout_transaction_id: row.checkout_transaction_id,
                customer_id: row.customer_id,
                attempts: row.attempts,
                failed_at: row.failed_at,
                last_error: row.last_error,
            })
            .collect();
        if let Some(times) = facets.durations.first() {
            status.processing_ms_avg = crate::documents::number(times, "avg");
            status.processing_ms_max = crate::documents::number(times, "max");
        }
        Ok(status)
    }

    /// Re-drives the selected `failed` jobs (or, in a dry run, reports what it would do).
    pub async fn redrive(
        self,
        request: &RedriveRequest,
        now: DateTime,
    ) -> Result<RedriveReport, StoreError> {
        let mut report = RedriveReport {
            dry_run: request.dry_run,
            ..RedriveReport::default()
        };
        match &request.selection {
            RedriveSelection::Ids(ids) => {
                let found: Vec<JobState> = self
                    .store
                    .checkout_jobs()
                    .clone_with_type::<JobState>()
                    .find(doc! {"_id": {"$in": ids}})
                    .projection(doc! {"status": 1})
                    .await?
                    .try_collect()
                    .await?;
                for id in ids {
                    match found.iter().find(|job| job.id == *id) {
                        None => report.skipped.push(SkippedJob {
                            job_id: *id,
                            reason: NotRedriven::UnknownId,
                        }),
                        Some(job) if job.status != JobStatus::Failed => {
                            report.skipped.push(SkippedJob {
                                job_id: *id,
                                reason: NotRedriven::NotFailed { status: job.status },
                            })
                        }
                        Some(_) if !report.matched.contains(id) => report.matched.push(*id),
                        Some(_) => {}
                    }
                }
            }
            RedriveSelection::Failed {
                failed_before,
                error_contains,
                limit,
            } => {
                let mut filter = doc! {"status": JobStatus::Failed};
                if let Some(before) = failed_before {
                    filter.insert("failedAt", doc! {"$lt": *before});
                }
                if let Some(text) = error_contains {
                    filter.insert(
                        "errors.message",
                        doc! {"$regex": literal_regex(text), "$options": "i"},
                    );
                }
                let limit = i64::try_from((*limit).min(MAX_REDRIVE)).unwrap_or(0);
                let found: Vec<JobState> = self
                    .store
                    .checkout_jobs()
                    .clone_with_type::<JobState>()
                    .find(filter)
                    .sort(doc! {"failedAt": 1, "_id": 1})
                    .limit(limit)
                    .projection(doc! {"status": 1})
                    .await?
                    .try_collect()
                    .await?;
                report.matched = found.into_iter().map(|job| job.id).collect();
            }
        }
        if request.dry_run {
            return Ok(report);
        }
        for id in report.matched.clone() {
            match self.redrive_one(id, &request.reason, now).await? {
                None => report.redriven.push(id),
                Some(status) => report.skipped.push(SkippedJob {
                    job_id: id,
                    reason: NotRedriven::NotFailed { status },
                }),
            }
        }
        Ok(report)
    }
}

impl Operators<'_> {
    /// Up to `limit` customers, oldest first: the operator's and the demo's view of wallets and
    /// levels.
    pub async fn list_customers(self, limit: i64) -> Result<Vec<CustomerDoc>, StoreError> {
        use futures_util::TryStreamExt;
        Ok(self
            .store
            .customers()
            .find(mongodb::bson::doc! {})
            .sort(mongodb::bson::doc! {"createdAt": 1, "_id": 1})
            .limit(limit)
            .await?
            .try_collect()
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_need_a_reason_and_bounded_selections() {
        let ids = RedriveSelection::Ids(vec![ObjectId::new()]);
        assert!(RedriveRequest::new(ids.clone(), " fixed the tree ", false).is_ok());
        assert_eq!(
            RedriveRequest::new(ids.clone(), "  ", false),
            Err(RedriveRequestError::Reason)
        );
        assert_eq!(
            RedriveRequest::new(ids, &"x".repeat(501), false),
            Err(RedriveRequestError::Reason)
        );
        assert_eq!(
            RedriveRequest::new(RedriveSelection::Ids(vec![]), "r", false),
            Err(RedriveRequestError::IdCount)
        );
        let failed = |limit| RedriveSelection::Failed {
            failed_before: None,
            error_contains: None,
            limit,
        };
        assert_eq!(
            RedriveRequest::new(failed(0), "r", true),
            Err(RedriveRequestError::Limit)
        );
        assert_eq!(
            RedriveRequest::new(failed(1001), "r", true),
            Err(RedriveRequestError::Limit)
        );
        assert!(RedriveRequest::new(failed(1000), "r", true).is_ok());
    }

    #[test]
    fn error_text_filters_match_literally() {
        assert_eq!(literal_regex("a.b*(c)"), r"a\.b\*\(c\)");
        assert_eq!(literal_regex("write conflict"), "write conflict");
    }
}
