//! The checkout function's settings, read once from the environment at start-up (SPEC §8a).

use mall_domain::RewardPolicy;
use mall_store::config::{self, ConfigError};
use mall_store::StoreConfig;

/// How a request's identity is established (`IDENTITY_MODE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityConfig {
    /// `app-token` (the default): the app's own HS256 tokens, verified by this function with
    /// the app's shared secret — fetched from Secrets Manager (`APP_JWT_SECRET_ARN`) in the
    /// cloud, or given as `LOCAL_JWT_SECRET` for local development.
    AppToken { secret: SecretSource },
    /// `authorizer`: an API Gateway JWT authorizer verified the token.
    Authorizer,
}

/// Where the app's token secret comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    SecretsManager { secret_id: String },
    Local(String),
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::SecretsManager { secret_id } => {
                write!(f, "SecretsManager({secret_id})")
            }
            SecretSource::Local(_) => write!(f, "Local(<redacted>)"),
        }
    }
}

#[derive(Debug)]
pub struct CheckoutConfig {
    pub store: StoreConfig,
    pub identity: IdentityConfig,
    /// `CUSTOMER_ID_CLAIM`: the token claim holding the customer's ObjectId (default
    /// `Customer_id`, the app's own).
    pub customer_id_claim: String,
    /// `EVENT_BUS_NAME`: where `CheckoutJobQueued` goes; unset means no event.
    pub event_bus_name: Option<String>,
    pub job_max_attempts: i32,
    pub reward_policy: RewardPolicy,
    pub economy: mall_store::checkout::Economy,
}

impl CheckoutConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup<F: Fn(&str) -> Option<String>>(lookup: F) -> Result<Self, ConfigError> {
        let non_empty = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let identity = match non_empty("IDENTITY_MODE").as_deref() {
            None | Some("app-token") => IdentityConfig::AppToken {
                secret: match (
                    non_empty("APP_JWT_SECRET_ARN"),
                    non_empty("LOCAL_JWT_SECRET"),
                ) {
                    (Some(secret_id), _) => SecretSource::SecretsManager { secret_id },
                    (None, Some(secret)) => SecretSource::Local(secret),
                    (None, None) => {
                        return Err(ConfigError::Invalid {
                            name: "APP_JWT_SECRET_ARN",
                            reason: "identity mode app-token needs the app's token secret: \
                                     APP_JWT_SECRET_ARN (or LOCAL_JWT_SECRET locally)"
                                .into(),
                        })
                    }
                },
            },
            Some("authorizer") => IdentityConfig::Authorizer,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "IDENTITY_MODE",
                    reason: format!("{other:?} is neither app-token nor authorizer"),
                })
            }
        };
        Ok(CheckoutConfig {
            store: StoreConfig::from_lookup(&lookup)?,
            identity,
            customer_id_claim: non_empty("CUSTOMER_ID_CLAIM")
                .unwrap_or_else(|| crate::auth::APP_CUSTOMER_CLAIM.into()),
            event_bus_name: non_empty("EVENT_BUS_NAME"),
            job_max_attempts: config::job_max_attempts(&lookup)?,
            reward_policy: config::reward_policy(&lookup)?,
            economy: config::economy(&lookup)?,
        })
    }
}
