//! The indexes the code relies on (SPEC §4), created idempotently at start-up by
//! [`Store::ensure_indexes`]. Each has a fixed name so that operators and tests can find it.
//!
//! Two of them carry guarantees, not just speed: `one_payout_per_recipient` makes a second reward
//! entry of one kind for one recipient and purchase impossible, and `one_job_per_purchase` makes a
//! second job for one purchase impossible, and `one_purchase_per_idempotency_key` lets only one
//! purchase per client key commit.

use std::time::Duration;

use mongodb::bson::{doc, Document};
use mongodb::options::IndexOptions;
use mongodb::IndexModel;

use crate::error::StoreError;
use crate::store::collections;
use crate::Store;

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
        }
    }

    fn unique(mut self) -> Self {
        self.unique = true;
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
        IndexSpec::new(CHECKOUT_JOBS, "claim", doc! {"status": 1, "runAfter": 1}),
        // Completed jobs carry the time they may be deleted; others have no expiresAt.
        IndexSpec::new(CHECKOUT_JOBS, "retention", doc! {"expiresAt": 1}).ttl_at_field_value(),
    ]
}

impl Store {
    /// Creates every index of [`index_specs`] that does not exist yet; a no-op when all exist.
    pub async fn ensure_indexes(&self) -> Result<(), StoreError> {
        let specs = index_specs();
        let mut collections: Vec<&str> = Vec::new();
        for spec in &specs {
            if !collections.contains(&spec.collection) {
                collections.push(spec.collection);
            }
        }
        for collection in collections {
            let models: Vec<IndexModel> = specs
                .iter()
                .filter(|s| s.collection == collection)
                .map(IndexSpec::model)
                .collect();
            self.database()
                .collection::<Document>(collection)
                .create_indexes(models)
                .await?;
        }
        Ok(())
    }
}
