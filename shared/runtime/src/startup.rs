//! One start-up for every binary: JSON logs, the configuration read from the environment,
//! the MongoDB client built, the indexes the code relies on made sure of. Whatever fails is
//! logged as "refusing to start" with its reason and returned, so the Lambda's init fails
//! with it (and the next invocation tries again) rather than serving on a bad footing.

use mall_store::IndexError;
use mall_store::{Store, StoreConfig, StoreError};

use crate::env::{ConfigError, Env};

/// Why a binary refused to start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the database client could not be built: {0}")]
    Client(#[from] StoreError),
    #[error(transparent)]
    Indexes(#[from] IndexError),
}

/// A started binary: its configuration, the store, and whether the database answered at
/// start-up (when it did not, the indexes are made sure of by the next start).
#[derive(Debug)]
pub struct Started<C> {
    pub config: C,
    pub store: Store,
    pub database_reachable: bool,
}

/// Installs the logs, reads the configuration with `read`, connects with the store settings
/// `store_config` finds in it, and makes sure of the indexes.
pub async fn start<C>(
    read: impl FnOnce(&Env) -> Result<C, ConfigError>,
    store_config: impl FnOnce(&C) -> &StoreConfig,
) -> Result<Started<C>, StartError> {
    crate::telemetry::init_json_logs();
    let started = async {
        let config = read(&Env::process())?;
        let store = Store::connect(store_config(&config)).await?;
        let database_reachable = store.ensure_indexes_at_start().await?;
        Ok(Started {
            config,
            store,
            database_reachable,
        })
    }
    .await;
    started.inspect_err(|error: &StartError| tracing::error!(%error, "refusing to start"))
}
