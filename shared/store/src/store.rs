//! [`Store`]: the one place that builds the MongoDB client, and typed handles on each collection.
//!
//! Build it once per process (per Lambda execution environment) and clone it freely: clones share
//! the driver's connection pool.

use std::time::Duration;

use mongodb::bson::Document;
use mongodb::options::{ClientOptions, ServerMonitoringMode};
use mongodb::{Client, Collection, Database};

use crate::chains::ParentLinks;
use crate::checkout::Checkouts;
use crate::collections;
use crate::documents::{
    CartDoc, CheckoutJobDoc, CustomerDoc, ProductDoc, PurchaseDoc, RewardEntryDoc,
};
use crate::error::StoreError;
use crate::failpoints::Failpoints;
#[cfg(feature = "operators")]
use crate::ops::Operators;
use crate::queue::Queue;
use crate::rewards::Rewards;

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
/// printed), the database's name and how many connections the process may pool. Read from the
/// environment by `mall-runtime`.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub uri: String,
    pub database: String,
    /// The driver's `maxPoolSize`: connections this process may hold to the member it talks to
    /// (the primary), whatever the URI says; `None`: the URI's, else the driver's default (10).
    /// The stack's connection budget (README "Connection budget") counts on it.
    pub max_pool_size: Option<u32>,
}

/// Shows the database but not the URI, which may carry credentials.
impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("uri", &"<redacted>")
            .field("database", &self.database)
            .field("max_pool_size", &self.max_pool_size)
            .finish()
    }
}

/// How long a pooled connection may sit idle before it is closed instead of reused.
pub const MAX_IDLE_TIME: Duration = Duration::from_secs(300);

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
        let mut options = ClientOptions::parse(&config.uri)
            .await
            .map_err(StoreError::BadUri)?;
        if let Some(size) = config.max_pool_size {
            options.max_pool_size = Some(size);
        }
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
        // One monitoring connection per member, not two: the polling protocol (which the
        // driver picks on Lambda anyway) rather than streaming plus a round-trip monitor. The
        // connection budget counts one per instance and member.
        options
            .server_monitoring_mode
            .get_or_insert(ServerMonitoringMode::Poll);
        // A pooled connection idle this long is closed rather than reused: a Lambda instance
        // thawed after minutes must not use a socket the network (AWS NAT: 350 s) dropped.
        options.max_idle_time.get_or_insert(MAX_IDLE_TIME);
        options.min_pool_size = Some(0);
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

    /// The checkouts' operations: the checkout transaction, a purchase's read model, the
    /// reward policy in force (module `checkout`).
    pub fn checkouts(&self) -> Checkouts<'_> {
        Checkouts { store: self }
    }

    /// The reward queue's operations: claims, settling an attempt, failures, the drainer lease,
    /// depth and foreign activity (modules `queue`, `drainer`).
    pub fn queue(&self) -> Queue<'_> {
        Queue { store: self }
    }

    /// The reward batches: load, plan and write a batch of claimed jobs in one transaction
    /// (module `rewards`).
    pub fn rewards(&self) -> Rewards<'_> {
        Rewards { store: self }
    }

    /// The operators' operations: queue status, re-drive, audit, cutover check, customers,
    /// seeding (modules `ops`, `audit`, `cutover`, `seeding`).
    #[cfg(feature = "operators")]
    pub fn operators(&self) -> Operators<'_> {
        Operators { store: self }
    }

    raw_handles! {
        /// Test-only fault injection (inert without the `failpoints` feature).
        fn failpoints(&self) -> &Failpoints {
            &self.failpoints
        }

        /// The parent links this environment has learned (see `chains`).
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

        /// The turns reward batches take and the drainer's lease (`drainer`).
        fn reward_turns(&self) -> Collection<Document> {
            self.db.collection(collections::REWARD_TURNS)
        }
    }
}

/// The `_id` of the optional settings document that refines the configured reward policy.
pub const REWARD_POLICY_SETTINGS_ID: &str = "rewardPolicy";
