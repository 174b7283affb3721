//! The test database: its URI, fresh database names, stores whose every command is counted
//! through the driver's command monitoring, and snapshots to prove that nothing changed.

use std::sync::{Arc, Mutex};

use futures_util::TryStreamExt;
use mall_store::bson::{doc, oid::ObjectId, Document};
use mall_store::{Store, StoreConfig};
use mongodb::event::command::CommandEvent;
use mongodb::event::EventHandler;
use mongodb::options::ClientOptions;

/// The test server's connection string.
pub fn test_mongodb_uri() -> String {
    std::env::var("MALL_TEST_MONGODB_URI").expect(
        "MALL_TEST_MONGODB_URI is not set: run the tests with `make test` \
         (or `infra/with-test-services.sh cargo test`), which starts the test database",
    )
}

/// A database name no other test uses.
pub fn fresh_database_name() -> String {
    format!("test_{}", ObjectId::new().to_hex())
}

/// The names of the commands a store sent, in order.
#[derive(Clone, Default)]
pub struct CommandLog(Arc<Mutex<Vec<Sent>>>);

/// One command sent: its name, and whether it learned chains' links (an aggregation on
/// `customers` outside any transaction: the worker's walk before a batch's transaction).
#[derive(Clone)]
struct Sent {
    name: String,
    learning: bool,
}

impl CommandLog {
    pub fn names(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.name.clone())
            .collect()
    }

    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// The commands that learned referral chains' links before a batch's transaction.
    pub fn learning(&self) -> usize {
        self.0.lock().unwrap().iter().filter(|s| s.learning).count()
    }

    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }

    /// The commands that can change data.
    pub fn writes(&self) -> Vec<String> {
        self.names()
            .into_iter()
            .filter(|name| {
                matches!(
                    name.as_str(),
                    "insert"
                        | "update"
                        | "delete"
                        | "findAndModify"
                        | "bulkWrite"
                        | "commitTransaction"
                )
            })
            .collect()
    }
}

/// A store on `database` of the server at `uri`, counting every command it sends.
pub async fn counted_store_on(uri: &str, database: &str) -> (Store, CommandLog) {
    let log = CommandLog::default();
    let mut options = ClientOptions::parse(uri).await.unwrap();
    let sink = log.clone();
    options.command_event_handler = Some(EventHandler::callback(move |event: CommandEvent| {
        if let CommandEvent::Started(started) = event {
            let learning = started.command_name == "aggregate"
                && started.command.get_str("aggregate") == Ok("customers")
                && !started.command.contains_key("autocommit");
            sink.0.lock().unwrap().push(Sent {
                name: started.command_name,
                learning,
            });
        }
    }));
    (Store::with_options(options, database).unwrap(), log)
}

/// A counted store on a fresh database of the test server, with the indexes in place (the
/// commands that created them are not in the log).
pub async fn fresh_counted_store() -> (Store, CommandLog, String) {
    let database = fresh_database_name();
    let (store, log) = counted_store_on(&test_mongodb_uri(), &database).await;
    store.ensure_indexes().await.unwrap();
    log.clear();
    (store, log, database)
}

/// A plain store on `database` of the test server (another worker, another process).
pub async fn store_on(database: &str) -> Store {
    Store::connect(&StoreConfig {
        uri: test_mongodb_uri(),
        database: database.to_owned(),
        max_pool_size: None,
    })
    .await
    .expect("the test MongoDB URI parses")
}

/// The documents of `collection` that match `filter`, sorted by `_id`.
pub async fn documents(store: &Store, collection: &str, filter: Document) -> Vec<Document> {
    in_id_order(&store.database().collection(collection), filter).await
}

/// The documents of `collection` that match `filter`, oldest `_id` first.
pub async fn in_id_order<T>(collection: &mongodb::Collection<T>, filter: Document) -> Vec<T>
where
    T: serde::de::DeserializeOwned + Send + Sync,
{
    collection
        .find(filter)
        .sort(doc! {"_id": 1})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

/// Every document of the collections the functions write, sorted by `_id`, to compare a
/// database before and after.
pub async fn snapshot(store: &Store) -> Vec<(String, Vec<Document>)> {
    let mut all = vec![];
    for name in [
        "customers",
        "products",
        "carts",
        "transactions",
        "checkoutjobs",
    ] {
        all.push((name.to_owned(), documents(store, name, doc! {}).await));
    }
    all
}

/// The default queue settings with a time budget no batch of a test reaches, however busy the
/// machine: for a test that counts a batch's commands, its splits or its turns, which a batch
/// cut for time would change. Cuts for time have their own test, on a load slowed on purpose.
pub fn untimed_settings() -> mall_store::testing::queue::QueueSettings {
    mall_store::testing::queue::QueueSettings {
        batch_time_budget: std::time::Duration::from_secs(240),
        ..mall_store::testing::queue::QueueSettings::default()
    }
}
