//! The `reward-worker` Lambda binary: builds the MongoDB client once per execution environment,
//! then drains the queue on every invocation with [`reward_worker::handle`].

use lambda_runtime::{service_fn, LambdaEvent};
use mall_runtime::Started;
use reward_worker::WorkerConfig;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let Started { config, store, .. } =
        mall_runtime::start(WorkerConfig::read, |config| &config.store).await?;
    let (store, config) = (&store, &config);
    let metrics = mall_runtime::telemetry::emf_metrics("reward-worker")?;
    // Between the parts of a long drain (the runtime flushes once more after the invocation).
    let flush = move || {
        if let Err(error) = metrics.flush(std::io::stdout()) {
            tracing::warn!(%error, "metrics could not be flushed");
        }
    };
    let flush = &flush;
    metrics_cloudwatch_embedded::lambda::service::run(
        metrics,
        service_fn(move |event: LambdaEvent<Value>| async move {
            reward_worker::handle(store, config, event, flush).await
        }),
    )
    .await
}
