//! `audit`: reads the whole database and checks the promises the system makes about it.
//!
//! Invariants checked (each broken one is a [`Violation`]):
//! - every purchase has exactly one reward job, and every job has its purchase; a completed
//!   purchase whose job is gone was retired by the retention TTL and is counted, not flagged;
//! - a job's status and its purchase's `rewardsStatus` agree (both are written in one
//!   transaction: pending/processing ↔ processing, completed ↔ completed, failed ↔ failed);
//! - a completed purchase's reward entries (tree payouts and the two pools) add up to its `R`
//!   to the milli-point, and so does its `treeDistribution` log; a purchase not completed has no
//!   entries at all (nothing half-written);
//! - no two entries of one kind to one recipient (customer or pool) for one purchase;
//! - no wallet below zero;
//! - every `failed` job carries its errors;
//! - the gifts pool's document (once a batch built it) holds what the app's formula gives over
//!   the whole ledger (Σ completed `gifts_reward` − Σ `signup_gifts_reward` − Σ
//!   `level_gift_reward`); a pool below zero is a warning (only the app's own spends can take it
//!   there: our jobs pay a gift only while the pool covers it).
//!
//! In the current economy a purchase's R is its tree payouts, its direct-referral reward and
//! its two pool entries; its signup and level gifts come out of the gifts pool, outside R.
//!
//! The original system's purchases (no `rewardsStatus`: paid, if at all, by its own float rules)
//! and its reward entries (no link to their purchase) cannot be held to these promises: they are
//! counted as legacy, not flagged. Once our worker pays an original's pending job, its purchase is
//! ours to check like any other.
//!
//! The audit is read-only: four plain reads (customers below zero, purchases, jobs, entries),
//! streamed with small projections; sums are exact (`i128`). The checks themselves are the pure
//! [`check`] over the collected [`AuditFacts`], unit-tested without a database.

use std::collections::HashMap;

use futures_util::TryStreamExt;
use mongodb::bson::{doc, oid::ObjectId, Document};
use serde::Serialize;

use crate::documents::{JobStatus, RewardsStatus, TransactionType};
use crate::error::StoreError;
use crate::ops::plain;
use crate::ops::Operators;

/// A purchase as the audit sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditPurchase {
    pub id: ObjectId,
    /// R, in milli-points.
    pub reward_points: i64,
    /// `None` for the original system's purchases (legacy).
    pub rewards_status: Option<RewardsStatus>,
    /// `tree distributed + gifts final + app final` from the purchase's log, when it has one.
    pub logged_total: Option<i128>,
}

/// A job as the audit sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditJob {
    pub id: ObjectId,
    pub purchase_id: ObjectId,
    pub status: JobStatus,
    pub errors: usize,
}

/// A reward entry as the audit sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub purchase_id: ObjectId,
    pub kind: TransactionType,
    /// The customer's id, or the pool's name.
    pub recipient: String,
    pub amount: i64,
}

/// Everything the checks need, read from the database (or built by a test).
#[derive(Clone, Debug, Default)]
pub struct AuditFacts {
    pub customers: u64,
    /// Wallets below zero: (customer, milli-points).
    pub negative_wallets: Vec<(ObjectId, i64)>,
    pub purchases: Vec<AuditPurchase>,
    pub jobs: Vec<AuditJob>,
    pub entries: Vec<AuditEntry>,
    /// The original system's reward entries (no `relatedTransaction`).
    pub legacy_entries: u64,
    /// The gifts pool's document balance, milli-points, once built.
    pub gifts_pool: Option<i64>,
    /// The app's formula over the whole ledger, milli-points.
    pub gifts_ledger: i128,
    /// Pool entries others wrote that the document has not counted yet (the next batch that
    /// keeps the pool counts them): how many, and their change to the pool, milli-points.
    pub gifts_uncounted: (usize, i128),
}

/// One broken promise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "violation", rename_all = "snake_case")]
pub enum Violation {
    PurchaseWithoutJob {
        #[serde(serialize_with = "plain::id")]
        purchase_id: ObjectId,
    },
    PurchaseWithSeveralJobs {
        #[serde(serialize_with = "plain::id")]
        purchase_id: ObjectId,
        jobs: usize,
    },
    JobWithoutPurchase {
        #[serde(serialize_with = "plain::id")]
        job_id: ObjectId,
        #[serde(serialize_with = "plain::id")]
        purchase_id: ObjectId,
    },
    StatusMismatch {
        #[serde(serialize_with = "plain::id")]
        job_id: ObjectId,
        job_status: JobStatus,
        purchase_status: RewardsStatus,
    },
    RewardNotConserved {
        #[serde(serialize_with = "plain::id")]
        purchase_id: ObjectId,
        /// R, milli-points.
        reward_milli: i64,
        /// What the entries credit, milli-points.
        credited_milli: String,
    },
    LogNotConserved {
        #[serde(serialize_with = "plain::id")]
        purchase_id: ObjectId,
        reward_milli: i64,
        logged_milli: String,
    },
    EntriesBeforeCompletion {
        #[serde(serialize_with = "plain::id")]
        purchase_id: ObjectId,
        purchase_status: RewardsStatus,
        entries: usize,
    },
    EntriesWithoutPurchase {
        #[serde(serialize_with = "plain::id")]
        purchase_id: ObjectId,
        entries: usize,
    },
    DuplicatePayout {
        #[serde(serialize_with = "plain::id")]
        purchase_id: ObjectId,
        kind: TransactionType,
        recipient: String,
        count: usize,
    },
    NegativeWallet {
        #[serde(serialize_with = "plain::id")]
        customer_id: ObjectId,
        points_milli: i64,
    },
    FailedJobWithoutErrors {
        #[serde(serialize_with = "plain::id")]
        job_id: ObjectId,
    },
    GiftsPoolMismatch {
        pool_milli: i64,
        ledger_milli: String,
    },
}

/// What the audit read and what it found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditReport {
    pub customers: u64,
    pub purchases: usize,
    pub jobs: usize,
    pub entries: usize,
    /// Completed purchases whose job the retention TTL removed.
    pub jobs_retired: usize,
    /// The original system's purchases not paid by us (not checked).
    pub legacy_purchases: usize,
    /// The original system's reward entries, which name no purchase (not checked).
    pub legacy_entries: u64,
    /// Jobs per status.
    pub jobs_by_status: JobsByStatus,
    /// Σ R of completed purchases, milli-points.
    pub rewards_completed_milli: String,
    /// The gifts pool's document balance (absent until a batch built it), milli-points.
    pub gifts_pool_milli: Option<String>,
    /// The app's gifts pool formula over the ledger, milli-points.
    pub gifts_ledger_milli: String,
    /// Σ of the pool entries others wrote that the document has not counted yet, milli-points
    /// (the next batch that keeps the pool counts them).
    pub gifts_uncounted_milli: String,
    pub violations: Vec<Violation>,
    /// What is worth an operator's look but breaks no invariant of ours: a gifts pool below
    /// zero (only the app's own spends can take it there: our jobs pay a gift only while the
    /// pool covers it, so they never take it lower; their income lifts it).
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct JobsByStatus {
    pub pending: usize,
    pub processing: usize,
    pub completed: usize,
    pub failed: usize,
}

impl AuditReport {
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Checks every invariant of the module's header on the collected facts.
pub fn check(facts: &AuditFacts) -> AuditReport {
    let mut violations = Vec::new();

    let mut jobs_of: HashMap<ObjectId, Vec<&AuditJob>> = HashMap::new();
    for job in &facts.jobs {
        jobs_of.entry(job.purchase_id).or_default().push(job);
    }
    let mut entries_of: HashMap<ObjectId, Vec<&AuditEntry>> = HashMap::new();
    for entry in &facts.entries {
        entries_of.entry(entry.purchase_id).or_default().push(entry);
    }
    let purchases: HashMap<ObjectId, &AuditPurchase> =
        facts.purchases.iter().map(|p| (p.id, p)).collect();

    let mut jobs_retired = 0;
    let mut legacy_purchases = 0;
    let mut rewards_completed: i128 = 0;
    for purchase in &facts.purchases {
        let Some(rewards_status) = purchase.rewards_status else {
            legacy_purchases += 1;
            continue;
        };
        let jobs = jobs_of.get(&purchase.id).map_or(&[][..], Vec::as_slice);
        match jobs {
            [] if rewards_status == RewardsStatus::Completed => jobs_retired += 1,
            [] => violations.push(Violation::PurchaseWithoutJob {
                purchase_id: purchase.id,
            }),
            [job] if RewardsStatus::mirroring(job.status) != rewards_status => {
                violations.push(Violation::StatusMismatch {
                    job_id: job.id,
                    job_status: job.status,
                    purchase_status: rewards_status,
                })
            }
            [_] => {}
            several => violations.push(Violation::PurchaseWithSeveralJobs {
                purchase_id: purchase.id,
                jobs: several.len(),
            }),
        }

        let entries = entries_of.get(&purchase.id).map_or(&[][..], Vec::as_slice);
        if rewards_status == RewardsStatus::Completed {
            rewards_completed += i128::from(purchase.reward_points);
            let credited: i128 = entries
                .iter()
                .filter(|e| !e.kind.spends_the_gifts_pool())
                .map(|e| i128::from(e.amount))
                .sum();
            if credited != i128::from(purchase.reward_points) {
                violations.push(Violation::RewardNotConserved {
                    purchase_id: purchase.id,
                    reward_milli: purchase.reward_points,
                    credited_milli: credited.to_string(),
                });
            }
            match purchase.logged_total {
                Some(logged) if logged == i128::from(purchase.reward_points) => {}
                logged => violations.push(Violation::LogNotConserved {
                    purchase_id: purchase.id,
                    reward_milli: purchase.reward_points,
                    logged_milli: logged.map_or_else(|| "none".to_owned(), |l| l.to_string()),
                }),
            }
        } else if !entries.is_empty() {
            violations.push(Violation::EntriesBeforeCompletion {
                purchase_id: purchase.id,
                purchase_status: rewards_status,
                entries: entries.len(),
            });
        }

        let mut payouts: HashMap<(TransactionType, &str), usize> = HashMap::new();
        for entry in entries {
            *payouts
                .entry((entry.kind, entry.recipient.as_str()))
                .or_default() += 1;
        }
        let mut duplicates: Vec<_> = payouts.into_iter().filter(|(_, n)| *n > 1).collect();
        duplicates.sort_by(|a, b| a.0 .1.cmp(b.0 .1));
        for ((kind, recipient), count) in duplicates {
            violations.push(Violation::DuplicatePayout {
                purchase_id: purchase.id,
                kind,
                recipient: recipient.to_owned(),
                count,
            });
        }
    }

    for job in &facts.jobs {
        if !purchases.contains_key(&job.purchase_id) {
            violations.push(Violation::JobWithoutPurchase {
                job_id: job.id,
                purchase_id: job.purchase_id,
            });
        }
        if job.status == JobStatus::Failed && job.errors == 0 {
            violations.push(Violation::FailedJobWithoutErrors { job_id: job.id });
        }
    }
    let mut orphans: Vec<_> = entries_of
        .iter()
        .filter(|(id, _)| !purchases.contains_key(id))
        .map(|(id, entries)| Violation::EntriesWithoutPurchase {
            purchase_id: *id,
            entries: entries.len(),
        })
        .collect();
    orphans.sort_by_key(|v| match v {
        Violation::EntriesWithoutPurchase { purchase_id, .. } => *purchase_id,
        _ => ObjectId::from_bytes([0; 12]),
    });
    violations.extend(orphans);
    for (customer_id, points_milli) in &facts.negative_wallets {
        violations.push(Violation::NegativeWallet {
            customer_id: *customer_id,
            points_milli: *points_milli,
        });
    }

    if let Some(pool) = facts.gifts_pool {
        if i128::from(pool) + facts.gifts_uncounted.1 != facts.gifts_ledger {
            violations.push(Violation::GiftsPoolMismatch {
                pool_milli: pool,
                ledger_milli: facts.gifts_ledger.to_string(),
            });
        }
    }
    let mut warnings = Vec::new();
    let (uncounted, uncounted_milli) = facts.gifts_uncounted;
    if uncounted > 0 {
        warnings.push(format!(
            "{uncounted} gifts pool entr(ies) others wrote ({uncounted_milli} milli-points) are \
             not counted by the pool's document yet: the next batch that keeps the pool counts them"
        ));
    }
    if facts.gifts_ledger < 0 {
        warnings.push(format!(
            "the gifts pool is below zero ({} milli-points by the app's formula over the ledger): \
             the app's own spends overdrew it; our jobs pay no gift until their income lifts it",
            facts.gifts_ledger
        ));
    }

    let mut by_status = JobsByStatus::default();
    for job in &facts.jobs {
        match job.status {
            JobStatus::Pending => by_status.pending += 1,
            JobStatus::Processing => by_status.processing += 1,
            JobStatus::Completed => by_status.completed += 1,
            JobStatus::Failed => by_status.failed += 1,
        }
    }

    AuditReport {
        customers: facts.customers,
        purchases: facts.purchases.len(),
        jobs: facts.jobs.len(),
        entries: facts.entries.len(),
        jobs_retired,
        legacy_purchases,
        legacy_entries: facts.legacy_entries,
        jobs_by_status: by_status,
        rewards_completed_milli: rewards_completed.to_string(),
        gifts_pool_milli: facts.gifts_pool.map(|p| p.to_string()),
        gifts_ledger_milli: facts.gifts_ledger.to_string(),
        gifts_uncounted_milli: facts.gifts_uncounted.1.to_string(),
        violations,
        warnings,
    }
}

/// Reads a required field, or says which document lacks it.
fn field<T>(
    doc: &Document,
    key: &str,
    read: impl Fn(&Document, &str) -> Option<T>,
) -> Result<T, StoreError> {
    read(doc, key).ok_or_else(|| {
        let id = doc
            .get_object_id("_id")
            .map_or_else(|_| "?".to_owned(), |id| id.to_hex());
        StoreError::Unreadable(format!("document {id} has no readable {key:?}"))
    })
}

fn status_of<T: serde::de::DeserializeOwned>(doc: &Document, key: &str) -> Option<T> {
    let value = doc.get(key)?.clone();
    mongodb::bson::from_bson(value).ok()
}

/// An amount in points as stored (any numeric type), in milli-points.
fn milli(doc: &Document, key: &str) -> Option<i64> {
    crate::amount::from_bson(doc.get(key)?)
        .ok()
        .map(mall_domain::MilliPoints::as_milli)
}

impl Operators<'_> {
    /// Reads the database and checks every invariant of [`crate::audit`]. Read-only.
    pub async fn audit(self) -> Result<AuditReport, StoreError> {
        let raw = |name: &str| self.store.database().collection::<Document>(name);
        let customers = raw(crate::collections::CUSTOMERS)
            .estimated_document_count()
            .await?;

        let mut negative_wallets = Vec::new();
        let mut cursor = raw(crate::collections::CUSTOMERS)
            .find(doc! { "points": { "$lt": 0 } })
            .projection(doc! { "points": 1 })
            .await?;
        while let Some(customer) = cursor.try_next().await? {
            negative_wallets.push((
                field(&customer, "_id", |d, k| d.get_object_id(k).ok())?,
                field(&customer, "points", milli)?,
            ));
        }

        let mut purchases = Vec::new();
        let mut cursor = raw(crate::collections::TRANSACTIONS)
            .find(doc! { "type": TransactionType::Purchase })
            .projection(doc! {
                "rewardPointsEarned": 1, "rewardsStatus": 1,
                "rewardLog.treeDistributed": 1,
                "rewardLog.giftsFinal": 1,
                "rewardLog.appFinal": 1,
                "rewardLog.direct.amount": 1,
            })
            .await?;
        while let Some(purchase) = cursor.try_next().await? {
            let logged_total = purchase
                .get_document("rewardLog")
                .ok()
                .map(|log| {
                    let direct = log
                        .get_document("direct")
                        .ok()
                        .and_then(|d| milli(d, "amount"))
                        .map_or(0, i128::from);
                    ["treeDistributed", "giftsFinal", "appFinal"]
                        .iter()
                        .map(|key| field(log, key, milli).map(i128::from))
                        .sum::<Result<i128, StoreError>>()
                        .map(|sum| sum + direct)
                })
                .transpose()?;
            // The original's purchases are counted, not checked: their amounts are not read.
            let rewards_status = match purchase.get("rewardsStatus") {
                None => None,
                Some(_) => Some(field(&purchase, "rewardsStatus", status_of)?),
            };
            purchases.push(AuditPurchase {
                id: field(&purchase, "_id", |d, k| d.get_object_id(k).ok())?,
                reward_points: match rewards_status {
                    Some(_) => field(&purchase, "rewardPointsEarned", milli)?,
                    None => 0,
                },
                rewards_status,
                logged_total,
            });
        }

        let mut jobs = Vec::new();
        let mut cursor = raw(crate::collections::CHECKOUT_JOBS)
            .find(doc! {})
            .projection(doc! { "checkoutTransactionId": 1, "status": 1, "errors": 1, "error": 1 })
            .await?;
        while let Some(job) = cursor.try_next().await? {
            jobs.push(AuditJob {
                id: field(&job, "_id", |d, k| d.get_object_id(k).ok())?,
                purchase_id: field(&job, "checkoutTransactionId", |d, k| {
                    d.get_object_id(k).ok()
                })?,
                status: field(&job, "status", status_of)?,
                // Ours keep `errors`; the original's jobs keep only the app's `error`.
                errors: job.get_array("errors").map_or(0, Vec::len)
                    + usize::from(job.get_document("error").is_ok()),
            });
        }

        // Every reward entry type, as `TransactionType::role` places it: a new type is in.
        let entry_types = TransactionType::words_where(TransactionType::is_reward_entry);
        let legacy_entries = raw(crate::collections::TRANSACTIONS)
            .count_documents(doc! {
                "type": { "$in": entry_types.clone() }, "relatedTransaction": { "$exists": false },
            })
            .await?;
        let mut entries = Vec::new();
        let mut cursor = raw(crate::collections::TRANSACTIONS)
            .find(
                doc! { "type": { "$in": entry_types }, "relatedTransaction": { "$exists": true } },
            )
            .projection(doc! {
                "type": 1, "customerId": 1, "pool": 1, "amount": 1, "relatedTransaction": 1,
            })
            .await?;
        while let Some(entry) = cursor.try_next().await? {
            // Pool entries name the buyer as their customer (as the original's did): the pool
            // is the recipient.
            let recipient = match (entry.get_str("pool"), entry.get_object_id("customerId")) {
                (Ok(pool), _) => format!("pool:{pool}"),
                (Err(_), Ok(customer)) => customer.to_hex(),
                (Err(_), Err(_)) => "nobody".to_owned(),
            };
            entries.push(AuditEntry {
                purchase_id: field(&entry, "relatedTransaction", |d, k| d.get_object_id(k).ok())?,
                kind: field(&entry, "type", status_of)?,
                recipient,
                amount: field(&entry, "amount", milli)?,
            });
        }

        // The gifts pool as the app computes it, over every completed entry (the app's too),
        // added up exactly here, beside the pool's document.
        let pool = crate::gifts_pool::standing(self.store.database()).await?;
        let gifts_pool = pool.document.map(|b| b.as_milli());
        let gifts_ledger = pool.ledger;
        let gifts_uncounted = pool.uncounted;

        Ok(check(&AuditFacts {
            customers,
            negative_wallets,
            purchases,
            jobs,
            entries,
            legacy_entries,
            gifts_pool,
            gifts_ledger,
            gifts_uncounted,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ObjectId {
        let mut bytes = [0; 12];
        bytes[11] = n;
        ObjectId::from_bytes(bytes)
    }

    fn entry(purchase: u8, kind: TransactionType, recipient: &str, amount: i64) -> AuditEntry {
        AuditEntry {
            purchase_id: id(purchase),
            kind,
            recipient: recipient.to_owned(),
            amount,
        }
    }

    /// One completed purchase (R = 1000) paid 600 to a customer, 250 gifts, 150 app; one pending.
    fn healthy() -> AuditFacts {
        AuditFacts {
            customers: 3,
            negative_wallets: vec![],
            purchases: vec![
                AuditPurchase {
                    id: id(1),
                    reward_points: 1000,
                    rewards_status: Some(RewardsStatus::Completed),
                    logged_total: Some(1000),
                },
                AuditPurchase {
                    id: id(2),
                    reward_points: 500,
                    rewards_status: Some(RewardsStatus::Processing),
                    logged_total: None,
                },
            ],
            jobs: vec![
                AuditJob {
                    id: id(101),
                    purchase_id: id(1),
                    status: JobStatus::Completed,
                    errors: 0,
                },
                AuditJob {
                    id: id(102),
                    purchase_id: id(2),
                    status: JobStatus::Pending,
                    errors: 0,
                },
            ],
            entries: vec![
                entry(1, TransactionType::TreeReward, "c1", 600),
                entry(1, TransactionType::GiftsReward, "pool:gifts", 250),
                entry(1, TransactionType::AppReward, "pool:app", 150),
            ],
            legacy_entries: 0,
            gifts_pool: None,
            gifts_ledger: 250,
            gifts_uncounted: (0, 0),
        }
    }

    #[test]
    fn pool_gifts_are_outside_r_and_the_pool_must_match_the_ledger() {
        let mut facts = healthy();
        // A signup gift of 50 to the buyer, from the pool: R is still conserved.
        facts
            .entries
            .push(entry(1, TransactionType::SignupGiftsReward, "c0", 50));
        facts.gifts_ledger = 200;
        facts.gifts_pool = Some(200);
        assert!(check(&facts).is_clean(), "{:?}", check(&facts).violations);
        facts.gifts_pool = Some(250);
        assert_eq!(
            check(&facts).violations,
            [Violation::GiftsPoolMismatch {
                pool_milli: 250,
                ledger_milli: "200".into()
            }]
        );
        // A pool the app's own spends overdrew is a warning, not a violation.
        facts.gifts_pool = Some(-1);
        facts.gifts_ledger = -1;
        let report = check(&facts);
        assert!(report.violations.is_empty(), "{:?}", report.violations);
        assert_eq!(report.warnings.len(), 1);
        assert!(report.warnings[0].contains("below zero"));
    }

    #[test]
    fn the_original_systems_purchases_and_entries_are_counted_as_legacy_not_flagged() {
        let mut facts = healthy();
        // Paid by the original's float rules: no status of ours, entries linked to nothing.
        facts.purchases.push(AuditPurchase {
            id: id(9),
            reward_points: 159_000,
            rewards_status: None,
            logged_total: None,
        });
        facts.jobs.push(AuditJob {
            id: id(19),
            purchase_id: id(9),
            status: JobStatus::Completed,
            errors: 0,
        });
        facts.legacy_entries = 5;
        let report = check(&facts);
        assert_eq!(report.violations, vec![]);
        assert_eq!((report.legacy_purchases, report.legacy_entries), (1, 5));
    }

    #[test]
    fn a_healthy_database_has_no_violations() {
        let report = check(&healthy());
        assert_eq!(report.violations, vec![]);
        assert_eq!(report.purchases, 2);
        assert_eq!(report.entries, 3);
        assert_eq!(report.rewards_completed_milli, "1000");
        assert_eq!(report.jobs_by_status.completed, 1);
        assert_eq!(report.jobs_by_status.pending, 1);
        assert!(report.is_clean());
    }

    #[test]
    fn a_missing_milli_point_is_a_violation() {
        let mut facts = healthy();
        facts.entries[2].amount = 149;
        assert_eq!(
            check(&facts).violations,
            vec![Violation::RewardNotConserved {
                purchase_id: id(1),
                reward_milli: 1000,
                credited_milli: "999".to_owned(),
            }]
        );
    }

    #[test]
    fn a_log_that_does_not_add_up_is_a_violation() {
        let mut facts = healthy();
        facts.purchases[0].logged_total = Some(1001);
        assert!(matches!(
            check(&facts).violations.as_slice(),
            [Violation::LogNotConserved { .. }]
        ));
        facts.purchases[0].logged_total = None;
        assert!(matches!(
            check(&facts).violations.as_slice(),
            [Violation::LogNotConserved { .. }]
        ));
    }

    #[test]
    fn a_second_payout_to_one_recipient_is_a_violation() {
        let mut facts = healthy();
        facts.entries[0].amount = 300;
        facts
            .entries
            .push(entry(1, TransactionType::TreeReward, "c1", 300));
        assert_eq!(
            check(&facts).violations,
            vec![Violation::DuplicatePayout {
                purchase_id: id(1),
                kind: TransactionType::TreeReward,
                recipient: "c1".to_owned(),
                count: 2,
            }]
        );
    }

    #[test]
    fn jobs_must_match_purchases_one_to_one() {
        let mut facts = healthy();
        facts.jobs.remove(1);
        assert_eq!(
            check(&facts).violations,
            vec![Violation::PurchaseWithoutJob { purchase_id: id(2) }]
        );

        let mut facts = healthy();
        facts.jobs.push(AuditJob {
            id: id(103),
            purchase_id: id(2),
            status: JobStatus::Pending,
            errors: 0,
        });
        facts.jobs.push(AuditJob {
            id: id(104),
            purchase_id: id(9),
            status: JobStatus::Pending,
            errors: 0,
        });
        assert_eq!(
            check(&facts).violations,
            vec![
                Violation::PurchaseWithSeveralJobs {
                    purchase_id: id(2),
                    jobs: 2
                },
                Violation::JobWithoutPurchase {
                    job_id: id(104),
                    purchase_id: id(9)
                },
            ]
        );
    }

    #[test]
    fn a_completed_purchase_whose_job_was_retired_is_counted_not_flagged() {
        let mut facts = healthy();
        facts.jobs.remove(0);
        let report = check(&facts);
        assert_eq!(report.violations, vec![]);
        assert_eq!(report.jobs_retired, 1);
    }

    #[test]
    fn statuses_must_agree_and_nothing_is_paid_before_completion() {
        let mut facts = healthy();
        facts.jobs[1].status = JobStatus::Completed;
        facts
            .entries
            .push(entry(2, TransactionType::AppReward, "pool:app", 50));
        assert_eq!(
            check(&facts).violations,
            vec![
                Violation::StatusMismatch {
                    job_id: id(102),
                    job_status: JobStatus::Completed,
                    purchase_status: RewardsStatus::Processing,
                },
                Violation::EntriesBeforeCompletion {
                    purchase_id: id(2),
                    purchase_status: RewardsStatus::Processing,
                    entries: 1,
                },
            ]
        );
    }

    #[test]
    fn wallets_below_zero_failed_jobs_without_errors_and_orphan_entries_are_violations() {
        let mut facts = healthy();
        facts.negative_wallets.push((id(50), -1));
        facts.purchases[1].rewards_status = Some(RewardsStatus::Failed);
        facts.jobs[1].status = JobStatus::Failed;
        facts
            .entries
            .push(entry(7, TransactionType::TreeReward, "c2", 10));
        assert_eq!(
            check(&facts).violations,
            vec![
                Violation::FailedJobWithoutErrors { job_id: id(102) },
                Violation::EntriesWithoutPurchase {
                    purchase_id: id(7),
                    entries: 1
                },
                Violation::NegativeWallet {
                    customer_id: id(50),
                    points_milli: -1
                },
            ]
        );
        facts.jobs[1].errors = 3;
        assert_eq!(check(&facts).violations.len(), 2);
    }
}
