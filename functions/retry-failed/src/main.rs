//! The `retry-failed` Lambda binary: builds the MongoDB client once per execution environment,
//! then answers operator requests with [`retry_failed::handle`].

use lambda_runtime::{service_fn, LambdaEvent};
use mall_store::{Store, StoreConfig};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    mall_store::telemetry::init_json_logs();
    let store = Store::connect(&StoreConfig::from_env()?).await?;
    let store = &store;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<_, lambda_runtime::Error>(retry_failed::handle(store, &event.payload).await)
    }))
    .await
}
