//! [`Store`]: the one place that builds the MongoDB client, and typed handles on each collection.
//!
//! Build it once per process (per Lambda execution environment) and clone it freely: clones share
//! the driver's connection pool.

use std::time::Duration;

use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, Database};

use crate::chains::ParentLinks;
use crate::collections;
use crate::documents::{
    CartDoc, CheckoutJobDoc, CustomerDoc, ProductDoc, PurchaseDoc, RewardEntryDoc,
};
use crate::error::StoreError;
use crate::failpoints::Failpoints;

/// The store's raw handles: the crate's own, and public only to tests and test tools (the
/// `test-support` feature), so that handlers and tools go through named operations.
macro_rules! raw_handles {
    ($($(#[$doc:meta])* fn $name:ident(&$this:ident) -> $ty:ty $body:block)*) => {
        $(
            $(#[$doc])*
            #[cfg(feature = "test-support")]
            pub fn $name(&$this) -> $ty $body

            $(#[$doc])*
            #[cfg(not(feature = "test-support"))]
            // A handle only the operators' wing uses is unused in a build without it.
            #[allow(dead_code)]
            pub(crate) fn $name(&$this) -> $ty $body
        )*
    };
}

/// Where the store connects: the connection string (it may carry a password, so it is never
/// printed) and the database's name. Read from the environment by `mall-runtime`.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub uri: String,
    pub database: String,
}

/// Shows the database but not the URI, which may carry credentials.
impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("uri", &"<redacted>")
            .field("database", &self.database)
            .finish()
    }
}

#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    db: Database,
    failpoints: Failpoints,
    /// The referral forest's parent links this environment has read (shared by the clones).
    links: std::sync::Arc<ParentLinks>,
}

impl Store {
    /// Parses the connection string and builds the client. Connections are opened lazily, so this
    /// succeeds without a reachable server.
    pub async fn connect(config: &StoreConfig) -> Result<Self, StoreError> {
        let options = ClientOptions::parse(&config.uri)
            .await
            .map_err(StoreError::BadUri)?;
        Self::with_options(options, &config.database)
    }

    /// Builds the client from parsed options, e.g. with a command monitor attached by a test or a
    /// benchmark. Our defaults apply where the options leave a setting open.
    pub fn with_options(mut options: ClientOptions, database: &str) -> Result<Self, StoreError> {
        options.app_name.get_or_insert_with(|| "mall".to_owned());
        // Fail fast when the database is unreachable: a checkout answers 503 in seconds and a
        // worker leaves its jobs for the next tick, rather than waiting out a Lambda timeout.
        options
            .server_selection_timeout
            .get_or_insert(Duration::from_secs(5));
        options
            .connect_timeout
            .get_or_insert(Duration::from_secs(3));
        let client = Client::with_options(options)?;
        let db = client.database(database);
        Ok(Store {
            client,
            db,
            failpoints: Failpoints::default(),
            links: std::sync::Arc::default(),
        })
    }

    /// The first document an aggregation on `collection` returns (one round trip, outside a
    /// transaction).
    pub(crate) async fn aggregate_first(
        &self,
        collection: &str,
        pipeline: Vec<mongodb::bson::Document>,
    ) -> Result<Option<mongodb::bson::Document>, StoreError> {
        use futures_util::TryStreamExt;
        Ok(self
            .database()
            .collection::<mongodb::bson::Document>(collection)
            .aggregate(pipeline)
            .await?
            .try_next()
            .await?)
    }

    raw_handles! {
        /// Test-only fault injection (inert without the `failpoints` feature).
        fn failpoints(&self) -> &Failpoints {
            &self.failpoints
        }

        /// The parent links this environment has learned (see [`crate::chains`]).
        fn links(&self) -> &ParentLinks {
            &self.links
        }

        fn client(&self) -> &Client {
            &self.client
        }

        fn database(&self) -> &Database {
            &self.db
        }

        fn customers(&self) -> Collection<CustomerDoc> {
            self.db.collection(collections::CUSTOMERS)
        }

        fn products(&self) -> Collection<ProductDoc> {
            self.db.collection(collections::PRODUCTS)
        }

        fn carts(&self) -> Collection<CartDoc> {
            self.db.collection(collections::CARTS)
        }

        /// The `transactions` collection read as purchases (`type: "purchase"`).
        fn purchases(&self) -> Collection<PurchaseDoc> {
            self.db.collection(collections::TRANSACTIONS)
        }

        /// The `transactions` collection read as reward and pool entries.
        fn reward_entries(&self) -> Collection<RewardEntryDoc> {
            self.db.collection(collections::TRANSACTIONS)
        }

        fn checkout_jobs(&self) -> Collection<CheckoutJobDoc> {
            self.db.collection(collections::CHECKOUT_JOBS)
        }
    }
}

/// The `_id` of the optional settings document that refines the configured reward policy.
pub const REWARD_POLICY_SETTINGS_ID: &str = "rewardPolicy";
