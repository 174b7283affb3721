//! The `checkout` Lambda binary: builds the clients once per execution environment, then serves
//! API Gateway HTTP API requests with [`checkout::App::handle`].

use std::sync::Arc;

use checkout::auth::{self, Authenticator};
use checkout::config::{CheckoutConfig, IdentityConfig, SecretSource};
use checkout::events::JobQueuedPublisher;
use checkout::policy::PolicySource;
use checkout::App;
use lambda_http::{service_fn, Request};
use mall_runtime::Started;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let Started {
        config,
        store,
        database_reachable: reachable,
    } = mall_runtime::start(CheckoutConfig::read, |config| &config.store).await?;
    // An invalid or unreadable settings document: refuse to start rather than split purchases
    // by another policy than the one configured.
    // An unreachable database costs start-up one server-selection timeout, not two (Lambda
    // allows init 10 s).
    let policy = match reachable {
        true => PolicySource::at_start(&store, config.reward_policy)
            .await
            .inspect_err(|error| tracing::error!(%error, "refusing to start"))?,
        false => PolicySource::deferred(config.reward_policy),
    };
    let needs_aws = config.event_bus_name.is_some()
        || matches!(
            config.identity,
            IdentityConfig::AppToken {
                secret: SecretSource::SecretsManager { .. }
            }
        );
    let aws = match needs_aws {
        true => Some(checkout::events::aws_config_loader().load().await),
        false => None,
    };
    let claim = &config.customer_id_claim;
    let auth = match (&config.identity, &aws) {
        (IdentityConfig::Authorizer, _) => Authenticator::authorizer(claim),
        (
            IdentityConfig::AppToken {
                secret: SecretSource::Local(secret),
            },
            _,
        ) => Authenticator::app_tokens(claim, secret.as_bytes()),
        (
            IdentityConfig::AppToken {
                secret: SecretSource::SecretsManager { secret_id },
            },
            Some(aws),
        ) => {
            let client = aws_sdk_secretsmanager::Client::new(aws);
            let secret = auth::fetch_app_secret(&client, secret_id)
                .await
                .inspect_err(|error| tracing::error!(%error, "refusing to start"))?;
            Authenticator::app_tokens(claim, secret.as_bytes())
        }
        (IdentityConfig::AppToken { .. }, None) => unreachable_config()?,
    };
    let events = match (&config.event_bus_name, &aws) {
        (Some(bus), Some(aws)) => Some(JobQueuedPublisher::new(
            aws_sdk_eventbridge::Client::new(aws),
            bus,
        )),
        _ => None,
    };
    let app = Arc::new(App {
        store,
        auth,
        events,
        policy,
        economy: config.economy,
        job_max_attempts: config.job_max_attempts,
        deadline: config.deadline,
    });
    let metrics = mall_runtime::telemetry::emf_metrics("checkout")?;
    metrics_cloudwatch_embedded::lambda::service::run_http(
        metrics,
        service_fn(move |request: Request| {
            let app = Arc::clone(&app);
            async move { Ok::<_, std::convert::Infallible>(app.handle(request).await) }
        }),
    )
    .await
}

/// The AWS configuration is loaded whenever the secret comes from Secrets Manager; reaching
/// this would be a bug in `main`, reported as an init error rather than a panic.
fn unreachable_config() -> Result<Authenticator, lambda_http::Error> {
    Err("the AWS configuration was not loaded for Secrets Manager".into())
}
