//! The worker's settings, read once from the environment at start-up (SPEC §8a): the
//! connection, the queue's settings and the drain's bounds (`WORKER_*`).

use std::time::Duration;

use mall_runtime::config::{queue_settings, store_config};
use mall_runtime::env::{self, ConfigError, Env};
use mall_store::QueueSettings;
use mall_store::StoreConfig;

use crate::drain::DrainLimits;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub store: StoreConfig,
    pub queue: QueueSettings,
    pub limits: DrainLimits,
}

impl WorkerConfig {
    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        let limits = drain_limits(env)?;
        Ok(WorkerConfig {
            // A connection for each batch in flight.
            store: store_config(env, u32::try_from(limits.concurrency).unwrap_or(u32::MAX))?,
            queue: queue_settings(env)?,
            limits,
        })
    }
}

/// A drain's bounds: `WORKER_CONCURRENCY`, `WORKER_BATCH_SIZE`, `WORKER_MAX_JOBS` and
/// `WORKER_TIME_MARGIN_MS` (ranges and defaults declared in `mall_runtime::env`). The deadline
/// is the invocation's, set by the handler.
pub fn drain_limits(env: &Env) -> Result<DrainLimits, ConfigError> {
    let count = |variable| -> Result<usize, ConfigError> {
        Ok(usize::try_from(env.count(variable)?).unwrap_or(1))
    };
    Ok(DrainLimits {
        concurrency: count(&env::WORKER_CONCURRENCY)?,
        batch_size: count(&env::WORKER_BATCH_SIZE)?,
        max_jobs: count(&env::WORKER_MAX_JOBS)?,
        deadline: None,
        margin: Duration::from_millis(env.count(&env::WORKER_TIME_MARGIN_MS)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_has_the_spec_defaults() {
        let env = Env::from_lookup(|name| {
            (name == "MONGODB_URI").then(|| "mongodb://localhost".to_owned())
        });
        let config = WorkerConfig::read(&env).unwrap();
        assert_eq!(config.limits.concurrency, 4);
        assert_eq!(config.limits.batch_size, crate::drain::DEFAULT_BATCH_SIZE);
        assert_eq!(config.limits.max_jobs, 1000);
        assert_eq!(config.limits.margin, Duration::from_millis(5000));
        assert_eq!(config.queue.lease, Duration::from_secs(300));
        assert_eq!(config.queue.retry.base, Duration::from_secs(30));
        assert_eq!(config.queue.retry.max_attempts, 3);
        // The types' defaults are what an unset environment gives.
        let defaults = crate::drain::DrainLimits::default();
        assert_eq!(
            (
                defaults.concurrency,
                defaults.batch_size,
                defaults.max_jobs,
                defaults.margin
            ),
            (
                config.limits.concurrency,
                config.limits.batch_size,
                config.limits.max_jobs,
                config.limits.margin
            )
        );
        assert_eq!(config.queue, mall_store::QueueSettings::default());
    }

    #[test]
    fn the_batch_size_is_bounded_by_its_declaration() {
        let env = |size: &'static str| {
            Env::from_lookup(move |name| match name {
                "WORKER_BATCH_SIZE" => Some(size.to_owned()),
                _ => None,
            })
        };
        assert_eq!(drain_limits(&env("20")).unwrap().batch_size, 20);
        assert!(drain_limits(&env("51")).is_err());
        assert!(drain_limits(&env("0")).is_err());
    }
}
