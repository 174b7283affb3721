//! The `reward-worker` Lambda binary: builds the MongoDB client once per execution environment,
//! then drains the queue on every invocation with [`reward_worker::handle`].

use lambda_runtime::{service_fn, LambdaEvent};
use mall_store::Store;
use reward_worker::WorkerConfig;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    mall_store::telemetry::init_json_logs();
    let config = WorkerConfig::from_env()?;
    let store = Store::connect(&config.store).await?;
    let _reachable = store
        .ensure_indexes_at_start()
        .await
        .inspect_err(|error| tracing::error!(%error, "refusing to start"))?;
    let (store, config) = (&store, &config);
    let metrics = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(mall_store::telemetry::NAMESPACE)
        .with_dimension("Service", "reward-worker")
        .lambda_cold_start_metric("ColdStart")
        .with_lambda_request_id("RequestId")
        .init()?;
    mall_store::telemetry::describe_metrics();
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
