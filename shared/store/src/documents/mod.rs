//! Typed documents of every collection (SPEC §4 and §6.1), as stored: a module per collection
//! (`customers`, `products`, `carts`, `transactions`, `checkoutjobs` in `jobs`) and the stored
//! words of statuses and kinds (`words`), all re-exported here.
//!
//! The shapes are the running mall app's own (the team's `APP-DATA.md`): its field names
//! (`Address`, `percentage`, carts' string `productId`, its transaction fields), and amounts in
//! points as a BSON Double, converted exactly to and from [`mall_domain::MilliPoints`] by
//! [`crate::amount`]. Our own fields sit beside the app's. Ids are ObjectIds and times BSON dates;
//! optional fields of ours are left out when empty, except `parentCustomer`, whose null means "a
//! root".

use mongodb::bson::{Bson, Document};

mod carts;
mod customers;
mod jobs;
mod products;
mod transactions;
mod words;

pub use carts::*;
pub use customers::*;
pub use jobs::*;
pub use products::*;
pub use transactions::*;
pub use words::*;

/// A stored document that does not read as its type: at which field, and why. Shown as
/// `payload.totalRewardPoints: a string is not an amount of points` (the problem alone when it
/// is the document's own).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{problem}", field.as_deref().map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct ReadError {
    /// The field's path (`payload.totalRewardPoints`), `None` for the document as a whole.
    pub field: Option<String>,
    pub problem: String,
}

impl From<ReadError> for crate::error::StoreError {
    fn from(error: ReadError) -> Self {
        crate::error::StoreError::Unreadable(error.to_string())
    }
}

/// Reads a stored document as `T`, or says at which field it fails and why.
pub fn read_document<T: serde::de::DeserializeOwned>(doc: Document) -> Result<T, ReadError> {
    let deserializer = mongodb::bson::Deserializer::new(Bson::Document(doc));
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        ReadError {
            field: (path != ".").then_some(path),
            problem: err.into_inner().to_string(),
        }
    })
}

/// A number the server may return as Int32, Int64 or (for averages) Double, as an `i64`
/// (a double is rounded: it is never money, only counts and durations).
pub(crate) fn number(doc: &Document, key: &str) -> Option<i64> {
    match doc.get(key)? {
        Bson::Int32(n) => Some(i64::from(*n)),
        Bson::Int64(n) => Some(*n),
        #[allow(clippy::cast_possible_truncation)]
        Bson::Double(n) if n.is_finite() => Some(n.round() as i64),
        _ => None,
    }
}
