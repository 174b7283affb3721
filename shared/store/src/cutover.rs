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

use crate::collections;
use crate::documents::{CheckoutJobDoc, JobEra, JobPayloadDoc, JobStatus};
use crate::error::StoreError;
use crate::indexes::{IndexState, IndexStatus};
use crate::ops::Operators;
use crate::settings::SettingsReading;

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

/// The app's own jobs of one era in one state, and what the functions will do with them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LegacyJobs {
    /// `seed era` (no `payload.directReferralShare`) or `app today` (the app's current checkout).
    pub era: &'static str,
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

/// An open job of the seed era's app (the oldest first): paid under the `original` preset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedEraJob {
    pub id: String,
    pub status: String,
    pub age_seconds: i64,
    /// R, in points.
    pub reward_points: String,
    /// As the app's workers counted them (the app's current worker parks such jobs at 3).
    pub attempts: i32,
}

/// The admin's reward settings as the checkout will apply them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsView {
    /// A `rewardsettings` document exists (else the app's defaults apply).
    pub found: bool,
    /// Fields that cannot be used: the shares' defaults apply if a share is among them, and no
    /// gift where a gift's field is.
    pub invalid_fields: Vec<String>,
    pub tree_share: String,
    pub gifts_share: String,
    pub referral_share: String,
    /// `appShare` as configured.
    pub app_share_configured: String,
    /// What the app really keeps of R: 1 − tree − gifts − referral.
    pub app_share_applied: String,
    /// Points, or none when disabled.
    pub signup_gift: Option<String>,
    /// Letter and points of every level gift that will be paid (none when turned off).
    pub level_gifts_paid: Vec<(String, String)>,
}

/// The gifts pool's document beside the app's formula over the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GiftsPoolView {
    /// The document's balance in points, once a batch built it.
    pub document: Option<String>,
    /// The app's formula over the ledger, in points.
    pub ledger: String,
    /// Entries others wrote that the document has not counted yet (the next batch counts them).
    pub uncounted_entries: usize,
    pub uncounted: String,
    /// The document plus what it has still to count equals the ledger.
    pub agrees: bool,
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
    /// The seed era's open jobs, oldest first.
    pub seed_era_jobs: Vec<SeedEraJob>,
    /// Failed jobs of the seed era that an earlier version of ours failed over their recorded
    /// split (a split made in doubles, with cents) and that are paid now: re-drive them.
    pub redrivable_jobs: Vec<String>,
    /// Jobs claimed by a worker that is not ours within the last lease.
    pub foreign_claims: u64,
    pub settings: SettingsView,
    pub gifts_pool: GiftsPoolView,
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

/// The app's recorded share of R differs from what the other three leave (its shares do not add
/// up to 1) by more than rounding.
fn app_share_differs(payload: &JobPayloadDoc) -> bool {
    let rest = payload.reward_points.as_milli()
        - payload.tree_points_share.as_milli()
        - payload.gifts_points_share.as_milli()
        - payload.direct_referral_share.unwrap_or_default().as_milli();
    (rest - payload.app_points_share.as_milli()).abs() > 2
}

impl Operators<'_> {
    /// Reads the database and reports what the cutover meets; `lease` is the worker's
    /// (`JOB_LEASE_SECONDS`), which decides when an original `processing` job is abandoned, and
    /// `level_gifts_allowed` its `REWARD_LEVEL_GIFTS`.
    pub async fn cutover_check(
        self,
        now: DateTime,
        lease: Duration,
        level_gifts_allowed: bool,
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
                .store
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
        let raw = |name: &str| self.store.database().collection::<Document>(name);
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

        // The app's own jobs carry no policy of ours; every open job must be readable.
        let window = lease.max(crate::queue::ORIGINAL_STALE_AFTER);
        let stale_before = crate::queue::original_worker_gone_before(now, lease);
        let defaults = crate::documents::RunTimeFacts {
            first_purchase: false,
            settings: mall_domain::AppSettings::app_defaults(),
            level_gifts_allowed,
        };
        let mut legacy: Vec<(&'static str, String, u64)> = Vec::new();
        let mut seed_era_jobs = Vec::new();
        let mut redrivable_jobs = Vec::new();
        let mut fresh_processing = 0u64;
        let mut stale_processing = 0u64;
        let mut foreign_claims = 0u64;
        let mut app_split_differs = 0u64;
        let mut jobs = raw(collections::CHECKOUT_JOBS)
            .find(doc! {"$or": [
                {"status": {"$ne": JobStatus::Completed}},
                {"startedAt": {"$gte": stale_before}},
            ]})
            .await?;
        while let Some(job) = jobs.try_next().await? {
            let status = job.get_str("status").unwrap_or("?").to_owned();
            let known = JobStatus::parse(&status);
            // A claim by another worker: a `startedAt` within the window that our claim (which
            // writes `claimedAt` beside it) did not write.
            if let Ok(started) = job.get_datetime("startedAt") {
                if *started >= stale_before && job.get_datetime("claimedAt").ok() != Some(started) {
                    foreign_claims += 1;
                }
            }
            if known == Some(JobStatus::Completed) {
                continue;
            }
            let parsed = crate::documents::read_document::<CheckoutJobDoc>(job.clone());
            let era = match &parsed {
                Ok(parsed) => parsed.payload.era(),
                Err(_) => match job.get_document("payload") {
                    Ok(p) if p.contains_key("policy") => JobEra::OursSplit,
                    Ok(p) if p.contains_key("directReferralShare") => JobEra::AppCurrent,
                    _ => JobEra::SeedEra,
                },
            };
            match &parsed {
                Err(e) => unreadable.add(
                    collections::CHECKOUT_JOBS,
                    &job,
                    format!("{e}: the worker will fail it"),
                ),
                Ok(parsed) if parsed.status != JobStatus::Failed => {
                    if let Err(e) = parsed.payload.paying_terms(&defaults) {
                        unreadable.add(
                            collections::CHECKOUT_JOBS,
                            &job,
                            format!("{e}: the worker will fail it"),
                        );
                    }
                    if era == JobEra::AppCurrent && app_share_differs(&parsed.payload) {
                        app_split_differs += 1;
                    }
                    if era == JobEra::SeedEra {
                        seed_era_jobs.push(SeedEraJob {
                            id: parsed.id.to_hex(),
                            status: status.clone(),
                            age_seconds: (now.timestamp_millis()
                                - parsed.created_at.timestamp_millis())
                                / 1000,
                            reward_points: parsed.payload.reward_points.to_string(),
                            attempts: parsed.attempts,
                        });
                    }
                }
                Ok(parsed) => {
                    if era == JobEra::SeedEra
                        && failed_over_its_recorded_split(parsed)
                        && parsed.payload.paying_terms(&defaults).is_ok()
                    {
                        redrivable_jobs.push(parsed.id.to_hex());
                    }
                }
            }
            let era_name = match era {
                JobEra::SeedEra => "seed era",
                JobEra::AppCurrent => "app today",
                JobEra::OursSplit | JobEra::OursCurrent => continue,
            };
            if known == Some(JobStatus::Processing) && !job.contains_key("claimToken") {
                // As the claim decides: `startedAt`, or `updatedAt` when it never said.
                let touched = job
                    .get_datetime("startedAt")
                    .or_else(|_| job.get_datetime("updatedAt"));
                match touched {
                    Ok(at) if *at < stale_before => stale_processing += 1,
                    _ => fresh_processing += 1,
                }
            }
            match legacy
                .iter_mut()
                .find(|(e, s, _)| *e == era_name && *s == status)
            {
                Some((_, _, n)) => *n += 1,
                None => legacy.push((era_name, status, 1)),
            }
        }
        seed_era_jobs.sort_by_key(|j| std::cmp::Reverse(j.age_seconds));
        for (era_name, with_share) in [("seed era", false), ("app today", true)] {
            let completed = raw(collections::CHECKOUT_JOBS)
                .count_documents(
                    doc! {"status": JobStatus::Completed, "payload.policy": {"$exists": false},
                    "payload.directReferralShare": {"$exists": with_share}},
                )
                .await?;
            if completed > 0 {
                legacy.push((era_name, JobStatus::Completed.to_string(), completed));
            }
        }
        legacy.sort();
        let legacy_jobs = legacy
            .into_iter()
            .map(|(era, status, count)| {
                let fate = match (era, JobStatus::parse(&status)) {
                    ("seed era", Some(JobStatus::Pending)) => "paid once by the worker, under the seed era's split (policy preset \"original\"), whatever attempts the app's workers counted".to_owned(),
                    (_, Some(JobStatus::Pending)) => "paid once by the worker, under the current economy from the split the app recorded (first purchase and gifts decided when the job runs, as the app does)".to_owned(),
                    (_, Some(JobStatus::Processing)) => format!(
                        "{stale_processing} abandoned by a dead worker of the app: reclaimed and paid once by the worker (review its partial writes: the app's worker is not transactional); {fresh_processing} started less than {} s ago",
                        window.as_secs()
                    ),
                    (_, Some(JobStatus::Failed)) => "left failed; re-drivable with `mall jobs redrive`".to_owned(),
                    (_, Some(JobStatus::Completed)) => "kept as history; their purchases are audited as legacy".to_owned(),
                    (_, None) => "not a status the worker knows: left alone".to_owned(),
                };
                LegacyJobs { era, status, count, fate }
            })
            .collect();
        if fresh_processing > 0 || foreign_claims > 0 {
            blockers.push(format!(
                "{} job(s) were claimed less than {} s ago by a worker that is not ours (or carry no time at all): an original worker is still running — the app starts its worker from app.js in every API process; turn it off there and redeploy (runbook step 2), then check again",
                fresh_processing.max(foreign_claims),
                window.as_secs()
            ));
        }
        if !redrivable_jobs.is_empty() {
            warnings.push(format!(
                "{} failed job(s) of the seed era were failed by an earlier version over the split their checkout recorded; they are paid as recorded now: `mall jobs redrive --all --error-contains \"{SPLIT_REFUSED_BEFORE}\" --reason \"paid as recorded\"` ({})",
                redrivable_jobs.len(),
                redrivable_jobs.join(", ")
            ));
        }
        if stale_processing > 0 {
            warnings.push(format!(
                "{stale_processing} job(s) of the app were left `processing` by a killed worker; the worker pays them again in full, after any reward entries the app's worker wrote before it died"
            ));
        }
        if app_split_differs > 0 {
            warnings.push(format!(
                "{app_split_differs} pending job(s) of the app record shares that do not add up to R (its appShare plus the others is not 1): they are paid as recorded, the app's entry taking what tree, gifts and the direct-referral share leave of R"
            ));
        }

        let pool = crate::gifts_pool::standing(self.store.database()).await?;
        let points = |milli: i128| {
            i64::try_from(milli)
                .map(|m| mall_domain::MilliPoints::from_milli(m).to_string())
                .unwrap_or_else(|_| format!("{milli} milli-points"))
        };
        let gifts_pool = GiftsPoolView {
            document: pool.document.map(|b| b.to_string()),
            ledger: points(pool.ledger),
            uncounted_entries: pool.uncounted.0,
            uncounted: points(pool.uncounted.1),
            agrees: pool.agrees(),
        };
        match &gifts_pool.document {
            None => warnings.push(format!(
                "the gifts pool has no document yet: the first batch that may spend it counts it from the ledger ({} by the app's formula)",
                gifts_pool.ledger
            )),
            Some(document) if !gifts_pool.agrees => warnings.push(format!(
                "the gifts pool's document ({document}) and the app's formula over the ledger ({}) differ by more than the {} entr(ies) others wrote since it counted ({}): an entry changed after it was counted (an admin's status change?); delete the document (`rewardpools`, `_id: \"gifts\"`) and the next batch counts it from the ledger again",
                gifts_pool.ledger, gifts_pool.uncounted_entries, gifts_pool.uncounted
            )),
            Some(_) if gifts_pool.uncounted_entries > 0 => warnings.push(format!(
                "{} gifts pool entr(ies) others wrote ({}) are not counted by the pool's document yet: the next batch counts them before it pays a gift",
                gifts_pool.uncounted_entries, gifts_pool.uncounted
            )),
            Some(_) => {}
        }
        if pool.ledger < 0 {
            warnings.push(format!(
                "the gifts pool is below zero by the app's formula ({}): no gift is paid until income lifts it",
                gifts_pool.ledger
            ));
        }

        let reading = self.reward_settings().await?;
        let applied = reading
            .settings
            .split(mall_domain::MilliPoints::from_milli(1_000_000_000));
        let as_share = |part: mall_domain::MilliPoints| {
            mall_domain::Share::parse(&format!("{}e-9", part.as_milli()))
                .map(|s| s.to_string())
                .unwrap_or_default()
        };
        let level_gifts_paid: Vec<(String, String)> = reading
            .settings
            .payable_level_gifts()
            .filter(|_| level_gifts_allowed)
            .map(|gifts| {
                gifts
                    .iter()
                    .map(|(level, amount)| (level.to_string(), amount.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        if !reading.problems.is_empty() {
            warnings.push(format!(
                "fields of the reward settings cannot be used ({}): an unusable share takes the four shares back to the app's defaults, an unusable gift field pays no gift; checkouts and the app's jobs count InvalidRewardSettings",
                reading.problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
            ));
        }
        if !level_gifts_paid.is_empty() {
            warnings.push(format!(
                "level gifts will start being paid from the gifts pool ({}): the app never paid them; set REWARD_LEVEL_GIFTS=off to keep its behaviour",
                level_gifts_paid.iter().map(|(l, p)| format!("{l} {p}")).collect::<Vec<_>>().join(", ")
            ));
        }
        let settings = SettingsView {
            found: reading.found,
            invalid_fields: reading.problems.iter().map(|p| p.field.clone()).collect(),
            tree_share: reading.settings.tree_share.to_string(),
            gifts_share: reading.settings.gifts_share.to_string(),
            referral_share: reading.settings.referral_share.to_string(),
            app_share_configured: reading.settings.app_share.to_string(),
            app_share_applied: as_share(applied.app),
            signup_gift: reading.settings.signup_gift.map(|g| g.to_string()),
            level_gifts_paid,
        };

        let indexes = self.store.inspect_indexes().await?;
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
            seed_era_jobs,
            redrivable_jobs,
            gifts_pool,
            foreign_claims,
            settings,
            indexes,
            unreadable_count: unreadable.count,
            unreadable: unreadable.listed,
        })
    }
}

impl Operators<'_> {
    /// The admin's settings stored now, read field by field as a checkout reads them (for
    /// `mall simulate --live-settings`). Read-only.
    pub async fn reward_settings_now(self) -> Result<mall_domain::SettingsRead, StoreError> {
        let reading = self.reward_settings().await?;
        Ok(mall_domain::SettingsRead {
            settings: reading.settings,
            problems: reading.problems,
        })
    }

    /// The settings in force now (for operators' checks).
    async fn reward_settings(self) -> Result<SettingsReading, StoreError> {
        let found = self
            .store
            .database()
            .collection::<Document>(collections::REWARD_SETTINGS)
            .find_one(doc! {})
            .sort(doc! {"_id": 1})
            .await?;
        Ok(SettingsReading::of(found.as_ref()))
    }
}

/// What an earlier version of ours said when it failed a seed-era job whose recorded split,
/// made in doubles, missed its policy's by a rounding residue.
const SPLIT_REFUSED_BEFORE: &str = "not as its policy does";

/// The job's errors say an earlier version failed it over its recorded split.
fn failed_over_its_recorded_split(job: &CheckoutJobDoc) -> bool {
    job.status == JobStatus::Failed
        && job
            .errors
            .last()
            .map(|e| e.message.as_str())
            .or(job.error.as_ref().map(|e| e.message.as_str()))
            .is_some_and(|message| message.contains(SPLIT_REFUSED_BEFORE))
}

/// Where the tree rules the deployment gives the jobs of our checkout (`REWARD_POLICY`) differ
/// from those the app's own jobs are paid by — their era's (the seed era's `original`, the app
/// today's `current`: 10 % of the tree share per letter, a 10 % J bucket, a promotion at 2
/// directs) — one line for `mall cutover check`; none when they agree.
pub fn app_jobs_rules_differ(deployed: &mall_domain::RewardPolicy) -> Option<String> {
    let era = mall_domain::RewardPolicy::preset(mall_domain::PolicyPreset::Current);
    let mut differ = Vec::new();
    let percent = |bps: mall_domain::BasisPoints| format!("{} %", f64::from(bps.get()) / 100.0);
    if deployed.level_bps() != era.level_bps() {
        differ.push(format!(
            "{} of the tree share per letter (theirs {})",
            percent(deployed.level_bps()),
            percent(era.level_bps())
        ));
    }
    if deployed.j_shared_bps() != era.j_shared_bps() {
        differ.push(format!(
            "a J bucket of {} (theirs {})",
            percent(deployed.j_shared_bps()),
            percent(era.j_shared_bps())
        ));
    }
    if deployed.promotion_directs() != era.promotion_directs() {
        differ.push(format!(
            "a promotion at {} directs (theirs {})",
            deployed.promotion_directs(),
            era.promotion_directs()
        ));
    }
    (!differ.is_empty()).then(|| {
        format!(
            "REWARD_POLICY gives the jobs of our checkout {}; the app's own jobs of both eras are paid by their era's rules",
            differ.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mall_domain::RewardPolicy;

    #[test]
    fn the_check_says_where_the_deployed_tree_rules_differ_from_the_apps_jobs() {
        let current = RewardPolicy::from_json(r#"{"preset": "current"}"#).unwrap();
        assert_eq!(app_jobs_rules_differ(&current), None);
        let original = RewardPolicy::from_json(r#"{"preset": "original"}"#).unwrap();
        assert_eq!(app_jobs_rules_differ(&original), None);
        let three =
            RewardPolicy::from_json(r#"{"preset": "current", "promotionDirects": 3}"#).unwrap();
        let line = app_jobs_rules_differ(&three).unwrap();
        assert!(
            line.contains("a promotion at 3 directs (theirs 2)"),
            "{line}"
        );
        let documents = RewardPolicy::default();
        let line = app_jobs_rules_differ(&documents).unwrap();
        assert!(
            line.contains("5 % of the tree share per letter (theirs 10 %)"),
            "{line}"
        );
    }
}
