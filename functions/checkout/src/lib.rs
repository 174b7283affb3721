//! The `checkout` Lambda: `POST /api/cart/checkout` (the synchronous phase of a purchase, SPEC §5)
//! and `GET /api/cart/checkout/{transactionId}` (the buyer's view of one purchase).
//!
//! The handler authenticates first (no verified identity: `401` and no database access), turns
//! the request into validated values, makes one store call, and maps the outcome to a response.
//! It never panics and never returns internal error text.

pub mod api;
pub mod auth;
pub mod config;
pub mod events;
pub mod policy;

use std::time::Instant;

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};
use mall_domain::checkout::{CheckoutRequest, IdempotencyKey, RequestError};
use mall_runtime::telemetry;
use mall_store::bson::oid::ObjectId;
use mall_store::{CheckoutCommand, Store};

use crate::api::ApiError;
use crate::auth::Authenticator;
use crate::events::JobQueuedPublisher;
use crate::policy::PolicySource;

/// Everything a request needs, built once per execution environment in `main`.
pub struct App {
    pub store: Store,
    pub auth: Authenticator,
    pub events: Option<JobQueuedPublisher>,
    /// The reward policy in force (see [`PolicySource`]).
    pub policy: PolicySource,
    /// The economy the checkout splits by (`REWARD_POLICY`'s `current` preset: the admin's
    /// settings, read at every checkout).
    pub economy: mall_store::Economy,
    pub job_max_attempts: i32,
    /// Every request is answered within it (`CHECKOUT_DEADLINE_MS`): the API's throttle counts
    /// on it to keep the instances in flight under the function's reserved concurrency.
    pub deadline: std::time::Duration,
}

/// The checkout route's path segments.
const CHECKOUT_SEGMENTS: [&str; 3] = ["api", "cart", "checkout"];

enum Route {
    Checkout,
    Purchase(String),
    NotFound,
}

/// Matches whole path segments at the path's end, whatever mounts the routes before them (an
/// API Gateway stage, or the emulator's `/lambda-url/checkout`): `…/api/cart/checkout` and
/// `…/api/cart/checkout/{transactionId}`, one trailing slash allowed.
fn route(path: &str) -> Route {
    let path = path.strip_suffix('/').unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    match segments.as_slice() {
        [.., a, b, c] if [*a, *b, *c] == CHECKOUT_SEGMENTS => Route::Checkout,
        [.., a, b, c, id] if [*a, *b, *c] == CHECKOUT_SEGMENTS && !id.is_empty() => {
            Route::Purchase((*id).to_owned())
        }
        _ => Route::NotFound,
    }
}

impl App {
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.deadline;
        let outcome = match (route(request.uri().path()), request.method()) {
            (Route::Checkout, &Method::POST) => self.checkout(&request, deadline).await,
            (Route::Purchase(id), &Method::GET) => self.purchase(&request, &id, deadline).await,
            (Route::NotFound, _) => Err(ApiError::RouteNotFound),
            _ => Err(ApiError::MethodNotAllowed),
        };
        let (response, code) = match outcome {
            Ok(response) => (response, "OK"),
            Err(error) => {
                let code = error.code();
                (error.into_response(), code)
            }
        };
        let latency = started.elapsed();
        metrics::counter!(telemetry::CHECKOUTS_BY_OUTCOME, "Outcome" => code).increment(1);
        metrics::histogram!(telemetry::CHECKOUT_LATENCY_MS).record(latency.as_secs_f64() * 1000.0);
        tracing::info!(
            method = %request.method(),
            status = response.status().as_u16(),
            outcome = code,
            latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            "request handled"
        );
        response
    }

    async fn checkout(
        &self,
        request: &Request,
        deadline: tokio::time::Instant,
    ) -> Result<Response<Body>, ApiError> {
        let customer_id = self.identify(request)?;
        let idempotency_key = idempotency_key(request)?;
        let body = CheckoutRequest::parse(request.body().as_ref())?;
        let charge = async {
            let policy = self.policy.get(&self.store).await?;
            let command = CheckoutCommand {
                customer_id,
                request: &body,
                idempotency_key: idempotency_key.as_ref(),
                policy: &policy,
                economy: self.economy,
                job_max_attempts: self.job_max_attempts,
            };
            Ok::<_, ApiError>(self.store.checkouts().checkout(&command).await?)
        };
        let receipt = within(deadline, charge).await?;
        tracing::info!(
            customer_id = %customer_id,
            transaction_id = %receipt.transaction_id,
            job_id = %receipt.job_id,
            replayed = receipt.replayed,
            "checkout committed"
        );
        if receipt.settings_unusable {
            metrics::counter!(telemetry::INVALID_REWARD_SETTINGS).increment(1);
        }
        if let (false, Some(events)) = (receipt.replayed, &self.events) {
            if let Err(reason) = events.publish(&receipt, deadline).await {
                metrics::counter!(telemetry::JOB_QUEUED_EVENT_FAILURES).increment(1);
                tracing::warn!(job_id = %receipt.job_id, %reason, "CheckoutJobQueued not published");
            }
        }
        Ok(api::checkout_response(&receipt))
    }

    async fn purchase(
        &self,
        request: &Request,
        id: &str,
        deadline: tokio::time::Instant,
    ) -> Result<Response<Body>, ApiError> {
        let customer_id = self.identify(request)?;
        let transaction_id = ObjectId::parse_str(id).map_err(|_| ApiError::PurchaseNotFound)?;
        let read = async {
            self.store
                .checkouts()
                .purchase_view(customer_id, transaction_id)
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, "purchase view failed");
                    ApiError::Unavailable
                })
        };
        let view = within(deadline, read)
            .await?
            .ok_or(ApiError::PurchaseNotFound)?;
        Ok(api::purchase_response(&view))
    }

    fn identify(&self, request: &Request) -> Result<ObjectId, ApiError> {
        self.auth.identify(request).map_err(|reason| {
            tracing::info!(%reason, "request refused before any database access");
            match reason {
                crate::auth::AuthError::NotACustomer => ApiError::Forbidden,
                _ => ApiError::Unauthenticated,
            }
        })
    }
}

/// The database's part of a request, given up at the request's deadline (`503` with
/// `Retry-After`): the API's throttle counts on every request leaving the function within it. A
/// transaction given up before its commit is aborted, all or nothing, so the buyer's retry (with
/// the same `Idempotency-Key`) is safe; one that committed is found by that retry.
async fn within<T>(
    deadline: tokio::time::Instant,
    work: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    tokio::time::timeout_at(deadline, work)
        .await
        .unwrap_or_else(|_| {
            tracing::warn!("the request's deadline passed");
            Err(ApiError::Unavailable)
        })
}

/// The optional `Idempotency-Key` header, validated; more than one is an error.
fn idempotency_key(request: &Request) -> Result<Option<IdempotencyKey>, ApiError> {
    let mut values = request.headers().get_all("idempotency-key").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(RequestError::BadIdempotencyKey.into());
    }
    let text = value
        .to_str()
        .map_err(|_| ApiError::from(RequestError::BadIdempotencyKey))?;
    Ok(Some(IdempotencyKey::parse(text)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_under_any_prefix() {
        assert!(matches!(route("/api/cart/checkout"), Route::Checkout));
        assert!(matches!(route("/api/cart/checkout/"), Route::Checkout));
        assert!(matches!(route("/prod/api/cart/checkout"), Route::Checkout));
        assert!(matches!(
            route("/lambda-url/checkout/api/cart/checkout"),
            Route::Checkout
        ));
        assert!(matches!(route("/api/cart/checkout/abc"), Route::Purchase(id) if id == "abc"));
        assert!(matches!(route("/api/cart/checkout/a/b"), Route::NotFound));
        assert!(matches!(route("/api/cart"), Route::NotFound));
        assert!(matches!(route("/api/cart/checkoutx"), Route::NotFound));
        assert!(matches!(route("/xapi/cart/checkout"), Route::NotFound));
        assert!(matches!(route("/api/cart/checkout//"), Route::NotFound));
        assert!(matches!(route("/api/cart//checkout"), Route::NotFound));
    }
}
