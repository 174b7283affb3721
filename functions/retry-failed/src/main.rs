//! The `retry-failed` Lambda binary: builds the MongoDB client once per execution environment,
//! then answers operator requests with [`retry_failed::handle`].

use lambda_runtime::{service_fn, LambdaEvent};
use mall_runtime::{config::store_config, Started};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let Started { store, .. } = mall_runtime::start(store_config, |config| config).await?;
    let store = &store;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<_, lambda_runtime::Error>(retry_failed::handle(store, &event.payload).await)
    }))
    .await
}
