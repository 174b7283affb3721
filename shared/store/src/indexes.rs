//! The indexes the code relies on (SPEC §4), made sure of at start-up by
//! [`Store::ensure_indexes`], and inspected read-only by [`Store::inspect_indexes`].
//!
//! Some carry guarantees, not just speed: `one_payout_per_recipient` makes a second reward entry
//! of one kind for one recipient and purchase impossible, `one_job_per_purchase` a second job for
//! one purchase, `one_purchase_per_idempotency_key` a second purchase per client key, and the
//! `claim` index keeps claims from scanning the queue.
//!
//! The database is shared with the running app, whose models declare indexes of their own under
//! mongoose's names (`customerId_1`, …). So each index is made sure of on its own: one with the
//! same keys and options under another name counts as present (it gives the same guarantee);
//! otherwise ours is created. A guarantee-bearing index that is missing and cannot be created
//! stops the function from starting ([`IndexError::GuaranteeMissing`] names it); any other one
//! that cannot be created is logged and skipped.

use std::time::Duration;

use mongodb::bson::{doc, Bson, Document};
use mongodb::options::IndexOptions;
use mongodb::IndexModel;

use serde::Serialize;

use crate::collections;
use crate::error::StoreError;
use crate::store::Store;

/// One index: its collection, name, keys and options.
#[derive(Clone, Debug)]
pub struct IndexSpec {
    pub collection: &'static str,
    pub name: &'static str,
    pub keys: Document,
    pub unique: bool,
    pub partial_filter: Option<Document>,
    /// A TTL index on a date field that holds each document's own expiry time.
    pub expires_at_field_value: bool,
    /// Correctness, not only speed, depends on it: the functions refuse to start without it.
    pub guarantee: bool,
}

impl IndexSpec {
    fn new(collection: &'static str, name: &'static str, keys: Document) -> Self {
        IndexSpec {
            collection,
            name,
            keys,
            unique: false,
            partial_filter: None,
            expires_at_field_value: false,
            guarantee: false,
        }
    }

    /// A unique index: always guarantee-bearing.
    fn unique(mut self) -> Self {
        self.unique = true;
        self.guarantee = true;
        self
    }

    fn guarantee(mut self) -> Self {
        self.guarantee = true;
        self
    }

    fn partial(mut self, filter: Document) -> Self {
        self.partial_filter = Some(filter);
        self
    }

    fn ttl_at_field_value(mut self) -> Self {
        self.expires_at_field_value = true;
        self
    }

    fn model(&self) -> IndexModel {
        let options = IndexOptions::builder()
            .name(self.name.to_owned())
            .unique(self.unique.then_some(true))
            .partial_filter_expression(self.partial_filter.clone())
            .expire_after(self.expires_at_field_value.then_some(Duration::ZERO))
            .build();
        IndexModel::builder()
            .keys(self.keys.clone())
            .options(options)
            .build()
    }
}

/// Every index of the mall's collections.
pub fn index_specs() -> Vec<IndexSpec> {
    use collections::*;
    vec![
        IndexSpec::new(CUSTOMERS, "parentCustomer", doc! {"parentCustomer": 1}),
        IndexSpec::new(CARTS, "one_cart_per_customer", doc! {"customerId": 1}).unique(),
        IndexSpec::new(
            TRANSACTIONS,
            "customer_history",
            doc! {"customerId": 1, "createdAt": -1},
        ),
        IndexSpec::new(
            TRANSACTIONS,
            "relatedTransaction",
            doc! {"relatedTransaction": 1},
        ),
        // Purchases have no relatedTransaction and stay out of it; pool entries have no
        // customerId, which the index reads as null: still one per kind and purchase.
        IndexSpec::new(
            TRANSACTIONS,
            "one_payout_per_recipient",
            doc! {"relatedTransaction": 1, "type": 1, "customerId": 1},
        )
        .unique()
        .partial(doc! {"relatedTransaction": {"$exists": true}}),
        // What others wrote to the gifts pool since its document last counted: by type, entries
        // with no link to a purchase (not ours), above an `_id` (crate::gifts_pool).
        IndexSpec::new(
            TRANSACTIONS,
            "gifts_pool_entries",
            doc! {"type": 1, "relatedTransaction": 1, "_id": 1},
        ),
        // The idempotency key lives on its purchase: one purchase per (customer, key).
        IndexSpec::new(
            TRANSACTIONS,
            "one_purchase_per_idempotency_key",
            doc! {"customerId": 1, "idempotencyKey": 1},
        )
        .unique()
        .partial(doc! {"idempotencyKey": {"$exists": true}}),
        IndexSpec::new(
            CHECKOUT_JOBS,
            "one_job_per_purchase",
            doc! {"checkoutTransactionId": 1},
        )
        .unique(),
        IndexSpec::new(CHECKOUT_JOBS, "claim", doc! {"status": 1, "runAfter": 1}).guarantee(),
        // Completed jobs carry the time they may be deleted; others have no expiresAt.
        IndexSpec::new(CHECKOUT_JOBS, "retention", doc! {"expiresAt": 1}).ttl_at_field_value(),
    ]
}

/// How a declared index stands in the database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum IndexState {
    /// Under our name, with our keys and options.
    Present,
    /// The same keys and options under another name (e.g. mongoose's): it serves as ours.
    Equivalent { existing: String },
    /// Not there; start-up creates it.
    Missing,
    /// Something stands in its way: our name with other keys or options, or the same keys with
    /// other options (the server may refuse to create ours beside it).
    Conflicting { existing: String, why: String },
}

/// One declared index and how it stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexStatus {
    pub collection: &'static str,
    pub name: &'static str,
    pub guarantee: bool,
    #[serde(flatten)]
    pub state: IndexState,
}

/// Why the indexes could not be made sure of.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("guarantee-bearing indexes are missing and could not be created: {}", .0.join("; "))]
    GuaranteeMissing(Vec<String>),
}

/// An index's key pattern in a comparable form (directions as integers, whatever their BSON
/// number type; `"text"`, `"2dsphere"`, … as strings).
fn key_pattern(keys: &Document) -> Vec<(String, String)> {
    keys.iter()
        .map(|(field, direction)| {
            let direction = match direction {
                Bson::Int32(n) => n.to_string(),
                Bson::Int64(n) => n.to_string(),
                #[allow(clippy::cast_possible_truncation)]
                Bson::Double(n) => (*n as i64).to_string(),
                other => other.to_string(),
            };
            (field.clone(), direction)
        })
        .collect()
}

/// How an existing index differs from the spec in its options, if it does.
fn option_difference(spec: &IndexSpec, existing: &IndexModel) -> Option<String> {
    let options = existing.options.clone().unwrap_or_default();
    let unique = options.unique.unwrap_or(false);
    if unique != spec.unique {
        return Some(format!("it is {}unique", if unique { "" } else { "not " }));
    }
    if options.partial_filter_expression != spec.partial_filter {
        return Some("its partial filter differs".into());
    }
    if options.expire_after.is_some() != spec.expires_at_field_value {
        return Some("its TTL differs".into());
    }
    None
}

/// Where `spec` stands among `existing` (the collection's `listIndexes`).
fn state_of(spec: &IndexSpec, existing: &[IndexModel]) -> IndexState {
    let name_of = |model: &IndexModel| {
        model
            .options
            .as_ref()
            .and_then(|o| o.name.clone())
            .unwrap_or_default()
    };
    let keys = key_pattern(&spec.keys);
    if let Some(same_name) = existing.iter().find(|m| name_of(m) == spec.name) {
        if key_pattern(&same_name.keys) != keys {
            return IndexState::Conflicting {
                existing: spec.name.to_owned(),
                why: "an index of this name has other keys".into(),
            };
        }
        return match option_difference(spec, same_name) {
            None => IndexState::Present,
            Some(why) => IndexState::Conflicting {
                existing: spec.name.to_owned(),
                why,
            },
        };
    }
    let same_keys: Vec<&IndexModel> = existing
        .iter()
        .filter(|m| key_pattern(&m.keys) == keys)
        .collect();
    if let Some(equivalent) = same_keys
        .iter()
        .find(|m| option_difference(spec, m).is_none())
    {
        return IndexState::Equivalent {
            existing: name_of(equivalent),
        };
    }
    match same_keys.first() {
        Some(other) => IndexState::Conflicting {
            existing: name_of(other),
            why: option_difference(spec, other).unwrap_or_default(),
        },
        None => IndexState::Missing,
    }
}

impl Store {
    async fn existing_indexes(&self, collection: &str) -> Result<Vec<IndexModel>, StoreError> {
        use futures_util::TryStreamExt;
        match self
            .database()
            .collection::<Document>(collection)
            .list_indexes()
            .await
        {
            Ok(cursor) => Ok(cursor.try_collect().await?),
            // A collection that does not exist yet has no indexes (NamespaceNotFound).
            Err(err) if matches!(err.kind.as_ref(), mongodb::error::ErrorKind::Command(c) if c.code == 26) => {
                Ok(vec![])
            }
            Err(err) => Err(err.into()),
        }
    }

    /// How every declared index stands, without changing anything (one `listIndexes` per
    /// collection).
    pub async fn inspect_indexes(&self) -> Result<Vec<IndexStatus>, StoreError> {
        let mut statuses = Vec::new();
        let mut cache: Vec<(&'static str, Vec<IndexModel>)> = Vec::new();
        for spec in index_specs() {
            if !cache.iter().any(|(c, _)| *c == spec.collection) {
                let existing = self.existing_indexes(spec.collection).await?;
                cache.push((spec.collection, existing));
            }
            let existing = cache
                .iter()
                .find(|(c, _)| *c == spec.collection)
                .map(|(_, e)| e.as_slice())
                .unwrap_or_default();
            statuses.push(IndexStatus {
                collection: spec.collection,
                name: spec.name,
                guarantee: spec.guarantee,
                state: state_of(&spec, existing),
            });
        }
        Ok(statuses)
    }

    /// Makes sure of every index of [`index_specs`], each on its own: present or equivalent ones
    /// are left alone, missing ones are created. Fails, naming them, when a guarantee-bearing
    /// index is missing and cannot be created; other failures are logged.
    pub async fn ensure_indexes(&self) -> Result<Vec<IndexStatus>, IndexError> {
        let mut statuses = self.inspect_indexes().await?;
        let specs = index_specs();
        let mut missing = Vec::new();
        for (status, spec) in statuses.iter_mut().zip(&specs) {
            if matches!(
                status.state,
                IndexState::Present | IndexState::Equivalent { .. }
            ) {
                continue;
            }
            let created = self
                .database()
                .collection::<Document>(spec.collection)
                .create_index(spec.model())
                .await;
            match created {
                Ok(_) => status.state = IndexState::Present,
                Err(error) => {
                    let what = format!("{}.{} ({error})", spec.collection, spec.name);
                    if spec.guarantee {
                        missing.push(what);
                    } else {
                        tracing::warn!(index = %what, "an index could not be created");
                    }
                }
            }
        }
        if missing.is_empty() {
            Ok(statuses)
        } else {
            Err(IndexError::GuaranteeMissing(missing))
        }
    }

    /// [`Store::ensure_indexes`] at a function's start-up: `Err` only when a guarantee-bearing
    /// index is missing (serving without a unique guard could pay or charge twice: refuse to
    /// start), and so is any other failure to inspect or create them (permissions, a spec the
    /// server refuses). Only an unreachable database is tolerated: the indexes exist after any
    /// earlier start, and requests answer `503` until the database is back.
    ///
    /// `Ok(true)` when the database answered, `Ok(false)` when it could not be reached (so the
    /// caller defers the rest of its start-up reads instead of waiting out a second timeout).
    pub async fn ensure_indexes_at_start(&self) -> Result<bool, IndexError> {
        match self.ensure_indexes().await {
            Ok(_) => Ok(true),
            Err(IndexError::Store(StoreError::Database(error)))
                if crate::error::is_unreachable(&error) =>
            {
                tracing::error!(%error, "the database is unreachable at start-up");
                Ok(false)
            }
            Err(error) => Err(error),
        }
    }
}
