//! The gifts pool's document following the app's ledger.
//!
//! The app's gifts pool is a formula over its ledger: Σ completed `gifts_reward` − Σ completed
//! `signup_gifts_reward` − Σ completed `level_gift_reward` ([`TransactionType::moves_the_gifts_pool`]). We keep its
//! balance in one document (`rewardpools {_id: "gifts"}`) so that a batch never adds up the
//! ledger and two batches that move the pool conflict on it (so no concurrency overdraws it).
//! Others write pool entries too: the app's worker (before the cutover, or after a rollback),
//! an admin's deposit. The document says how far it has counted them:
//!
//! - `through`: every entry others wrote with an `_id` up to it is counted;
//! - `recent`: the entries others wrote above `through` that are counted already.
//!
//! Guarantees:
//! - each batch that keeps the pool counts, in its own snapshot, every completed pool entry
//!   others wrote (an entry of ours links its purchase, `relatedTransaction`; others' do not)
//!   above `through` and not in `recent`, before it plans: a gift it pays is covered by the
//!   app's formula over the ledger as that snapshot has it;
//! - each such entry is counted once: `through` only moves to [`GRACE`] before the batch's time
//!   and `recent` keeps what was counted above it, so an entry committed up to [`GRACE`] after
//!   its `_id` was made (a client's clock and its write's latency) is still seen;
//! - the cost is one lookup by an index (`type`, `relatedTransaction`, `_id`) over what others
//!   wrote since `through`, inside the batch's load: it does not grow with the ledger.
//!
//! What it cannot see is an entry another writer changes later (an admin's status change of an
//! old entry): `mall audit` and `mall cutover check` compare the document with the ledger and
//! say so.

use std::time::Duration;

use mall_domain::{MilliPoints, MoneyError};
use mongodb::bson::{doc, oid::ObjectId, Bson, DateTime, Document};

use crate::amount::AmountError;
use crate::documents::{TransactionType, ENTRY_COMPLETED};

/// How long after its `_id` was made an entry of others may still commit and be counted.
pub const GRACE: Duration = Duration::from_secs(15 * 60);

/// The pool's document as it counts the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolDocument {
    /// The app's formula over every entry counted.
    pub balance: MilliPoints,
    /// Every entry of others up to this `_id` is counted.
    pub through: ObjectId,
    /// Entries of others above `through` counted already.
    pub recent: Vec<ObjectId>,
}

/// A completed pool entry another writer made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForeignEntry {
    pub id: ObjectId,
    /// `+amount` for an income (`gifts_reward`), `−amount` for a spend.
    pub change: MilliPoints,
}

/// A pool entry or the pool's document that cannot be counted: the batch that met it fails its
/// attempt (retried: the ledger is the app's, an admin may mend it).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PoolError {
    #[error("a gifts pool entry has no ObjectId")]
    EntryWithoutId,
    #[error("gifts pool entry {entry}: amount: {problem}")]
    EntryAmount { entry: String, problem: AmountError },
    #[error("no balance")]
    NoBalance,
    #[error("recent: {0} is not an ObjectId")]
    RecentNotAnId(Bson),
    #[error("recent: {0} is not a list")]
    RecentNotAList(Bson),
    #[error(transparent)]
    Amount(#[from] AmountError),
    #[error(transparent)]
    Money(#[from] MoneyError),
}

impl ForeignEntry {
    /// An entry as the lookup returns it (`_id`, `type`, `amount`).
    pub fn read(entry: &Document) -> Result<Self, PoolError> {
        let id = entry
            .get_object_id("_id")
            .map_err(|_| PoolError::EntryWithoutId)?;
        Ok(ForeignEntry {
            id,
            change: change_of(entry)?,
        })
    }
}

/// What a completed pool entry (`type`, `amount`) does to the pool by the app's formula:
/// `+amount` for an income (`gifts_reward`), `−amount` for a spend.
pub fn change_of(entry: &Document) -> Result<MilliPoints, PoolError> {
    let amount = entry
        .get("amount")
        .map(crate::amount::from_bson)
        .transpose()
        .map_err(|problem| PoolError::EntryAmount {
            entry: id_text(entry),
            problem,
        })?
        .unwrap_or_default();
    if entry.get_str("type") == Ok(TransactionType::GiftsReward.as_str()) {
        Ok(amount)
    } else {
        Ok(MilliPoints::ZERO.checked_sub(amount)?)
    }
}

fn id_text(entry: &Document) -> String {
    entry
        .get("_id")
        .map_or_else(|| "?".to_owned(), ToString::to_string)
}

/// The least `_id` made at `at`.
fn id_at(at: DateTime) -> ObjectId {
    let seconds = u32::try_from(at.timestamp_millis().div_euclid(1000)).unwrap_or(0);
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&seconds.to_be_bytes());
    ObjectId::from_bytes(bytes)
}

/// An `_id` above every other: "nothing counted yet" for the lookup.
const ABOVE_EVERY_ID: [u8; 12] = [0xff; 12];

impl PoolDocument {
    /// A pool counted from the whole ledger at `now`: `counted` are the entries of others the
    /// count saw, so that those above the new `through` are not counted again.
    pub fn built(balance: MilliPoints, counted: &[ObjectId], now: DateTime) -> Self {
        let through = id_at(subtract(now, GRACE));
        PoolDocument {
            balance,
            through,
            recent: counted.iter().copied().filter(|id| *id > through).collect(),
        }
    }

    /// Reads the stored document. `Ok(None)`: a document of an earlier version, which counted
    /// none of others' entries (no `through`): the pool is counted from the ledger again.
    pub fn read(stored: &Document) -> Result<Option<Self>, PoolError> {
        let balance = crate::amount::from_bson(stored.get("balance").ok_or(PoolError::NoBalance)?)?;
        let Ok(through) = stored.get_object_id("through") else {
            return Ok(None);
        };
        let recent = match stored.get("recent") {
            None => vec![],
            Some(Bson::Array(ids)) => ids
                .iter()
                .map(|id| match id {
                    Bson::ObjectId(id) => Ok(*id),
                    other => Err(PoolError::RecentNotAnId(other.clone())),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(PoolError::RecentNotAList(other.clone())),
        };
        Ok(Some(PoolDocument {
            balance,
            through,
            recent,
        }))
    }

    /// The entries not counted yet, of those others wrote above `through`.
    pub fn uncounted<'a>(
        &'a self,
        entries: &'a [ForeignEntry],
    ) -> impl Iterator<Item = &'a ForeignEntry> + 'a {
        entries
            .iter()
            .filter(|e| e.id > self.through && !self.recent.contains(&e.id))
    }

    /// Counts the entries others wrote that it has not counted; true when any was.
    pub fn count(&mut self, entries: &[ForeignEntry]) -> Result<bool, MoneyError> {
        let new: Vec<ForeignEntry> = self.uncounted(entries).cloned().collect();
        for entry in &new {
            self.balance = self.balance.checked_add(entry.change)?;
            self.recent.push(entry.id);
        }
        Ok(!new.is_empty())
    }

    /// Moves `through` up to [`GRACE`] before `now` (never down) and forgets the entries below
    /// it: the window the next count reads stays small.
    pub fn advance(&mut self, now: DateTime) {
        let through = self.through.max(id_at(subtract(now, GRACE)));
        self.through = through;
        self.recent.retain(|id| *id > through);
    }

    /// The fields a batch writes.
    pub fn fields(&self) -> Result<Document, AmountError> {
        Ok(doc! {
            "balance": crate::amount::to_bson(self.balance)?,
            "through": self.through,
            "recent": self.recent.clone(),
        })
    }
}

fn subtract(at: DateTime, by: Duration) -> DateTime {
    let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
    DateTime::from_millis(at.timestamp_millis().saturating_sub(by))
}

/// The types of the app's pool formula, as stored.
pub fn pool_types() -> Vec<&'static str> {
    TransactionType::words_where(TransactionType::moves_the_gifts_pool)
}

/// The load's stages that bring into its document, as `field`, the completed pool entries
/// others wrote above the pool document's `through` (the document already looked up as
/// `pool`): by the index on (`type`, `relatedTransaction`, `_id`).
pub(crate) fn lookup_foreign_entries(field: &str) -> [Document; 2] {
    [
        doc! {"$set": {"poolTypes": {"$literal": pool_types()}}},
        doc! {"$lookup": {
            "from": crate::collections::TRANSACTIONS,
            "localField": "poolTypes", "foreignField": "type",
            // (The first pool document's `through`, by a variable: a field path through an
            // array is not read alike by every server.)
            "let": {"through": {"$ifNull": [
                {"$let": {"vars": {"pool": {"$arrayElemAt": ["$pool", 0]}}, "in": "$$pool.through"}},
                ObjectId::from_bytes(ABOVE_EVERY_ID),
            ]}},
            "pipeline": [
                {"$match": {"relatedTransaction": null, "status": ENTRY_COMPLETED,
                    "$expr": {"$gt": ["$_id", "$$through"]}}},
                {"$project": {"_id": 1, "type": 1, "amount": 1}},
            ],
            "as": field,
        }},
    ]
}

/// The pool's document beside the app's formula over the ledger (`mall audit`, `mall cutover
/// check`).
#[cfg(feature = "operators")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolStanding {
    /// The document's balance, once a batch built it.
    pub document: Option<MilliPoints>,
    /// The app's formula over every completed entry, milli-points (exact, never in floating
    /// point).
    pub ledger: i128,
    /// Entries others wrote that the document has not counted yet: how many, and their change
    /// to the pool, milli-points.
    pub uncounted: (usize, i128),
}

#[cfg(feature = "operators")]
impl PoolStanding {
    /// The document and the ledger agree, counting what the next batch will count.
    pub fn agrees(&self) -> bool {
        self.document
            .is_none_or(|b| i128::from(b.as_milli()) + self.uncounted.1 == self.ledger)
    }
}

/// Reads the pool's document and adds up the app's formula over the whole ledger (an
/// operator's check, not a batch's: it reads every pool entry).
#[cfg(feature = "operators")]
pub(crate) async fn standing(
    database: &mongodb::Database,
) -> Result<PoolStanding, crate::error::StoreError> {
    use crate::error::StoreError;
    use futures_util::TryStreamExt;
    let stored = database
        .collection::<Document>(crate::collections::REWARD_POOLS)
        .find_one(doc! {"_id": crate::collections::GIFTS_POOL_ID})
        .await?;
    let document = stored
        .as_ref()
        .map(|pool| {
            pool.get("balance")
                .ok_or_else(|| "the gifts pool's document has no balance".to_owned())
                .and_then(|b| crate::amount::from_bson(b).map_err(|e| e.to_string()))
        })
        .transpose()
        .map_err(|e| StoreError::Unreadable(e.to_string()))?;
    let counting = stored
        .as_ref()
        .map(PoolDocument::read)
        .transpose()
        .map_err(|e| StoreError::Unreadable(e.to_string()))?
        .flatten();
    let mut ledger: i128 = 0;
    let mut uncounted = (0usize, 0i128);
    let mut cursor = database
        .collection::<Document>(crate::collections::TRANSACTIONS)
        .find(doc! {"type": {"$in": pool_types()}, "status": ENTRY_COMPLETED})
        .projection(doc! {"type": 1, "amount": 1, "relatedTransaction": 1})
        .await?;
    while let Some(entry) = cursor.try_next().await? {
        let change = change_of(&entry).map_err(|e| StoreError::Unreadable(e.to_string()))?;
        ledger += i128::from(change.as_milli());
        // Others' entries above the count (an `_id` that is no ObjectId sorts below every
        // `through`: the build counted it).
        let (Some(pool), Ok(id)) = (&counting, entry.get_object_id("_id")) else {
            continue;
        };
        let read = ForeignEntry { id, change };
        let others = !entry.contains_key("relatedTransaction");
        if others && pool.uncounted(std::slice::from_ref(&read)).next().is_some() {
            uncounted.0 += 1;
            uncounted.1 += i128::from(change.as_milli());
        }
    }
    Ok(PoolStanding {
        document,
        ledger,
        uncounted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(text: &str) -> MilliPoints {
        text.parse().unwrap()
    }

    fn at_seconds(seconds: i64) -> DateTime {
        DateTime::from_millis(seconds * 1000)
    }

    fn entry_at(seconds: i64, change: &str) -> ForeignEntry {
        let mut bytes = id_at(at_seconds(seconds)).bytes();
        bytes[11] = 1;
        ForeignEntry {
            id: ObjectId::from_bytes(bytes),
            change: points(change),
        }
    }

    #[test]
    fn each_entry_of_others_is_counted_once_however_late_it_commits() {
        let now = 100_000;
        let grace = i64::try_from(GRACE.as_secs()).unwrap();
        // Built at `now`: an entry the count saw within the grace is remembered.
        let seen = entry_at(now - 10, "5");
        let mut pool = PoolDocument::built(points("100"), &[seen.id], at_seconds(now));
        assert_eq!(pool.recent, [seen.id]);
        // The next batch sees it again (above `through`) and a new spend, made before the build
        // but committed after it: only the spend is counted.
        let late = entry_at(now - 60, "-50");
        assert!(pool.count(&[seen.clone(), late.clone()]).unwrap());
        assert_eq!(pool.balance, points("50"));
        assert!(!pool.count(&[seen.clone(), late.clone()]).unwrap());
        assert_eq!(pool.balance, points("50"));
        // Time moves on: `through` rises, the window forgets what is below it, and nothing is
        // counted twice.
        pool.advance(at_seconds(now + grace + 100));
        assert!(pool.recent.is_empty());
        assert!(!pool.count(&[seen, late]).unwrap());
        assert_eq!(pool.balance, points("50"));
        // `through` never goes down.
        let through = pool.through;
        pool.advance(at_seconds(now));
        assert_eq!(pool.through, through);
    }

    #[test]
    fn the_stored_document_round_trips_and_an_earlier_versions_is_counted_again() {
        let mut pool = PoolDocument::built(points("12.5"), &[], at_seconds(100_000));
        pool.count(&[entry_at(100_000, "-2.5")]).unwrap();
        let stored = pool.fields().unwrap();
        assert_eq!(PoolDocument::read(&stored), Ok(Some(pool)));
        assert_eq!(PoolDocument::read(&doc! {"balance": 12.5}), Ok(None));
        assert!(PoolDocument::read(&doc! {"through": ObjectId::new()}).is_err());
    }

    #[test]
    fn an_entry_reads_as_income_or_spend() {
        let id = ObjectId::new();
        let income = doc! {"_id": id, "type": "gifts_reward", "amount": 15};
        assert_eq!(ForeignEntry::read(&income).unwrap().change, points("15"));
        let spend = doc! {"_id": id, "type": "signup_gifts_reward", "amount": 50.5};
        assert_eq!(ForeignEntry::read(&spend).unwrap().change, points("-50.5"));
        let bad = doc! {"_id": id, "type": "gifts_reward", "amount": "x"};
        assert!(ForeignEntry::read(&bad).is_err());
    }
}
