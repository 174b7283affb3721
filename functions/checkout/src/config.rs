//! The checkout function's settings, read once from the environment at start-up (SPEC §8a).

use mall_domain::RewardPolicy;
use mall_runtime::config::{job_max_attempts, reward_config, store_config};
use mall_runtime::env::{self, ConfigError, Env};
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
    pub economy: mall_store::Economy,
    /// `CHECKOUT_DEADLINE_MS`: every request answered within it.
    pub deadline: std::time::Duration,
}

impl CheckoutConfig {
    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        let identity = match env.choice(&env::IDENTITY_MODE)? {
            "authorizer" => IdentityConfig::Authorizer,
            _ => IdentityConfig::AppToken {
                secret: match (
                    env.text(&env::APP_JWT_SECRET_ARN),
                    env.text(&env::LOCAL_JWT_SECRET),
                ) {
                    (Some(secret_id), _) => SecretSource::SecretsManager { secret_id },
                    (None, Some(secret)) => SecretSource::Local(secret),
                    (None, None) => {
                        return Err(ConfigError::Invalid {
                            name: env::APP_JWT_SECRET_ARN.name,
                            reason: "identity mode app-token needs the app's token secret: \
                                     APP_JWT_SECRET_ARN (or LOCAL_JWT_SECRET locally)"
                                .into(),
                        })
                    }
                },
            },
        };
        let rewards = reward_config(env)?;
        Ok(CheckoutConfig {
            // One request at a time per instance, its commands one after another.
            store: store_config(env, 1)?,
            identity,
            customer_id_claim: env.text(&env::CUSTOMER_ID_CLAIM).unwrap_or_default(),
            event_bus_name: env.text(&env::EVENT_BUS_NAME),
            job_max_attempts: job_max_attempts(env)?,
            reward_policy: rewards.policy,
            economy: rewards.economy,
            deadline: std::time::Duration::from_millis(env.count(&env::CHECKOUT_DEADLINE_MS)?),
        })
    }
}
