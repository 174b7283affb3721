//! `cutover check`: what the shared database holds, read-only, before the functions take over
//! from the original Node.js worker (`mall cutover check`, the README's cutover runbook).
//!
//! It reports the BSON types of every amount field (the app writes Int32 and Double points), the
//! original's jobs per state and what will become of each, our indexes against the app's own
//! (present, equivalent under mongoose's name, conflicting, missing), the records the functions
//! cannot read (with their ids), and the blockers that make switching unsafe — above all an
//! original worker still running (an original job that went `processing` less than one lease
//! ago). It writes nothing.

use std::time::Duration;

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, DateTime, Document};
use serde::Serialize;

use crate::documents::CheckoutJobDoc;
use crate::error::StoreError;
use crate::indexes::{IndexState, IndexStatus};
use crate::store::collections;
use crate::Store;

/// How many unreadable records are listed by id (all are counted).
pub const LISTED_UNREADABLE: usize = 50;

/// The amount fields the app and the functions share: `(collection, field)`.
pub const AMOUNT_FIELDS: &[(&str, &str)] = &[
    (collections::CUSTOMERS, "points"),
    (collections::PRODUCTS, "price"),
    (collections::PRODUCTS, "percentage"),
    (collections::CARTS, "totalAmount"),
    (collections::TRANSACTIONS, "amount"),
    (collections::TRANSACTIONS, "cartTotal"),
    (collections::TRANSACTIONS, "rewardPointsEarned"),
    (collections::TRANSACTIONS, "appPointsShare"),
    (collections::TRANSACTIONS, "giftsPointsShare"),
    (collections::TRANSACTIONS, "treePointsShare"),
    (collections::CHECKOUT_JOBS, "payload.totalRewardPoints"),
    (collections::CHECKOUT_JOBS, "payload.appPointsShare"),
    (collections::CHECKOUT_JOBS, "payload.giftsPointsShare"),
    (collections::CHECKOUT_JOBS, "payload.treePointsShare"),
];

/// The BSON types one amount field holds, with their counts (`missing` included).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldTypes {
    pub collection: &'static str,
    pub field: &'static str,
    pub types: Vec<(String, u64)>,
}

/// The original system's jobs in one state, and what the functions will do with them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LegacyJobs {
    pub status: String,
    pub count: u64,
    pub fate: String,
}

/// A record the functions cannot read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UnreadableRecord {
    pub collection: &'static str,
    pub id: String,
    pub problem: String,
}

/// Everything `mall cutover check` reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CutoverReport {
    pub ready: bool,
    pub blockers: Vec<String>,
    pub warnings: Vec<String>,
    pub amount_types: Vec<FieldTypes>,
    pub legacy_jobs: Vec<LegacyJobs>,
    pub indexes: Vec<IndexStatus>,
    pub unreadable_count: u64,
    /// The first [`LISTED_UNREADABLE`] of them.
    pub unreadable: Vec<UnreadableRecord>,
}

fn id_text(doc: &Document) -> String {
    match doc.get("_id") {
        Some(Bson::ObjectId(id)) => id.to_hex(),
        Some(other) => other.to_string(),
        None => "?".into(),
    }
}

/// Collects unreadable records: all counted, the first few listed.
#[derive(Default)]
struct Unreadable {
    count: u64,
    listed: Vec<UnreadableRecord>,
}

impl Unreadable {
    fn add(&mut self, collection: &'static str, doc: &Document, problem: String) {
        self.count += 1;
        if self.listed.len() < LISTED_UNREADABLE {
            self.listed.push(UnreadableRecord {
                collection,
                id: id_text(doc),
                problem,
            });
        }
    }
}

impl Store {
    /// Reads the database and reports what the cutover meets; `lease` is the worker's
    /// (`JOB_LEASE_SECONDS`), which decides when an original `processing` job is abandoned.
    pub async fn cutover_check(
        &self,
        now: DateTime,
        lease: Duration,
    ) -> Result<CutoverReport, StoreError> {
        let mut blockers = Vec::new();
        let mut warnings = Vec::new();

        let mut amount_types = Vec::new();
        for (collection, field) in AMOUNT_FIELDS {
            let pipeline = vec![
                doc! {"$group": {"_id": {"$type": format!("${field}")}, "n": {"$sum": 1}}},
                doc! {"$sort": {"_id": 1}},
            ];
            let groups: Vec<Document> = self
                .database()
                .collection::<Document>(collection)
                .aggregate(pipeline)
                .await?
                .try_collect()
                .await?;
            let types = groups
                .iter()
                .map(|g| {
                    (
                        g.get_str("_id").unwrap_or("?").to_owned(),
                        u64::try_from(crate::documents::number(g, "n").unwrap_or(0)).unwrap_or(0),
                    )
                })
                .collect();
            amount_types.push(FieldTypes {
                collection,
                field,
                types,
            });
        }

        let mut unreadable = Unreadable::default();
        let raw = |name: &str| self.database().collection::<Document>(name);
        let mut customers = raw(collections::CUSTOMERS)
            .find(doc! {})
            .projection(doc! {"points": 1})
            .await?;
        while let Some(customer) = customers.try_next().await? {
            let points = customer.get("points").cloned().unwrap_or(Bson::Null);
            if let Err(e) = crate::amount::wallet_or_default(&points) {
                unreadable.add(collections::CUSTOMERS, &customer, format!("points: {e}"));
            }
        }
        let mut products = raw(collections::PRODUCTS)
            .find(doc! {})
            .projection(doc! {"price": 1, "percentage": 1})
            .await?;
        while let Some(product) = products.try_next().await? {
            for field in ["price", "percentage"] {
                let value = product.get(field).cloned().unwrap_or(Bson::Null);
                match crate::amount::from_bson(&value) {
                    Err(e) => {
                        unreadable.add(collections::PRODUCTS, &product, format!("{field}: {e}"))
                    }
                    Ok(amount) if amount.is_negative() => unreadable.add(
                        collections::PRODUCTS,
                        &product,
                        format!("{field}: negative ({amount} points)"),
                    ),
                    Ok(_) => {}
                }
            }
        }
        let mut carts = raw(collections::CARTS)
            .find(doc! {"items.0": {"$exists": true}})
            .projection(doc! {"items.productId": 1})
            .await?;
        while let Some(cart) = carts.try_next().await? {
            let bad = cart
                .get_array("items")
                .map(|items| {
                    items.iter().any(|item| {
                        !matches!(
                            item.as_document().and_then(|i| i.get("productId")),
                            Some(Bson::String(hex)) if mongodb::bson::oid::ObjectId::parse_str(hex).is_ok()
                        ) && !matches!(
                            item.as_document().and_then(|i| i.get("productId")),
                            Some(Bson::ObjectId(_))
                        )
                    })
                })
                .unwrap_or(true);
            if bad {
                unreadable.add(
                    collections::CARTS,
                    &cart,
                    "a productId that is not an ObjectId's hex".into(),
                );
            }
        }

        // The original's jobs carry no policy of ours; every open job must be readable.
        let stale_before = crate::queue::original_worker_gone_before(now, lease);
        let mut legacy: Vec<(String, u64)> = Vec::new();
        let mut fresh_processing = 0u64;
        let mut stale_processing = 0u64;
        let mut jobs = raw(collections::CHECKOUT_JOBS)
            .find(doc! {"status": {"$ne": "completed"}})
            .await?;
        while let Some(job) = jobs.try_next().await? {
            let parsed = crate::documents::read_document::<CheckoutJobDoc>(job.clone());
            let is_legacy = match &parsed {
                Ok(parsed) => parsed.is_legacy(),
                Err(_) => job
                    .get_document("payload")
                    .map_or(true, |p| !p.contains_key("policy")),
            };
            match &parsed {
                Err(e) => unreadable.add(
                    collections::CHECKOUT_JOBS,
                    &job,
                    format!("{e}: the worker will fail it"),
                ),
                Ok(parsed) if parsed.status != crate::documents::JobStatus::Failed => {
                    if let Err(e) = parsed.payload.paying_policy() {
                        unreadable.add(
                            collections::CHECKOUT_JOBS,
                            &job,
                            format!("{e}: the worker will fail it"),
                        );
                    }
                }
                Ok(_) => {}
            }
            if !is_legacy {
                continue;
            }
            let status = job.get_str("status").unwrap_or("?").to_owned();
            if status == "processing" && !job.contains_key("claimToken") {
                // As the claim decides: `startedAt`, or `updatedAt` when it never said.
                let touched = job
                    .get_datetime("startedAt")
                    .or_else(|_| job.get_datetime("updatedAt"));
                match touched {
                    Ok(at) if *at < stale_before => stale_processing += 1,
                    _ => fresh_processing += 1,
                }
            }
            match legacy.iter_mut().find(|(s, _)| *s == status) {
                Some((_, n)) => *n += 1,
                None => legacy.push((status, 1)),
            }
        }
        let completed = raw(collections::CHECKOUT_JOBS)
            .count_documents(doc! {"status": "completed", "payload.policy": {"$exists": false}})
            .await?;
        if completed > 0 {
            legacy.push(("completed".into(), completed));
        }
        legacy.sort();
        let legacy_jobs = legacy
            .into_iter()
            .map(|(status, count)| {
                let fate = match status.as_str() {
                    "pending" => "paid once by the worker, under the original's split (policy preset \"original\")".to_owned(),
                    "processing" => format!(
                        "{stale_processing} abandoned by a dead original worker: reclaimed and paid once by the worker (review its partial writes: the original's worker was not transactional); {fresh_processing} started less than {} s ago",
                        lease.max(crate::queue::ORIGINAL_STALE_AFTER).as_secs()
                    ),
                    "failed" => "left failed; re-drivable with `mall jobs redrive`".to_owned(),
                    "completed" => "kept as history; their purchases are audited as legacy".to_owned(),
                    _ => "not a status the worker knows: left alone".to_owned(),
                };
                LegacyJobs { status, count, fate }
            })
            .collect();
        if fresh_processing > 0 {
            blockers.push(format!(
                "{fresh_processing} original job(s) went `processing` less than {} s ago (or carry no time at all): an original worker is still running; stop it (pm2 stop checkout-worker) and check again",
                lease.max(crate::queue::ORIGINAL_STALE_AFTER).as_secs()
            ));
        }
        if stale_processing > 0 {
            warnings.push(format!(
                "{stale_processing} original job(s) were left `processing` by a killed worker; the worker pays them again in full, after any reward entries the original wrote before it died"
            ));
        }

        let indexes = self.inspect_indexes().await?;
        for index in &indexes {
            match &index.state {
                IndexState::Conflicting { existing, why } if existing == index.name && index.guarantee => {
                    blockers.push(format!(
                        "index {}.{} exists with other keys or options ({why}): the functions cannot create theirs and will refuse to start; drop it",
                        index.collection, index.name
                    ));
                }
                IndexState::Conflicting { existing, why } => warnings.push(format!(
                    "index {}.{}: {}.{existing} has the same keys but {why}; if the server refuses ours beside it{}, drop {existing}",
                    index.collection,
                    index.name,
                    index.collection,
                    if index.guarantee { " (the functions then refuse to start)" } else { "" }
                )),
                _ => {}
            }
        }
        if unreadable.count > 0 {
            warnings.push(format!(
                "{} record(s) the functions cannot read (listed): checkouts and jobs that meet them are refused with a named error",
                unreadable.count
            ));
        }

        Ok(CutoverReport {
            ready: blockers.is_empty(),
            blockers,
            warnings,
            amount_types,
            legacy_jobs,
            indexes,
            unreadable_count: unreadable.count,
            unreadable: unreadable.listed,
        })
    }
}
