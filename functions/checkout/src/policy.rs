//! The reward policy a checkout splits by: the configured one (`REWARD_POLICY`), refined by the
//! settings document `{_id: "rewardPolicy"}` when there is one — and never any other.
//!
//! Read once per execution environment. A settings document that is invalid or unreadable
//! stops the function from starting ([`PolicySource::at_start`] fails: an init error, which
//! Lambda retries), so two warm instances can never split the same purchase differently. When
//! the database is unreachable at start-up the policy is not guessed: it is read by the first
//! request that finds the database, and checkouts answer `503` until then.

use mall_domain::RewardPolicy;
use mall_store::PolicySettingsError;
use mall_store::Store;
use tokio::sync::OnceCell;

use crate::api::ApiError;

pub struct PolicySource {
    configured: RewardPolicy,
    loaded: OnceCell<RewardPolicy>,
}

impl PolicySource {
    /// A policy already known (tests, tools).
    pub fn loaded(policy: RewardPolicy) -> Self {
        PolicySource {
            configured: policy,
            loaded: OnceCell::new_with(Some(policy)),
        }
    }

    /// The database was unreachable at start-up: the policy is read by the first request that
    /// reaches it.
    pub fn deferred(configured: RewardPolicy) -> Self {
        PolicySource {
            configured,
            loaded: OnceCell::new(),
        }
    }

    /// Reads the policy at start-up. `Err` means: do not start.
    pub async fn at_start(
        store: &Store,
        configured: RewardPolicy,
    ) -> Result<Self, PolicySettingsError> {
        match store.checkouts().effective_reward_policy(&configured).await {
            Ok(policy) => Ok(Self::loaded(policy)),
            Err(error) if error.is_unreachable() => {
                tracing::warn!(%error, "the reward policy will be read once the database answers");
                Ok(Self::deferred(configured))
            }
            Err(error) => Err(error),
        }
    }

    /// The policy in force, reading it now if start-up could not.
    pub async fn get(&self, store: &Store) -> Result<RewardPolicy, ApiError> {
        self.loaded
            .get_or_try_init(|| async {
                store
                    .checkouts()
                    .effective_reward_policy(&self.configured)
                    .await
                    .map_err(|error| {
                        if error.is_unreachable() {
                            ApiError::Unavailable
                        } else {
                            // Found only now, after an outage at start-up: refuse every
                            // checkout rather than split by another policy.
                            tracing::error!(%error, "the reward policy settings are unusable");
                            ApiError::Internal
                        }
                    })
            })
            .await
            .copied()
    }
}
