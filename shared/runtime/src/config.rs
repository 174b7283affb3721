//! The settings more than one binary reads (SPEC §8a), parsed from the declared variables:
//! the connection, the queue's settings, the reward policy, the checkout's economy and the
//! job's attempts. Each is validated at start-up with an error naming the variable; the URI can
//! hold a password, so it is never printed.

use std::time::Duration;

use mall_domain::{PolicyOverrides, PolicyPreset, RetryPolicy, RewardPolicy};
use mall_store::Economy;
use mall_store::QueueSettings;
use mall_store::StoreConfig;

use crate::env::{self, ConfigError, Env};

/// `MONGODB_URI` (required), `MONGODB_DATABASE` (default `mall`, MongoDB's naming rules) and
/// `MONGODB_MAX_POOL_SIZE` (unset: `in_flight`, the requests or batches the binary runs at once,
/// so none waits for a connection and none is held spare).
pub fn store_config(env: &Env, in_flight: u32) -> Result<StoreConfig, ConfigError> {
    let uri = env.required(&env::MONGODB_URI)?;
    let database = env.text(&env::MONGODB_DATABASE).unwrap_or_default();
    // MongoDB's own rules for database names, checked here so a typo fails at start-up.
    let forbidden = |c: char| "/\\. \"$*<>:|?\0".contains(c);
    if database.is_empty() || database.len() > 63 || database.contains(forbidden) {
        return Err(ConfigError::Invalid {
            name: env::MONGODB_DATABASE.name,
            reason: format!("{database:?} is not a valid database name"),
        });
    }
    let max_pool_size = match env.integer(&env::MONGODB_MAX_POOL_SIZE)? {
        Some(size) => u32::try_from(size).unwrap_or(u32::MAX),
        None => in_flight.max(1),
    };
    Ok(StoreConfig {
        uri,
        database,
        max_pool_size: Some(max_pool_size),
    })
}

/// What `REWARD_POLICY` configures: the tree rules, and the economy the checkout splits by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RewardConfig {
    /// The overrides resolved (the default policy when unset).
    pub policy: RewardPolicy,
    /// The app's current economy when the overrides name the `current` preset (with
    /// `REWARD_LEVEL_GIFTS`), else the policy's fixed split.
    pub economy: Economy,
}

/// `REWARD_POLICY` (a JSON object of policy overrides), parsed once: the rules and the economy.
pub fn reward_config(env: &Env) -> Result<RewardConfig, ConfigError> {
    let invalid = |error: mall_domain::PolicyError| ConfigError::Invalid {
        name: env::REWARD_POLICY.name,
        reason: error.to_string(),
    };
    let overrides = match env.json(&env::REWARD_POLICY) {
        None => PolicyOverrides::default(),
        Some(json) => PolicyOverrides::from_json(&json).map_err(invalid)?,
    };
    let economy = if overrides.preset == Some(PolicyPreset::Current) {
        Economy::Current {
            level_gifts_allowed: level_gifts_allowed(env)?,
        }
    } else {
        Economy::Split
    };
    Ok(RewardConfig {
        policy: overrides.resolve().map_err(invalid)?,
        economy,
    })
}

/// `JOB_MAX_ATTEMPTS`: claims a job gets before it is `failed`.
pub fn job_max_attempts(env: &Env) -> Result<i32, ConfigError> {
    let attempts = env.count(&env::JOB_MAX_ATTEMPTS)?;
    Ok(i32::try_from(attempts).unwrap_or(i32::MAX))
}

/// `REWARD_LEVEL_GIFTS`: `on` or `off`. The app never paid its level gifts; a deployment that
/// must not start paying them at cutover turns them off.
pub fn level_gifts_allowed(env: &Env) -> Result<bool, ConfigError> {
    Ok(env.choice(&env::REWARD_LEVEL_GIFTS)? == "on")
}

/// The queue's settings: the lease, the retries' backoff and attempts, the retention of
/// completed jobs (unset: kept for good, as the app's jobs dashboard expects) and whether level
/// gifts are paid.
pub fn queue_settings(env: &Env) -> Result<QueueSettings, ConfigError> {
    let defaults = QueueSettings::default();
    let lease = Duration::from_secs(env.count(&env::JOB_LEASE_SECONDS)?);
    Ok(QueueSettings {
        lease,
        // Well inside the lease, whatever it is set to.
        batch_time_budget: defaults.batch_time_budget.min(lease / 10),
        retry: RetryPolicy {
            max_attempts: u32::try_from(job_max_attempts(env)?).unwrap_or(3),
            base: Duration::from_secs(env.count(&env::JOB_BACKOFF_BASE_SECONDS)?),
            cap: defaults.retry.cap,
        },
        retention: env
            .integer(&env::JOB_RETENTION_DAYS)?
            .map(|days| Duration::from_secs(u64::try_from(days).unwrap_or(1) * 86_400)),
        level_gifts_allowed: level_gifts_allowed(env)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::tests::env;

    #[test]
    fn the_uri_is_required_and_the_database_defaults_to_mall() {
        assert_eq!(
            store_config(&env(&[]), 1),
            Err(ConfigError::Missing {
                name: "MONGODB_URI"
            })
        );
        let config = store_config(&env(&[("MONGODB_URI", "mongodb://localhost")]), 3).unwrap();
        assert_eq!(config.database, "mall");
        assert_eq!(
            config.max_pool_size,
            Some(3),
            "unset: one per request or batch in flight"
        );
        let config = store_config(
            &env(&[
                ("MONGODB_URI", "mongodb://x"),
                ("MONGODB_DATABASE", "shop"),
                ("MONGODB_MAX_POOL_SIZE", "2"),
            ]),
            1,
        )
        .unwrap();
        assert_eq!(config.database, "shop");
        assert_eq!(config.max_pool_size, Some(2), "set: above the natural size");
    }

    #[test]
    fn bad_database_names_are_refused() {
        for bad in ["a.b", "a b", "a/b", "$x"] {
            let lookup = move |name: &str| match name {
                "MONGODB_URI" => Some("mongodb://x".to_owned()),
                "MONGODB_DATABASE" => Some(bad.to_owned()),
                _ => None,
            };
            let error = store_config(&Env::from_lookup(lookup), 1).unwrap_err();
            assert!(error.to_string().starts_with("MONGODB_DATABASE"), "{error}");
        }
    }

    #[test]
    fn debug_output_hides_the_uri() {
        let config =
            store_config(&env(&[("MONGODB_URI", "mongodb://user:secret@host")]), 1).unwrap();
        assert!(!format!("{config:?}").contains("secret"));
    }

    #[test]
    fn policy_and_queue_settings_come_from_the_environment() {
        let policy = |vars: &'static [(&'static str, &'static str)]| {
            reward_config(&env(vars)).map(|c| c.policy)
        };
        assert_eq!(policy(&[]), Ok(RewardPolicy::default()));
        let original = policy(&[("REWARD_POLICY", r#"{"preset":"original"}"#)]);
        assert_eq!(original.unwrap().tree_bps().get(), 5000);
        assert!(policy(&[("REWARD_POLICY", r#"{"treeBps": 1}"#)]).is_err());
        assert!(policy(&[("REWARD_POLICY", r#"{"preset": "nope"}"#)]).is_err());
        assert_eq!(job_max_attempts(&env(&[])), Ok(3));
        assert_eq!(job_max_attempts(&env(&[("JOB_MAX_ATTEMPTS", "5")])), Ok(5));
        for bad in ["0", "-1", "x", "1.5", "101"] {
            let lookup = move |name: &str| (name == "JOB_MAX_ATTEMPTS").then(|| bad.to_owned());
            assert!(
                job_max_attempts(&Env::from_lookup(lookup)).is_err(),
                "{bad}"
            );
        }
        let queue = queue_settings(&env(&[
            ("JOB_LEASE_SECONDS", "60"),
            ("JOB_RETENTION_DAYS", "2"),
        ]))
        .unwrap();
        assert_eq!(queue.lease.as_secs(), 60);
        assert_eq!(queue.batch_time_budget.as_secs(), 5);
        assert_eq!(queue.retention.map(|r| r.as_secs()), Some(2 * 86_400));
        assert_eq!(queue.retry.base.as_secs(), 30);
        assert_eq!(queue_settings(&env(&[])).unwrap(), QueueSettings::default());
        assert!(
            !queue_settings(&env(&[("REWARD_LEVEL_GIFTS", "off")]))
                .unwrap()
                .level_gifts_allowed
        );
        assert!(queue_settings(&env(&[("REWARD_LEVEL_GIFTS", "maybe")])).is_err());
        assert!(queue_settings(&env(&[("JOB_LEASE_SECONDS", "0")])).is_err());
    }

    #[test]
    fn the_current_preset_selects_the_apps_economy() {
        let economy = |vars: &Env| reward_config(vars).map(|c| c.economy);
        assert_eq!(economy(&env(&[])), Ok(Economy::Split));
        assert_eq!(
            economy(&env(&[("REWARD_POLICY", r#"{"preset": "original"}"#)])),
            Ok(Economy::Split)
        );
        assert_eq!(
            economy(&env(&[("REWARD_POLICY", r#"{"preset": "current"}"#)])),
            Ok(Economy::Current {
                level_gifts_allowed: true
            })
        );
        assert_eq!(
            economy(&env(&[
                (
                    "REWARD_POLICY",
                    r#"{"preset": "current", "promotionDirects": 3}"#
                ),
                ("REWARD_LEVEL_GIFTS", "off"),
            ])),
            Ok(Economy::Current {
                level_gifts_allowed: false
            })
        );
        let rules = reward_config(&env(&[("REWARD_POLICY", r#"{"preset": "current"}"#)]))
            .unwrap()
            .policy;
        assert_eq!(
            (rules.level_bps().get(), rules.j_shared_bps().get()),
            (1000, 1000)
        );
    }
}
