//! The `retry-failed` Lambda binary: builds the MongoDB client once per execution environment,
//! then answers operator requests with [`retry_failed::handle`].

use lambda_runtime::{service_fn, LambdaEvent};
use mall_runtime::{config::store_config, Started};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // One operator's request at a time, its commands one after another: one connection.
    let read = |env: &mall_runtime::Env| store_config(env, 1);
    let Started { store, .. } = mall_runtime::start(read, |config| config).await?;
    let store = &store;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<_, lambda_runtime::Error>(retry_failed::handle(store, &event.payload).await)
    }))
    .await
}
