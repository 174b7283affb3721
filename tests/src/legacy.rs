//! The original system's database, as it left it (`../shared/legacy/legacy-canonical.json`):
//! loaded into a test database exactly — every document with its BSON types (Int32, Int64,
//! Double kept apart by the dump's canonical Extended JSON), and every index under its own name
//! and options — so tests run the functions on data the running app wrote.

use std::path::PathBuf;

use mall_store::bson::{doc, Bson, Document};
use mall_store::Store;
use serde_json::Value;

/// Where the dump is: `MALL_LEGACY_DUMP`, or the handbook folder beside the checkout.
pub fn dump_path() -> PathBuf {
    std::env::var_os("MALL_LEGACY_DUMP")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../shared/legacy/legacy-canonical.json")
        })
}

/// The dump, parsed: its documents per collection and its `listIndexes` output per collection.
pub struct LegacyDump {
    pub collections: Vec<(String, Vec<Document>)>,
    pub indexes: Vec<(String, Vec<Document>)>,
}

impl LegacyDump {
    pub fn read() -> LegacyDump {
        let path = dump_path();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "the original system's dump {} cannot be read ({e}); it ships in the team's \
                 shared folder beside the checkout (or set MALL_LEGACY_DUMP)",
                path.display()
            )
        });
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
