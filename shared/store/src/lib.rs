//! Every MongoDB query of the mall lives in this crate: the one client builder, the typed
//! documents of each collection, and the indexes the code relies on.
//!
//! Handlers and tools hold a [`Store`] (built once per process, cheap to clone) and call named
//! operations on it; they never build a query themselves. Documents have the running
//! app's shapes and amounts its unit (points as a Double; see [`amount`]), ids are ObjectIds.

pub mod amount;
#[cfg(feature = "operators")]
pub mod audit;
pub mod chains;
pub mod checkout;
#[cfg(feature = "operators")]
pub mod cutover;
pub mod documents;
pub mod drainer;
pub mod error;
pub mod failpoints;
pub mod indexes;
#[cfg(feature = "operators")]
pub mod ops;
pub mod queue;
pub mod rewards;
#[cfg(feature = "operators")]
pub mod seeding;
pub mod settings;
mod store;
pub mod transaction;

pub use checkout::{CheckoutCommand, CheckoutError, CheckoutReceipt};
pub use error::StoreError;
pub use store::{collections, Store, StoreConfig};

/// The BSON types the documents use, re-exported so callers need no direct `bson` dependency.
pub use mongodb::bson;
