//! After a checkout commits, a best-effort `CheckoutJobQueued` event on the configured EventBridge
//! bus (SPEC §5.2 step 10) wakes the reward worker now rather than at its next scheduled tick.
//!
//! Best effort means: bounded in time, logged when it fails, and never able to change the
//! checkout's response — the job is already durable and the schedule will find it anyway.

use std::time::Duration;

use aws_config::{BehaviorVersion, ConfigLoader};
use aws_sdk_eventbridge::config::SharedHttpClient;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use mall_store::CheckoutReceipt;

pub const EVENT_SOURCE: &str = "mall.checkout";
pub const EVENT_DETAIL_TYPE: &str = "CheckoutJobQueued";

/// How long a checkout may wait for EventBridge before it answers anyway.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

/// The AWS SDK's HTTPS client: rustls on ring, the TLS stack the MongoDB driver already links
/// (the SDK's default client would add aws-lc, a second one, to the binary).
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The AWS configuration loader with [`https_client`]; the region and credentials come from
/// the environment (in Lambda, the function's region and role) unless the caller sets them.
pub fn aws_config_loader() -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest()).http_client(https_client())
}

pub struct JobQueuedPublisher {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl JobQueuedPublisher {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> Self {
        JobQueuedPublisher {
            client,
            bus: bus.into(),
        }
    }

    /// Puts the event, giving up at `by` (the request's deadline) or after [`PUBLISH_TIMEOUT`],
    /// whichever is first; `Err` carries a description for the log.
    pub async fn publish(
        &self,
        receipt: &CheckoutReceipt,
        by: tokio::time::Instant,
    ) -> Result<(), String> {
        let detail = serde_json::json!({
            "jobId": receipt.job_id.to_hex(),
            "checkoutTransactionId": receipt.transaction_id.to_hex(),
        });
        let entry = PutEventsRequestEntry::builder()
            .source(EVENT_SOURCE)
            .detail_type(EVENT_DETAIL_TYPE)
            .detail(detail.to_string())
            .event_bus_name(&self.bus)
            .build();
        let put = self.client.put_events().entries(entry).send();
        let give_up = by.min(tokio::time::Instant::now() + PUBLISH_TIMEOUT);
        let output = tokio::time::timeout_at(give_up, put)
            .await
            .map_err(|_| "no answer before the request's deadline".to_owned())?
            .map_err(|e| aws_sdk_eventbridge::error::DisplayErrorContext(e).to_string())?;
        if output.failed_entry_count() > 0 {
            let reason = output
                .entries()
                .iter()
                .filter_map(|e| e.error_message())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(format!("the bus refused the event: {reason}"));
        }
        Ok(())
    }
}
