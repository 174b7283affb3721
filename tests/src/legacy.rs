//! Databases the app's own code wrote (`tests/data/legacy/`, copied from the team's handbook: the
//! seed era's `legacy-canonical.json`, and `head-canonical.json` / `head-canonical-referral10.json`
//! after the app's current version ran on it): loaded into a test database exactly — every
//! document with its BSON types (Int32, Int64, Double kept apart by the dump's canonical Extended
//! JSON), and every index under its own name and options — so tests run the functions on data
//! the running app wrote.

use std::path::PathBuf;

use mall_store::bson::{doc, Bson, Document};
use mall_store::Store;
use serde_json::Value;

/// The seed era's dump (`legacy-canonical.json`).
pub const SEED_ERA: &str = "legacy-canonical.json";
/// The seed era, then the app's current version (`head-canonical.json`).
pub const HEAD: &str = "head-canonical.json";
/// The same, with the admin raising the direct-referral share to 10 % midway.
pub const HEAD_REFERRAL10: &str = "head-canonical-referral10.json";
/// The seed era's app on products whose rewards have cents (`cents-canonical-seed-era.json`):
/// its checkout split R in doubles.
pub const CENTS_SEED_ERA: &str = "cents-canonical-seed-era.json";
/// That database, then the app's current version (`cents-canonical.json`).
pub const CENTS_HEAD: &str = "cents-canonical.json";

/// Where a dump is: in the repository's `tests/data/legacy/`.
pub fn dump_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data/legacy")
        .join(name)
}

/// The dump, parsed: its documents per collection and its `listIndexes` output per collection.
pub struct LegacyDump {
    pub collections: Vec<(String, Vec<Document>)>,
    pub indexes: Vec<(String, Vec<Document>)>,
}

impl LegacyDump {
    /// The seed era's dump.
    pub fn read() -> LegacyDump {
        Self::read_named(SEED_ERA)
    }

    pub fn read_named(name: &str) -> LegacyDump {
        let path = dump_path(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("the dump {} cannot be read ({e})", path.display()));
        let dump: Value = serde_json::from_str(&text).expect("the dump is JSON");
        let documents = |section: &str| -> Vec<(String, Vec<Document>)> {
            let mut out: Vec<(String, Vec<Document>)> = dump[section]
                .as_object()
                .unwrap_or_else(|| panic!("the dump has no {section:?}"))
                .iter()
                .map(|(name, docs)| {
                    let docs = docs
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|d| match Bson::try_from(d.clone()).unwrap() {
                            Bson::Document(doc) => doc,
                            other => panic!("{name}: not a document: {other}"),
                        })
                        .collect();
                    (name.clone(), docs)
                })
                .collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        };
        LegacyDump {
            collections: documents("collections"),
            indexes: documents("indexes"),
        }
    }

    pub fn documents(&self, collection: &str) -> &[Document] {
        self.collections
            .iter()
            .find(|(name, _)| name == collection)
            .map(|(_, docs)| docs.as_slice())
            .unwrap_or_default()
    }

    /// Loads every index (under its own name and options) and every document into the store's
    /// database, which should be empty.
    pub async fn load(&self, store: &Store) {
        for (collection, indexes) in &self.indexes {
            let specs: Vec<Document> = indexes
                .iter()
                .filter(|index| index.get_str("name") != Ok("_id_"))
                .map(|index| {
                    let mut spec = index.clone();
                    spec.remove("v");
                    spec
                })
                .collect();
            store
                .database()
                .run_command(doc! {"create": collection.as_str()})
                .await
                .unwrap();
            if !specs.is_empty() {
                store
                    .database()
                    .run_command(doc! {"createIndexes": collection.as_str(), "indexes": specs})
                    .await
                    .unwrap_or_else(|e| panic!("{collection}: the original's indexes: {e}"));
            }
        }
        for (collection, docs) in &self.collections {
            if docs.is_empty() {
                continue;
            }
            for batch in docs.chunks(1_000) {
                store
                    .database()
                    .collection::<Document>(collection)
                    .insert_many(batch)
                    .await
                    .unwrap_or_else(|e| panic!("{collection}: {e}"));
            }
        }
    }
}
