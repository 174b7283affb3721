//! The checkout function's settings, read once from the environment at start-up (SPEC §8a).

use mall_domain::RewardPolicy;
use mall_store::config::{self, ConfigError};
use mall_store::StoreConfig;

#[derive(Debug)]
pub struct CheckoutConfig {
    pub store: StoreConfig,
    /// `CUSTOMER_ID_CLAIM`: the token claim holding the customer's ObjectId.
    pub customer_id_claim: String,
    /// `LOCAL_JWT_SECRET`: verify bearer tokens locally when there is no authorizer context.
    pub local_jwt_secret: Option<String>,
    /// `EVENT_BUS_NAME`: where `CheckoutJobQueued` goes; unset means no event.
    pub event_bus_name: Option<String>,
    pub job_max_attempts: i32,
    pub reward_policy: RewardPolicy,
}

impl CheckoutConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup<F: Fn(&str) -> Option<String>>(lookup: F) -> Result<Self, ConfigError> {
        let non_empty = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        Ok(CheckoutConfig {
            store: StoreConfig::from_lookup(&lookup)?,
            customer_id_claim: non_empty("CUSTOMER_ID_CLAIM").unwrap_or_else(|| "sub".into()),
            local_jwt_secret: non_empty("LOCAL_JWT_SECRET"),
            event_bus_name: non_empty("EVENT_BUS_NAME"),
            job_max_attempts: config::job_max_attempts(&lookup)?,
            reward_policy: config::reward_policy(&lookup)?,
        })
    }
}
