//! Settings read from the environment (SPEC §8a) that more than one function needs: the
//! connection (`MONGODB_URI`, required; `MONGODB_DATABASE`, default `mall`), the reward policy
//! (`REWARD_POLICY`) and the job's attempts (`JOB_MAX_ATTEMPTS`). Each is validated at start-up
//! with an error naming the variable. The URI can hold a password, so it is never printed.

use std::fmt;

use mall_domain::{PolicyError, RewardPolicy};

pub const DEFAULT_DATABASE: &str = "mall";

#[derive(Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub uri: String,
    pub database: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("MONGODB_URI is not set")]
    MissingUri,
    #[error("MONGODB_DATABASE {0:?} is not a valid database name")]
    BadDatabaseName(String),
    #[error("REWARD_POLICY: {0}")]
    BadPolicy(PolicyError),
    #[error("{name} must be a whole number from {min} to {max}, got {value:?}")]
    OutOfRange {
        name: &'static str,
        value: String,
        min: i64,
        max: i64,
    },
    #[error("{name}: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// `REWARD_POLICY` (a JSON object of policy overrides), or the default policy when unset.
pub fn reward_policy<F: Fn(&str) -> Option<String>>(
    lookup: F,
) -> Result<RewardPolicy, ConfigError> {
    match lookup("REWARD_POLICY").filter(|v| !v.trim().is_empty()) {
        None => Ok(RewardPolicy::default()),
        Some(json) => RewardPolicy::from_json(&json).map_err(ConfigError::BadPolicy),
    }
}

/// An integer variable within `min..=max`, or `default` when unset.
pub fn integer<F: Fn(&str) -> Option<String>>(
    lookup: F,
    name: &'static str,
    default: i64,
    min: i64,
    max: i64,
) -> Result<i64, ConfigError> {
    let Some(raw) = lookup(name).filter(|v| !v.trim().is_empty()) else {
        return Ok(default);
    };
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|v| (min..=max).contains(v))
        .ok_or(ConfigError::OutOfRange {
            name,
            value: raw,
            min,
            max,
        })
}

/// The queue's settings: `JOB_LEASE_SECONDS` (default 300), `JOB_BACKOFF_BASE_SECONDS` (30),
/// `JOB_MAX_ATTEMPTS` (3), `JOB_RETENTION_DAYS` (unset: completed jobs are kept for good, as the
/// app's jobs dashboard expects; a number of days opts in to their removal) and
/// `REWARD_LEVEL_GIFTS` (`on`, the default, or `off`).
pub fn queue_settings<F: Fn(&str) -> Option<String>>(
    lookup: F,
) -> Result<crate::queue::QueueSettings, ConfigError> {
    use std::time::Duration;
    let seconds = |n: i64| Duration::from_secs(u64::try_from(n).unwrap_or(0));
    let defaults = crate::queue::QueueSettings::default();
    let lease = seconds(integer(&lookup, "JOB_LEASE_SECONDS", 300, 1, 86_400)?);
    Ok(crate::queue::QueueSettings {
        lease,
        // Well inside the lease, whatever it is set to.
        batch_time_budget: defaults.batch_time_budget.min(lease / 10),
        retry: mall_domain::RetryPolicy {
            max_attempts: u32::try_from(job_max_attempts(&lookup)?).unwrap_or(3),
            base: seconds(integer(&lookup, "JOB_BACKOFF_BASE_SECONDS", 30, 0, 86_400)?),
            cap: defaults.retry.cap,
        },
        retention: match lookup("JOB_RETENTION_DAYS").filter(|v| !v.trim().is_empty()) {
            None => None,
            Some(_) => Some(seconds(
                integer(&lookup, "JOB_RETENTION_DAYS", 7, 1, 3_650)? * 86_400,
            )),
        },
        level_gifts_allowed: level_gifts_allowed(&lookup)?,
    })
}

/// `REWARD_LEVEL_GIFTS`: `on` (the default) or `off`. The app never paid its level gifts; a
/// deployment that must not start paying them at cutover turns them off.
pub fn level_gifts_allowed<F: Fn(&str) -> Option<String>>(lookup: F) -> Result<bool, ConfigError> {
    match lookup("REWARD_LEVEL_GIFTS").as_deref().map(str::trim) {
        None | Some("") | Some("on") => Ok(true),
        Some("off") => Ok(false),
        Some(other) => Err(ConfigError::Invalid {
            name: "REWARD_LEVEL_GIFTS",
            reason: format!("{other:?} is neither on nor off"),
        }),
    }
}

/// The checkout's economy: the app's current one when `REWARD_POLICY` names the `current`
/// preset, else the policy's fixed split.
pub fn economy<F: Fn(&str) -> Option<String>>(
    lookup: F,
) -> Result<crate::checkout::Economy, ConfigError> {
    let current = lookup("REWARD_POLICY")
        .filter(|v| !v.trim().is_empty())
        .and_then(|json| RewardPolicy::preset_named_in(&json))
        == Some(mall_domain::PolicyPreset::Current);
    Ok(if current {
        crate::checkout::Economy::Current {
            level_gifts_allowed: level_gifts_allowed(&lookup)?,
        }
    } else {
        crate::checkout::Economy::Split
    })
}

/// A drain's bounds: `WORKER_CONCURRENCY` (batches in flight, default 4), `WORKER_BATCH_SIZE`
/// (jobs per batch, default [`DEFAULT_BATCH_SIZE`](crate::drain::DEFAULT_BATCH_SIZE), at most
/// 50), `WORKER_MAX_JOBS` (claims per drain, 1000) and `WORKER_TIME_MARGIN_MS` (5000). The
/// deadline is the invocation's, set by the caller.
pub fn drain_limits<F: Fn(&str) -> Option<String>>(
    lookup: F,
) -> Result<crate::drain::DrainLimits, ConfigError> {
    use crate::drain::{DrainLimits, DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE};
    let count = |n: i64| usize::try_from(n).unwrap_or(1);
    let batch = |n: usize| i64::try_from(n).unwrap_or(1);
    Ok(DrainLimits {
        concurrency: count(integer(&lookup, "WORKER_CONCURRENCY", 4, 1, 64)?),
        batch_size: count(integer(
            &lookup,
            "WORKER_BATCH_SIZE",
            batch(DEFAULT_BATCH_SIZE),
            1,
            batch(MAX_BATCH_SIZE),
        )?),
        max_jobs: count(integer(&lookup, "WORKER_MAX_JOBS", 1000, 1, 100_000)?),
        deadline: None,
        margin: std::time::Duration::from_millis(
            u64::try_from(integer(&lookup, "WORKER_TIME_MARGIN_MS", 5000, 0, 900_000)?)
                .unwrap_or(5000),
        ),
    })
}

/// `JOB_MAX_ATTEMPTS`: claims a job gets before it is `failed` (default 3).
pub fn job_max_attempts<F: Fn(&str) -> Option<String>>(lookup: F) -> Result<i32, ConfigError> {
    let attempts = integer(lookup, "JOB_MAX_ATTEMPTS", 3, 1, 100)?;
    Ok(i32::try_from(attempts).unwrap_or(3))
}

impl StoreConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup<F: Fn(&str) -> Option<String>>(lookup: F) -> Result<Self, ConfigError> {
        let uri = lookup("MONGODB_URI")
            .filter(|uri| !uri.trim().is_empty())
            .ok_or(ConfigError::MissingUri)?;
        let database = lookup("MONGODB_DATABASE")
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
        // MongoDB's own rules for database names, checked here so a typo fails at start-up.
        let forbidden = |c: char| "/\\. \"$*<>:|?\0".contains(c);
        if database.len() > 63 || database.contains(forbidden) {
            return Err(ConfigError::BadDatabaseName(database));
        }
        Ok(StoreConfig { uri, database })
    }
}

/// Shows the database but not the URI, which may carry credentials.
impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("uri", &"<redacted>")
            .field("database", &self.database)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<StoreConfig, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        StoreConfig::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn uri_is_required() {
        assert_eq!(config(&[]), Err(ConfigError::MissingUri));
        assert_eq!(
            config(&[("MONGODB_URI", "  ")]),
            Err(ConfigError::MissingUri)
        );
    }

    #[test]
    fn database_defaults_to_mall() {
        let c = config(&[("MONGODB_URI", "mongodb://localhost")]).unwrap();
        assert_eq!(c.database, "mall");
        let c = config(&[("MONGODB_URI", "mongodb://x"), ("MONGODB_DATABASE", "shop")]).unwrap();
        assert_eq!(c.database, "shop");
    }

    #[test]
    fn bad_database_names_are_refused() {
        for bad in ["a.b", "a b", "a/b", "$x"] {
            assert_eq!(
                config(&[("MONGODB_URI", "mongodb://x"), ("MONGODB_DATABASE", bad)]),
                Err(ConfigError::BadDatabaseName(bad.to_owned()))
            );
        }
    }

    #[test]
    fn policy_and_attempts_come_from_the_environment() {
        let vars = |pairs: &[(&str, &str)]| {
            let map: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            move |name: &str| map.get(name).cloned()
        };
        assert_eq!(reward_policy(vars(&[])), Ok(RewardPolicy::default()));
        let original = reward_policy(vars(&[("REWARD_POLICY", r#"{"preset":"original"}"#)]));
        assert_eq!(original.unwrap().tree_bps().get(), 5000);
        assert!(matches!(
            reward_policy(vars(&[("REWARD_POLICY", r#"{"treeBps": 1}"#)])),
            Err(ConfigError::BadPolicy(_))
        ));
        assert_eq!(job_max_attempts(vars(&[])), Ok(3));
        let queue = queue_settings(vars(&[
            ("JOB_LEASE_SECONDS", "60"),
            ("JOB_RETENTION_DAYS", "2"),
        ]))
        .unwrap();
        assert_eq!(queue.lease.as_secs(), 60);
        assert_eq!(queue.retention.map(|r| r.as_secs()), Some(2 * 86_400));
        assert_eq!(queue_settings(vars(&[])).unwrap().retention, None);
        assert!(
            !queue_settings(vars(&[("REWARD_LEVEL_GIFTS", "off")]))
                .unwrap()
                .level_gifts_allowed
        );
        assert!(queue_settings(vars(&[("REWARD_LEVEL_GIFTS", "maybe")])).is_err());
        assert_eq!(queue.retry.base.as_secs(), 30);
        assert!(queue_settings(vars(&[("JOB_LEASE_SECONDS", "0")])).is_err());
        assert_eq!(job_max_attempts(vars(&[("JOB_MAX_ATTEMPTS", "5")])), Ok(5));
        for bad in ["0", "-1", "x", "1.5", "101"] {
            assert!(
                job_max_attempts(vars(&[("JOB_MAX_ATTEMPTS", bad)])).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_current_preset_selects_the_apps_economy() {
        use crate::checkout::Economy;
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(economy(vars(&[])), Ok(Economy::Split));
        assert_eq!(
            economy(vars(&[("REWARD_POLICY", r#"{"preset": "original"}"#)])),
            Ok(Economy::Split)
        );
        assert_eq!(
            economy(vars(&[("REWARD_POLICY", r#"{"preset": "current"}"#)])),
            Ok(Economy::Current {
                level_gifts_allowed: true
            })
        );
        assert_eq!(
            economy(vars(&[
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
        // The tree rules of the current preset: 10 % per letter and for the J bucket.
        let rules = reward_policy(vars(&[("REWARD_POLICY", r#"{"preset": "current"}"#)])).unwrap();
        assert_eq!(
            (rules.level_bps().get(), rules.j_shared_bps().get()),
            (1000, 1000)
        );
    }

    #[test]
    fn debug_output_hides_the_uri() {
        let c = config(&[("MONGODB_URI", "mongodb://user:secret@host")]).unwrap();
        assert!(!format!("{c:?}").contains("secret"));
    }
}
