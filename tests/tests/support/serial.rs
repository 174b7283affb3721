//! One drain of the queue by one lane, never cut for time: the serial order the pure rules
//! are replayed in (shared by the database-dump tests).

use std::sync::Arc;

use mall_store::Store;
use reward_worker::drain::{drain_queue, DrainLimits, DrainSummary, SystemClock};

pub async fn drain_serially(store: &Store) -> DrainSummary {
    let limits = DrainLimits {
        concurrency: 1,
        ..DrainLimits::default()
    };
    let settings = mall_testkit::db::untimed_settings();
    drain_queue(store, settings, limits, Arc::new(SystemClock)).await
}
