//! Processing claimed reward jobs (SPEC §6.3), many in one transaction.
//!
//! A batch of claimed jobs is applied in one snapshot transaction of at most seven commands and a
//! commit, whatever its size and the depth of its chains:
//!
//! 0. before the transaction, the buyers' chains are learned by `_id` probes where this
//!    environment does not know them yet ([`crate::chains`]; a warm environment knows them and
//!    sends nothing); then the transaction's first write takes the batches' turn (one small
//!    document, [`collections::BATCH_TURN_ID`]): a batch beside another stops there, before any load, and
//!    waits for the other's commit instead of loading, planning and then losing on the
//!    ancestors both credit;
//! 1. one aggregation loads every buyer's chain at once (every member by `_id`, so an ancestor
//!    shared by many chains is read once, then confirmed against the parents the snapshot holds:
//!    a member the links missed is read in the same snapshot), the levels of every loaded
//!    customer's directs, the state of every job's purchase and of the gifts pool, and — for jobs
//!    the app's own checkout queued — the admin's settings and the buyers' earlier purchases;
//! 2. the pure rules plan the jobs one by one in claim order on a [`ForestView`], each job
//!    seeing the promotions of the jobs before it — the result of processing them one at a time
//!    in that order — and the gifts pool as the jobs before it left it;
//! 3. every customer's credits and promotions are merged into one write each (one `update`
//!    command for all), every reward entry goes into one `insert`, every purchase's log into one
//!    `update`, the gifts pool's balance into one `update` (when the batch moved it), and every
//!    job's fenced completion into one `update`; then commit.
//!
//! The three steps are the three child modules, `load`, `plan` (pure) and `write`; this file
//! ties them: a transaction's attempt (`apply_batch`), the splitting of a group that cannot
//! commit, the rare paths of a job reclaimed past its attempts, and each job's outcome settled.
//!
//! The gifts pool (the app's: Σ `gifts_reward` − Σ `signup_gifts_reward` − Σ
//! `level_gift_reward`) is kept in one document of ours, built from the ledger by the first batch
//! whose jobs may spend it and written by every batch that moves it: two batches that move it
//! conflict, so no concurrency can overdraw it, and its cost per batch does not grow with the
//! ledger.
//!
//! Wallets are points as the app stores them (Int32 or Double). A credit is never a server-side
//! `$inc` of a Double: each recipient's new balance is computed exactly from the balance read in
//! this transaction's snapshot plus all its credits in the batch, and written by `_id`: a write
//! to that wallet by anyone since the snapshot makes the write conflict, and the batch is run
//! again on fresh reads (every write of a batch is by `_id` alone: a primary-key probe on any
//! server, fenced by what the snapshot read). Entries, the purchase's `treeDistribution` and its pools have the app's shapes.
//!
//! Promotions are serializable across concurrent batches: a batch that promotes a customer also
//! writes that customer's parent, whose promotion depends on it, so two batches promoting
//! siblings conflict and one of them re-reads the other's promotion.
//!
//! Exactly once: the payouts and the jobs' completions commit together, and each completion is
//! fenced by its claim, so a worker that lost a lease writes nothing for that job; a purchase
//! already paid (a completed job put back to `pending` by hand) is recognised in the load and its
//! job completes without paying. If a worker dies before the commit nothing happened, and its
//! jobs are claimed again after their lease.
//!
//! One bad job never holds the others: a job that cannot be planned (a missing buyer or
//! purchase, a cycle, an unreadable wallet) leaves the batch and fails alone; a batch whose
//! transaction keeps conflicting, or that the server refuses, is split in halves, down to single
//! jobs, before any job is released or failed.
//!
//! A transaction is bounded in time: a batch whose load and plan run past
//! [`QueueSettings::batch_time_budget`] (5 s by default, far inside mongod's 60 s transaction
//! lifetime and the lease) is aborted and cut in halves, and the drain claims less next time.

use std::collections::HashSet;

use mongodb::bson::{doc, oid::ObjectId, DateTime, Document};
use mongodb::ClientSession;

use crate::collections;
use crate::documents::{JobEra, JobStatus};
use crate::error::StoreError;
use crate::failpoints::Failpoint;
use crate::queue::{add, Attempt, ClaimedJob, JobOutcome, QueueSettings};
use crate::store::Store;
use crate::transaction::{TransactionFailure, TransactionRetry};

mod error;
mod load;
mod plan;
mod write;

use error::BatchError;
use load::{PurchaseState, MAX_CHAIN_STEPS};
use plan::plan_job;
use write::{BatchWrites, Fenced};

/// Transaction attempts of a batch of several jobs before it is split in halves.
const BATCH_ATTEMPTS_BEFORE_SPLIT: u32 = 4;

/// What became of a batch: each job's outcome (in the order given), and how hard it was.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub outcomes: Vec<JobOutcome>,
    /// Transaction attempts lost to a write conflict or a wallet changed under the batch.
    pub conflicts: usize,
    /// Times a group of jobs was split in halves.
    pub splits: usize,
    /// Of those, times a group's load and plan ran past the time budget.
    pub cuts: usize,
    /// Times a transaction waited for its turn while another batch held it.
    pub waits: usize,
    /// The longest load, plan and write of an attempt (its transaction, before the commit).
    pub longest_transaction: std::time::Duration,
    /// Jobs of the app's own checkout paid on a settings document with fields that cannot be
    /// used (named in the log; `mall cutover check` names them too).
    pub on_unusable_settings: usize,
}

/// What one committed attempt of a batch did besides paying: the jobs that failed, and how
/// many of the app's jobs were paid on unusable settings.
#[derive(Default)]
struct Applied {
    failures: Vec<(usize, Attempt)>,
    on_unusable_settings: usize,
}

impl Rewards<'_> {
    /// A job claimed once more than it may be: complete it if it was paid already (put back to
    /// `pending` by hand after its last attempt), else fail it.
    async fn past_its_attempts(
        self,
        claimed: &ClaimedJob,
        now: DateTime,
        settings: &QueueSettings,
    ) -> Result<JobOutcome, StoreError> {
        if self.already_applied(&claimed.job).await? {
            return self.complete_applied(claimed, now, settings).await;
        }
        // Reclaimed after a worker died on its last attempt: the attempts are spent.
        let spent = Attempt::Retryable("the worker's lease expired on the last attempt".into());
        self.store
            .queue()
            .settle(claimed, spent, now, settings)
            .await
    }

    /// Which of the group's jobs this worker still holds (one command, after a fence failed).
    async fn still_held(
        self,
        jobs: &[ClaimedJob],
        group: &[usize],
    ) -> Result<HashSet<usize>, StoreError> {
        use futures_util::TryStreamExt;
        let fences: Vec<Document> = group.iter().map(|&i| jobs[i].fence()).collect();
        let held: Vec<Document> = self
            .store
            .database()
            .collection::<Document>(collections::CHECKOUT_JOBS)
            .find(doc! {"$or": fences})
            .projection(doc! {"_id": 1})
            .await?
            .try_collect()
            .await?;
        let held: HashSet<ObjectId> = held
            .iter()
            .filter_map(|d| d.get_object_id("_id").ok())
            .collect();
        Ok(group
            .iter()
            .copied()
            .filter(|&i| held.contains(&jobs[i].job.id))
            .collect())
    }

    /// Completes a job whose purchase was already paid, fenced, changing nothing else.
    async fn complete_applied(
        self,
        claimed: &ClaimedJob,
        now: DateTime,
        settings: &QueueSettings,
    ) -> Result<JobOutcome, StoreError> {
        tracing::warn!(job_id = %claimed.job.id, "the job was already applied; completing it");
        let ran = self
            .store
            .in_transaction(
                &TransactionRetry::background().snapshotless(),
                &mut (self, std::slice::from_ref(claimed), settings),
                |session, (rewards, jobs, settings)| {
                    Box::pin(rewards.complete_jobs(
                        session,
                        jobs,
                        &[0],
                        Fenced::ByFilter,
                        now,
                        settings,
                    ))
                },
            )
            .await;
        match ran {
            Ok(_) => Ok(JobOutcome::Completed),
            Err(TransactionFailure::Stopped(BatchError::LostLease)) => Ok(JobOutcome::LostLease),
            #[cfg(feature = "failpoints")]
            Err(TransactionFailure::Stopped(BatchError::Died)) => Ok(JobOutcome::Abandoned),
            Err(TransactionFailure::CommitUnknown(err)) => Err(err.into()),
            Err(other) => Err(StoreError::Unreadable(format!(
                "completing an applied job failed: {other:?}"
            ))),
        }
    }

    /// One attempt of a group's transaction: load, plan job by job, write everything merged.
    /// Returns the jobs that left the group, each with its own failure; the others are written
    /// and completed (the caller commits).
    async fn apply_batch(
        self,
        session: &mut ClientSession,
        jobs: &[ClaimedJob],
        group: &[usize],
        now: DateTime,
        settings: &QueueSettings,
    ) -> Result<Applied, BatchError> {
        if self
            .store
            .failpoints()
            .is_armed(Failpoint::JobRetryableFailure)
        {
            let injected = Attempt::Retryable("injected failure (test failpoint)".into());
            return Ok(Applied {
                failures: group.iter().map(|&i| (i, injected.clone())).collect(),
                on_unusable_settings: 0,
            });
        }
        // Batches take turns: this write is the transaction's first, so a batch that another
        // one is running beside stops here, before its load, and waits for the other's commit
        // instead of loading, planning and then losing on the customers both credit.
        self.take_turn(session, now).await?;
        let began = std::time::Instant::now();
        let within_budget = |began: std::time::Instant| {
            if group.len() > 1 && began.elapsed() > settings.batch_time_budget {
                return Err(BatchError::TooSlow);
            }
            Ok(())
        };
        let mut loaded = self.load_batch(session, jobs, group).await?;
        within_budget(began)?;
        self.die_at(Failpoint::JobAfterChainLoaded)?;
        // Every write below is by `_id` alone, fenced by this snapshot: a job claimed by another
        // worker is seen here, and one claimed after this snapshot was taken makes the
        // completion conflict (a transaction's write to a document written since its snapshot
        // is refused), so this batch is retried and then sees it.
        let held = |i: &usize| {
            loaded.fences.get(&jobs[*i].job.id).is_some_and(|fence| {
                fence.status.as_deref() == Some(JobStatus::Processing.as_str())
                    && fence.claim_token == Some(jobs[*i].token)
            })
        };
        if !group.iter().all(held) {
            return Err(BatchError::LostLease);
        }

        let mut left = Vec::new();
        let mut writes = BatchWrites::default();
        // The gifts pool is kept once it exists, and counted from the ledger by the first batch
        // whose jobs may spend it (the current economy's gifts), or after an earlier version's
        // document; each batch that keeps it counts first what others wrote to it since.
        let spends = group
            .iter()
            .any(|&i| jobs[i].job.payload.era().spends_gifts_pool());
        let refused = |e: String| BatchError::Refused(Attempt::Retryable(e));
        let stored = std::mem::replace(&mut loaded.pool, Ok(None))
            .map_err(|e| refused(format!("the gifts pool's document cannot be read: {e}")))?;
        let pool_built = stored.is_none() && (spends || loaded.pool_exists);
        let mut pool = match stored {
            Some(pool) => Some(pool),
            None if pool_built => Some(self.gifts_pool_from_ledger(session, now).await?),
            None => None,
        };
        // What others wrote to the pool since its document last counted, counted before any
        // job plans on it (a batch whose jobs cannot spend it leaves that to the next one that
        // can, and leaves the count where it was).
        let foreign = loaded
            .pool_foreign
            .take()
            .transpose()
            .map_err(|e| refused(e.to_string()))?;
        let counted_others = match (pool.as_mut(), &foreign) {
            (Some(pool), Some(foreign)) => {
                pool.count(foreign).map_err(|e| refused(e.to_string()))?
            }
            _ => false,
        };
        writes.pool = pool.as_ref().map(|p| p.balance);
        let pool_before = writes.pool;
        // The app's own jobs pay by the settings as they are now: say which fields cannot be
        // used, for each such job paid.
        let on_settings = |i: &usize| jobs[*i].job.payload.era() == JobEra::AppCurrent;
        let on_unusable_settings = if loaded.settings.problems.is_empty() {
            0
        } else {
            group.iter().filter(|i| on_settings(i)).count()
        };
        if on_unusable_settings > 0 {
            loaded.settings.report_problems();
        }
        for &i in group {
            let job = &jobs[i].job;
            let state = PurchaseState::of(loaded.purchases.get(&job.checkout_transaction_id), job);
            match state {
                PurchaseState::Open => {}
                PurchaseState::Applied => {
                    // Paid before: payouts and completion commit together, so the purchase says so.
                    tracing::warn!(job_id = %job.id, "the job was already applied; completing it");
                    writes.completed.push(i);
                    continue;
                }
                PurchaseState::Closed(status) => {
                    left.push((
                        i,
                        Attempt::Fatal(format!(
                            "the purchase's rewards are {status}, not processing"
                        )),
                    ));
                    continue;
                }
                PurchaseState::Missing => {
                    let message = format!(
                        "the purchase {} does not exist",
                        job.checkout_transaction_id
                    );
                    left.push((i, Attempt::Fatal(message)));
                    continue;
                }
            }
            within_budget(began)?;
            let planned = match plan_job(&loaded, &writes.balances, writes.pool, job, settings) {
                Ok(planned) => planned,
                Err(unpayable) => {
                    left.push((i, Attempt::Fatal(unpayable.to_string())));
                    continue;
                }
            };
            loaded.view.apply(&planned.plan);
            // A second job of the same purchase (never made by checkout) finds it paid.
            if let Some(record) = loaded.purchases.get_mut(&job.checkout_transaction_id) {
                record.logged = true;
            }
            writes
                .add(&planned, job, &loaded, now)
                .map_err(|e| BatchError::Refused(Attempt::Fatal(e.to_string())))?;
            writes.completed.push(i);
        }

        self.credit_and_promote(session, &mut writes).await?;
        self.die_at(Failpoint::JobAfterCredits)?;
        if let (Some(mut pool), Some(after)) = (pool, writes.pool) {
            if pool_built || counted_others || Some(after) != pool_before {
                pool.balance = after;
                if foreign.is_some() {
                    pool.advance(now);
                }
                self.keep_gifts_pool(session, &pool, pool_built, now)
                    .await?;
            }
        }
        if !writes.entries.is_empty() {
            self.store
                .reward_entries()
                .insert_many(std::mem::take(&mut writes.entries))
                .session(&mut *session)
                .await?;
        }
        self.die_at(Failpoint::JobAfterEntries)?;
        self.log_purchases(session, &mut writes).await?;
        self.die_at(Failpoint::JobBeforeCompletion)?;
        self.complete_jobs(
            session,
            jobs,
            &writes.completed,
            Fenced::BySnapshot,
            now,
            settings,
        )
        .await?;
        self.die_at(Failpoint::JobBeforeCommit)?;
        Ok(Applied {
            failures: left,
            on_unusable_settings,
        })
    }

    /// A test's simulated crash at `point` (without the `failpoints` feature, nothing).
    #[cfg(feature = "failpoints")]
    fn die_at(self, point: Failpoint) -> Result<(), BatchError> {
        if self.store.failpoints().is_armed(point) {
            return Err(BatchError::Died);
        }
        Ok(())
    }

    #[cfg(not(feature = "failpoints"))]
    #[inline]
    fn die_at(self, _point: Failpoint) -> Result<(), BatchError> {
        Ok(())
    }
}

/// The reward batches: load, plan and write a batch of claimed jobs in one transaction.
#[derive(Clone, Copy, Debug)]
pub struct Rewards<'a> {
    pub(crate) store: &'a Store,
}

impl Rewards<'_> {
    /// Processes one claimed job to its outcome (a batch of one).
    pub async fn process_claimed(
        self,
        claimed: &ClaimedJob,
        now: DateTime,
        settings: &QueueSettings,
    ) -> Result<JobOutcome, StoreError> {
        let report = self
            .process_batch(std::slice::from_ref(claimed), now, settings)
            .await?;
        Ok(report
            .outcomes
            .first()
            .copied()
            .unwrap_or(JobOutcome::LostLease))
    }

    /// Processes claimed jobs (in claim order) to their outcomes: completed, retried later,
    /// dead, or left alone because the claim was lost. `Err` only when the database could not
    /// even record a failure (those jobs' leases then expire and another worker takes them).
    pub async fn process_batch(
        self,
        jobs: &[ClaimedJob],
        now: DateTime,
        settings: &QueueSettings,
    ) -> Result<BatchReport, StoreError> {
        // `now` is when the batch began: each attempt's time is `now` plus the time since then
        // (learning chains and waiting for the turn included), so committed jobs' `completedAt`
        // follow their commits.
        let started = std::time::Instant::now();
        let mut outcomes: Vec<Option<JobOutcome>> = vec![None; jobs.len()];
        let mut attempts: Vec<Option<Attempt>> = vec![None; jobs.len()];
        let mut report = BatchReport::default();
        let mut live = Vec::with_capacity(jobs.len());
        for (i, claimed) in jobs.iter().enumerate() {
            if claimed.attempt() > claimed.job.max_attempts {
                outcomes[i] = Some(self.past_its_attempts(claimed, now, settings).await?);
            } else {
                live.push(i);
            }
        }
        // The buyers' chains learned before the transaction (a warm environment knows them):
        // the transaction then reads them all in its one load.
        let buyers: Vec<ObjectId> = live.iter().map(|&i| jobs[i].job.customer_id).collect();
        let customers = self
            .store
            .database()
            .collection::<Document>(collections::CUSTOMERS);
        let learned = self
            .store
            .links()
            .learn_chains(&customers, &buyers, MAX_CHAIN_STEPS)
            .await;
        if let Err(error) = learned {
            // The batch's own reads find the chains (slower, in its snapshot).
            tracing::warn!(%error, "learning the buyers' referral chains failed");
        }
        // Groups still to run, the next at the end: splitting keeps the claim order.
        let mut groups = vec![live];
        let split = |group: &mut Vec<usize>, groups: &mut Vec<Vec<usize>>| {
            let second = group.split_off(group.len() / 2);
            groups.push(second);
            groups.push(std::mem::take(group));
        };
        while let Some(mut group) = groups.pop() {
            if group.is_empty() {
                continue;
            }
            let retry = if group.len() > 1 {
                TransactionRetry::background().attempts(BATCH_ATTEMPTS_BEFORE_SPLIT)
            } else {
                TransactionRetry::background()
            };
            let mut longest = std::time::Duration::ZERO;
            let ran = self
                .store
                .in_transaction(
                    &retry,
                    &mut (self, jobs, group.as_slice(), settings, &mut longest),
                    |session, (rewards, jobs, group, settings, longest)| {
                        // Each attempt writes its own time: the committed jobs' `completedAt`
                        // orders them as their commits are ordered wherever the order matters
                        // (an attempt that conflicts with another reads after the other commits).
                        let attempt_at = add(now, started.elapsed());
                        Box::pin(async move {
                            let began = std::time::Instant::now();
                            let applied = rewards
                                .apply_batch(session, jobs, group, attempt_at, settings)
                                .await;
                            if !matches!(applied, Err(BatchError::Busy)) {
                                **longest = (**longest).max(began.elapsed());
                            }
                            applied
                        })
                    },
                )
                .await;
            report.longest_transaction = report.longest_transaction.max(longest);
            let mut every = |attempt: Attempt, group: &[usize]| {
                for &i in group {
                    attempts[i] = Some(attempt.clone());
                }
            };
            match ran {
                Ok(committed) => {
                    report.conflicts += usize::try_from(committed.attempts - 1).unwrap_or(0);
                    report.waits += usize::try_from(committed.waits).unwrap_or(0);
                    every(Attempt::Done, &group);
                    report.on_unusable_settings += committed.value.on_unusable_settings;
                    for (i, failure) in committed.value.failures {
                        attempts[i] = Some(failure);
                    }
                }
                #[cfg(feature = "failpoints")]
                Err(TransactionFailure::Stopped(BatchError::Died)) => every(Attempt::Died, &group),
                Err(TransactionFailure::Stopped(BatchError::LostLease)) => {
                    let held = self.still_held(jobs, &group).await?;
                    if held.len() == group.len() {
                        // The snapshot saw a claim lost that the database now shows held (a
                        // claim moved twice meanwhile): contention; never loop on it.
                        report.conflicts += 1;
                        if group.len() > 1 {
                            report.splits += 1;
                            split(&mut group, &mut groups);
                        } else {
                            every(Attempt::Contended, &group);
                        }
                        continue;
                    }
                    let lost: Vec<usize> = group
                        .iter()
                        .copied()
                        .filter(|i| !held.contains(i))
                        .collect();
                    every(Attempt::Lost, &lost);
                    group.retain(|i| held.contains(i));
                    groups.push(group);
                }
                Err(TransactionFailure::Stopped(BatchError::TooSlow)) => {
                    // Only a group of several jobs is cut (one job's chain is bounded).
                    tracing::warn!(
                        jobs = group.len(),
                        budget_ms = settings.batch_time_budget.as_millis(),
                        "a batch ran past its time budget: cutting it in halves"
                    );
                    report.splits += 1;
                    report.cuts += 1;
                    split(&mut group, &mut groups);
                }
                // The turn stayed taken for the runner's whole patience: try again later.
                Err(TransactionFailure::Stopped(BatchError::Busy))
                | Err(TransactionFailure::Exhausted {
                    last: Some(BatchError::Busy),
                    ..
                }) => every(Attempt::Contended, &group),
                Err(TransactionFailure::Stopped(BatchError::Refused(failure)))
                    if group.len() > 1 =>
                {
                    tracing::warn!(jobs = group.len(), error = ?failure,
                                   "a batch was refused: splitting it");
                    report.splits += 1;
                    split(&mut group, &mut groups);
                }
                Err(TransactionFailure::Stopped(
                    BatchError::Refused(failure) | BatchError::Unavailable(failure),
                )) => every(failure, &group),
                // The runner retries conflicts and never stops on one; were it to, the jobs
                // would be tried again later.
                Err(TransactionFailure::Stopped(BatchError::Conflict(why))) => {
                    every(Attempt::Retryable(why), &group)
                }
                // Committed or not: if it was, the jobs are completed and the fenced failure
                // finds them so (a lost lease); if not, they are retried.
                Err(TransactionFailure::CommitUnknown(err)) => every(
                    Attempt::Retryable(format!("the commit's outcome is unknown: {err}")),
                    &group,
                ),
                Err(TransactionFailure::Exhausted {
                    attempts: tries, ..
                }) => {
                    report.conflicts += usize::try_from(tries).unwrap_or(0);
                    if group.len() > 1 {
                        report.splits += 1;
                        split(&mut group, &mut groups);
                    } else {
                        every(Attempt::Contended, &group);
                    }
                }
            }
        }
        for (i, claimed) in jobs.iter().enumerate() {
            if outcomes[i].is_none() {
                let attempt = attempts[i].take().unwrap_or(Attempt::Lost);
                outcomes[i] = Some(
                    self.store
                        .queue()
                        .settle(claimed, attempt, now, settings)
                        .await?,
                );
            }
        }
        report.outcomes = outcomes
            .into_iter()
            .map(|o| o.unwrap_or(JobOutcome::LostLease))
            .collect();
        Ok(report)
    }
}
