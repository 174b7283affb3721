//! The HTTP contract of the checkout routes (SPEC §5.1): success bodies, the error table, and the
//! one conversion from any failure to a response.
//!
//! Amounts are JSON numbers with at most three decimals, written digit by digit from milli-points
//! (never through a float). Error bodies carry a code and a message meant for the client; no
//! internal error text ever reaches a response.

use lambda_http::http::{header, HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use mall_domain::checkout::{CartError, RequestError};
use mall_domain::MilliPoints;
use mall_store::{CheckoutError, CheckoutReceipt};
use mall_store::{JobProgress, PurchaseView, RewardsProgress};
use serde::ser::Error as _;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

/// An amount as the API writes it: `1.75`, `0.875`, `4000`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiAmount(pub MilliPoints);

impl Serialize for ApiAmount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        RawValue::from_string(self.0.to_compact_string())
            .map_err(S::Error::custom)?
            .serialize(serializer)
    }
}

/// Every way a request can fail, each with its status and code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("Authentication required: send a valid bearer token")]
    Unauthenticated,
    #[error("The cart is empty")]
    CartEmpty,
    #[error("Insufficient wallet balance")]
    InsufficientBalance {
        required: MilliPoints,
        available: MilliPoints,
    },
    #[error("This token is not a customer's")]
    Forbidden,
    #[error("Customer not found")]
    CustomerNotFound,
    #[error("Some products in the cart are missing or no longer sold")]
    /// The carts' product ids as the app stores them (hex strings).
    ProductUnavailable(Vec<String>),
    #[error("A request with this Idempotency-Key is still being processed; retry shortly")]
    IdempotencyInProgress,
    #[error("This Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    #[error("{0}")]
    InvalidCart(String),
    #[error("The service is temporarily unavailable; retry shortly")]
    Unavailable,
    #[error("No such purchase")]
    PurchaseNotFound,
    #[error("No such route")]
    RouteNotFound,
    #[error("Method not allowed")]
    MethodNotAllowed,
    #[error("Internal error")]
    Internal,
}

/// Seconds a client should wait before retrying a 409 in-progress or a 503.
const RETRY_AFTER_SECONDS: &str = "1";

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_)
            | ApiError::CartEmpty
            | ApiError::InsufficientBalance { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::CustomerNotFound | ApiError::PurchaseNotFound | ApiError::RouteNotFound => {
                StatusCode::NOT_FOUND
            }
            ApiError::ProductUnavailable(_) | ApiError::IdempotencyInProgress => {
                StatusCode::CONFLICT
            }
            ApiError::IdempotencyKeyReused | ApiError::InvalidCart(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) => "INVALID_REQUEST",
            ApiError::Unauthenticated => "UNAUTHENTICATED",
            ApiError::Forbidden => "FORBIDDEN",
            ApiError::CartEmpty => "CART_EMPTY",
            ApiError::InsufficientBalance { .. } => "INSUFFICIENT_BALANCE",
            ApiError::CustomerNotFound => "CUSTOMER_NOT_FOUND",
            ApiError::ProductUnavailable(_) => "PRODUCT_UNAVAILABLE",
            ApiError::IdempotencyInProgress => "IDEMPOTENCY_IN_PROGRESS",
            ApiError::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            ApiError::InvalidCart(_) => "INVALID_CART",
            ApiError::Unavailable => "UNAVAILABLE",
            ApiError::PurchaseNotFound | ApiError::RouteNotFound => "NOT_FOUND",
            ApiError::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ApiError::Internal => "INTERNAL",
        }
    }

    /// The message the phone shows (it reads the top-level `message`): the app's own wording
    /// where the app has one for this case, ours otherwise.
    pub fn app_message(&self) -> String {
        match self {
            ApiError::CartEmpty => "Cart is empty or not found".into(),
            ApiError::Unauthenticated => "Invalid token.".into(),
            ApiError::Internal => "Internal server error".into(),
            other => other.to_string(),
        }
    }

    pub fn into_response(self) -> Response<Body> {
        #[derive(Serialize)]
        struct ErrorBody<'a> {
            code: &'a str,
            message: String,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Envelope<'a> {
            success: bool,
            /// As the app's own errors carry it.
            message: String,
            error: ErrorBody<'a>,
            #[serde(skip_serializing_if = "Option::is_none")]
            required: Option<ApiAmount>,
            #[serde(skip_serializing_if = "Option::is_none")]
            available: Option<ApiAmount>,
            #[serde(skip_serializing_if = "Option::is_none")]
            product_ids: Option<Vec<String>>,
        }
        let (required, available) = match &self {
            ApiError::InsufficientBalance {
                required,
                available,
            } => (Some(ApiAmount(*required)), Some(ApiAmount(*available))),
            _ => (None, None),
        };
        let product_ids = match &self {
            ApiError::ProductUnavailable(ids) => Some(ids.clone()),
            _ => None,
        };
        let envelope = Envelope {
            success: false,
            message: self.app_message(),
            error: ErrorBody {
                code: self.code(),
                message: self.to_string(),
            },
            required,
            available,
            product_ids,
        };
        let mut response = json_response(self.status(), &envelope);
        if matches!(
            self,
            ApiError::Unavailable | ApiError::IdempotencyInProgress
        ) {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}

impl From<RequestError> for ApiError {
    fn from(err: RequestError) -> Self {
        ApiError::InvalidRequest(err.to_string())
    }
}

impl From<CheckoutError> for ApiError {
    fn from(err: CheckoutError) -> Self {
        match err {
            CheckoutError::CustomerNotFound => ApiError::CustomerNotFound,
            CheckoutError::Cart(CartError::Empty) => ApiError::CartEmpty,
            CheckoutError::Cart(CartError::Unavailable(ids)) => ApiError::ProductUnavailable(ids),
            CheckoutError::Cart(
                err @ (CartError::InvalidQuantity(_)
                | CartError::Overflow
                | CartError::Malformed(_)),
            ) => ApiError::InvalidCart(err.to_string()),
            CheckoutError::InsufficientBalance {
                required,
                available,
            } => ApiError::InsufficientBalance {
                required,
                available,
            },
            CheckoutError::IdempotencyKeyReused => ApiError::IdempotencyKeyReused,
            CheckoutError::IdempotencyInProgress => ApiError::IdempotencyInProgress,
            CheckoutError::Unavailable(detail) => {
                tracing::warn!(%detail, "checkout could not reach or commit to the database");
                ApiError::Unavailable
            }
            CheckoutError::Internal(detail) => {
                tracing::error!(%detail, "checkout failed internally");
                ApiError::Internal
            }
        }
    }
}

pub fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response<Body> {
    // Serializing our own response types cannot fail; fall back to a bare 500 if it ever did.
    let (status, text) = match serde_json::to_string(body) {
        Ok(text) => (status, text),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, String::new()),
    };
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The note every successful checkout carries.
const BACKGROUND_NOTE: &str =
    "Tree rewards and level upgrades are being processed in the background";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CheckoutBody {
    success: bool,
    message: &'static str,
    data: CheckoutData,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CheckoutData {
    transaction_id: String,
    /// The purchase's `TXN…` reference, as the app shows it.
    reference: String,
    job_id: String,
    cart_total: ApiAmount,
    points_deducted: ApiAmount,
    new_wallet_balance: ApiAmount,
    rewards: RewardsBody,
    note: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RewardsBody {
    total_reward_points: ApiAmount,
    app_share: ApiAmount,
    gifts_share: ApiAmount,
    tree_share: ApiAmount,
    /// D, the direct-referral share (0 under a fixed split).
    referral_share: ApiAmount,
    status: RewardsStatusBody,
}

/// `RewardsStatus` of `openapi.yaml`.
#[derive(Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
enum RewardsStatusBody {
    Processing,
    Completed,
    Failed,
}

impl From<RewardsProgress> for RewardsStatusBody {
    fn from(progress: RewardsProgress) -> Self {
        match progress {
            RewardsProgress::Processing => RewardsStatusBody::Processing,
            RewardsProgress::Completed => RewardsStatusBody::Completed,
            RewardsProgress::Failed => RewardsStatusBody::Failed,
        }
    }
}

/// `JobStatus` of `openapi.yaml`.
#[derive(Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
enum JobStatusBody {
    Pending,
    Processing,
    Completed,
    Failed,
}

impl From<JobProgress> for JobStatusBody {
    fn from(progress: JobProgress) -> Self {
        match progress {
            JobProgress::Pending => JobStatusBody::Pending,
            JobProgress::Processing => JobStatusBody::Processing,
            JobProgress::Completed => JobStatusBody::Completed,
            JobProgress::Failed => JobStatusBody::Failed,
        }
    }
}

/// `200` for a checkout; a replay says so in `Idempotent-Replayed: true`.
pub fn checkout_response(receipt: &CheckoutReceipt) -> Response<Body> {
    let body = CheckoutBody {
        success: true,
        message: "Checkout successful",
        data: CheckoutData {
            transaction_id: receipt.transaction_id.to_hex(),
            reference: receipt.reference.clone(),
            job_id: receipt.job_id.to_hex(),
            cart_total: ApiAmount(receipt.cart_total),
            points_deducted: ApiAmount(receipt.cart_total),
            new_wallet_balance: ApiAmount(receipt.new_wallet_balance),
            rewards: RewardsBody {
                total_reward_points: ApiAmount(receipt.reward_points),
                app_share: ApiAmount(receipt.split.app),
                gifts_share: ApiAmount(receipt.split.gifts),
                tree_share: ApiAmount(receipt.split.tree),
                referral_share: ApiAmount(receipt.split.referral),
                status: RewardsStatusBody::Processing,
            },
            note: BACKGROUND_NOTE,
        },
    };
    let mut response = json_response(StatusCode::OK, &body);
    if receipt.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PurchaseBody {
    success: bool,
    data: PurchaseData,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PurchaseData {
    transaction_id: String,
    created_at: String,
    cart_total: ApiAmount,
    items: Vec<PurchaseItem>,
    delivery_address: Option<String>,
    rewards: RewardsBody,
    job: Option<JobBody>,
    distribution: Option<DistributionBody>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PurchaseItem {
    product_id: String,
    name: String,
    quantity: i64,
    unit_price: ApiAmount,
    line_total: ApiAmount,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JobBody {
    id: String,
    status: JobStatusBody,
    attempts: i32,
    max_attempts: i32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DistributionBody {
    tree_distributed: ApiAmount,
    tree_unused: ApiAmount,
    gifts_final: ApiAmount,
    app_final: ApiAmount,
    direct_referral: ApiAmount,
    pool_gifts: ApiAmount,
    recipients: usize,
    promotions: usize,
}

/// `200` for `GET /api/cart/checkout/{transactionId}`: the buyer's view of one purchase.
pub fn purchase_response(view: &PurchaseView) -> Response<Body> {
    let body = PurchaseBody {
        success: true,
        data: PurchaseData {
            transaction_id: view.transaction_id.to_hex(),
            created_at: view.created_at.try_to_rfc3339_string().unwrap_or_default(),
            cart_total: ApiAmount(view.cart_total),
            items: view
                .lines
                .iter()
                .map(|line| PurchaseItem {
                    product_id: line.product_id.clone(),
                    name: line.name.clone(),
                    quantity: line.quantity,
                    unit_price: ApiAmount(line.unit_price),
                    line_total: ApiAmount(line.line_total),
                })
                .collect(),
            delivery_address: view.delivery_address.clone(),
            rewards: RewardsBody {
                total_reward_points: ApiAmount(view.reward_points),
                app_share: ApiAmount(view.split.app),
                gifts_share: ApiAmount(view.split.gifts),
                tree_share: ApiAmount(view.split.tree),
                referral_share: ApiAmount(view.split.referral),
                status: view.rewards.into(),
            },
            job: view.job.as_ref().map(|job| JobBody {
                id: job.id.to_hex(),
                status: job.progress.into(),
                attempts: job.attempts,
                max_attempts: job.max_attempts,
            }),
            distribution: view.distribution.as_ref().map(|d| DistributionBody {
                tree_distributed: ApiAmount(d.tree_distributed),
                tree_unused: ApiAmount(d.tree_unused),
                gifts_final: ApiAmount(d.gifts_final),
                app_final: ApiAmount(d.app_final),
                direct_referral: ApiAmount(d.direct_referral),
                pool_gifts: ApiAmount(d.pool_gifts),
                recipients: d.recipients,
                promotions: d.promotions,
            }),
        },
    };
    json_response(StatusCode::OK, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_json_numbers_with_at_most_three_decimals() {
        let json = serde_json::to_string(&[
            ApiAmount(MilliPoints::from_milli(1_750)),
            ApiAmount(MilliPoints::from_milli(875)),
            ApiAmount(MilliPoints::from_milli(4_000_000)),
            ApiAmount(MilliPoints::from_milli(i64::MAX)),
        ])
        .unwrap();
        assert_eq!(json, "[1.75,0.875,4000,9223372036854775.807]");
    }

    #[test]
    fn every_error_has_its_status_and_code() {
        let cases = [
            (ApiError::InvalidRequest("x".into()), 400, "INVALID_REQUEST"),
            (ApiError::CartEmpty, 400, "CART_EMPTY"),
            (ApiError::Unauthenticated, 401, "UNAUTHENTICATED"),
            (ApiError::Forbidden, 403, "FORBIDDEN"),
            (ApiError::CustomerNotFound, 404, "CUSTOMER_NOT_FOUND"),
            (
                ApiError::ProductUnavailable(vec![]),
                409,
                "PRODUCT_UNAVAILABLE",
            ),
            (
                ApiError::IdempotencyInProgress,
                409,
                "IDEMPOTENCY_IN_PROGRESS",
            ),
            (
                ApiError::IdempotencyKeyReused,
                422,
                "IDEMPOTENCY_KEY_REUSED",
            ),
            (ApiError::InvalidCart("x".into()), 422, "INVALID_CART"),
            (ApiError::Unavailable, 503, "UNAVAILABLE"),
        ];
        for (error, status, code) in cases {
            assert_eq!((error.status().as_u16(), error.code()), (status, code));
        }
    }

    #[test]
    fn internal_details_never_reach_the_body() {
        let err = ApiError::from(CheckoutError::Internal("E11000 secret index detail".into()));
        let response = err.into_response();
        assert_eq!(response.status(), 500);
        let body = std::str::from_utf8(response.body().as_ref())
            .unwrap()
            .to_owned();
        assert!(!body.contains("E11000"), "{body}");
    }

    #[test]
    fn errors_carry_the_apps_message_where_it_has_one() {
        let body = |error: ApiError| -> serde_json::Value {
            let response = error.into_response();
            serde_json::from_slice(response.body().as_ref()).unwrap()
        };
        let empty = body(ApiError::CartEmpty);
        assert_eq!(empty["message"], "Cart is empty or not found");
        assert_eq!(empty["error"]["code"], "CART_EMPTY");
        let low = body(ApiError::InsufficientBalance {
            required: MilliPoints::from_milli(1_500),
            available: MilliPoints::from_milli(500),
        });
        assert_eq!(low["message"], "Insufficient wallet balance");
        assert_eq!(
            (low["required"].as_f64(), low["available"].as_f64()),
            (Some(1.5), Some(0.5))
        );
        let ours = body(ApiError::IdempotencyKeyReused);
        assert_eq!(ours["message"], ours["error"]["message"]);
    }

    #[test]
    fn unavailable_says_when_to_retry() {
        let response = ApiError::Unavailable.into_response();
        assert_eq!(response.headers()["retry-after"], "1");
    }
}
