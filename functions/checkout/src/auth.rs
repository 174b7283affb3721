//! Who is calling: the customer id comes only from a verified token, never from the body.
//!
//! Two ways to establish it, chosen at deployment (`IDENTITY_MODE`):
//! - **the app's own tokens** (`app-token`, the default): the mobile app logs in against the
//!   running Node app, which signs HS256 JWTs with its shared `JWT_SECRET`:
//!   `{"Customer_id": "<hex>", "username": …, "Type": "Customer"}`, one-hour `exp`, no `iss`/`aud`.
//!   This function verifies them itself: HS256 only, `exp` required, `nbf` checked when present,
//!   a small leeway; the customer from the configured claim (default `Customer_id`). A token
//!   signed with the same secret whose `Type` is not `Customer` (an admin's) is refused with
//!   `403`. The secret comes from Secrets Manager in the cloud, `LOCAL_JWT_SECRET` locally.
//! - **an API Gateway JWT authorizer** (`authorizer`, for a later move to Cognito or another OIDC
//!   issuer): the authorizer verified the token and its claims arrive in the request context.
//!
//! Anything else is unauthenticated, decided before any database access.

use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use lambda_http::http::header::AUTHORIZATION;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use mall_store::bson::oid::ObjectId;
use serde_json::{Map, Value};

/// The claim the app's own tokens carry the customer's ObjectId in.
pub use mall_runtime::env::APP_CUSTOMER_CLAIM;
/// The `Type` of a customer's token (an admin's says `Admin`).
pub const CUSTOMER_TYPE: &str = "Customer";
/// Clock skew tolerated on `exp` and `nbf`, seconds.
pub const LEEWAY_SECONDS: u64 = 30;

/// Why a request has no usable identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// `401`.
    #[error("no verified identity on the request")]
    Missing,
    /// `401`.
    #[error("the bearer token is invalid or expired")]
    InvalidToken,
    /// `401`.
    #[error("the identity claim is not a customer id")]
    BadClaim,
    /// `403`: a valid token, but not a customer's (e.g. an admin token).
    #[error("the token is not a customer's")]
    NotACustomer,
}

enum Mode {
    AppToken(Box<(DecodingKey, Validation)>),
    Authorizer,
}

pub struct Authenticator {
    claim: String,
    mode: Mode,
}

impl Authenticator {
    /// Verifies the app's HS256 tokens with its shared `secret`; the customer's id is in `claim`.
    pub fn app_tokens(claim: impl Into<String>, secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        // The app's tokens carry no audience; one that does is not for us to judge by it.
        validation.validate_aud = false;
        Authenticator {
            claim: claim.into(),
            mode: Mode::AppToken(Box::new((DecodingKey::from_secret(secret), validation))),
        }
    }

    /// Trusts the claims of API Gateway's JWT authorizer; the customer's id is in `claim`.
    pub fn authorizer(claim: impl Into<String>) -> Self {
        Authenticator {
            claim: claim.into(),
            mode: Mode::Authorizer,
        }
    }

    /// The verified customer id of a request.
    pub fn identify(&self, request: &Request) -> Result<ObjectId, AuthError> {
        match &self.mode {
            Mode::Authorizer => {
                let claims = authorizer_claims(request).ok_or(AuthError::Missing)?;
                let value = claims.get(&self.claim).ok_or(AuthError::BadClaim)?;
                ObjectId::parse_str(value).map_err(|_| AuthError::BadClaim)
            }
            Mode::AppToken(verifier) => {
                let (key, validation) = verifier.as_ref();
                let token = bearer_token(request).ok_or(AuthError::Missing)?;
                let claims = decode::<Map<String, Value>>(token, key, validation)
                    .map_err(|_| AuthError::InvalidToken)?
                    .claims;
                if claims.get("Type").and_then(Value::as_str) != Some(CUSTOMER_TYPE) {
                    return Err(AuthError::NotACustomer);
                }
                match claims.get(&self.claim) {
                    Some(Value::String(id)) => {
                        ObjectId::parse_str(id).map_err(|_| AuthError::BadClaim)
                    }
                    _ => Err(AuthError::BadClaim),
                }
            }
        }
    }
}

/// Why the app's token secret could not be read at start-up (the function then refuses to start).
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "Secrets Manager refused or failed to read the app's token secret {secret_id}: {reason}"
    )]
    Unreadable { secret_id: String, reason: String },
    #[error("the secret {0} holds no text (the app's JWT_SECRET is a string)")]
    NotText(String),
}

/// Reads the app's token secret from Secrets Manager: one call per execution environment, at
/// start-up; the secret never leaves this process (never logged, never in the environment).
pub async fn fetch_app_secret(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<String, SecretError> {
    let value = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| SecretError::Unreadable {
            secret_id: secret_id.to_owned(),
            reason: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
        })?;
    value
        .secret_string()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| SecretError::NotText(secret_id.to_owned()))
}

/// The claims API Gateway's JWT authorizer verified, when the request came through it.
fn authorizer_claims(request: &Request) -> Option<&std::collections::HashMap<String, String>> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => context
            .authorizer
            .as_ref()?
            .jwt
            .as_ref()
            .map(|jwt| &jwt.claims),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

fn bearer_token(request: &Request) -> Option<&str> {
    let value = request.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use lambda_http::aws_lambda_events::apigw::{
        ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
        ApiGatewayV2httpRequestContext,
    };
    use lambda_http::Body;

    const SECRET: &str = "local-dev-secret";

    fn token(claims: Value, secret: &str) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn in_an_hour() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600
    }

    fn with_bearer(token: &str) -> Request {
        lambda_http::http::Request::builder()
            .header("authorization", format!("Bearer {token}"))
            .body(Body::Empty)
            .unwrap()
    }

    fn with_authorizer(claims: &[(&str, &str)]) -> Request {
        let mut context = ApiGatewayV2httpRequestContext::default();
        let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
        jwt.claims = claims
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut authorizer = ApiGatewayRequestAuthorizer::default();
        authorizer.jwt = Some(jwt);
        context.authorizer = Some(authorizer);
        lambda_http::http::Request::builder()
            .body(Body::Empty)
            .unwrap()
            .with_request_context(RequestContext::ApiGatewayV2(context))
    }

    #[test]
    fn authorizer_claims_identify_the_customer() {
        let id = ObjectId::new();
        let auth = Authenticator::authorizer("sub");
        assert_eq!(
            auth.identify(&with_authorizer(&[("sub", &id.to_hex())])),
            Ok(id)
        );
        assert_eq!(
            auth.identify(&with_authorizer(&[("sub", "not-an-id")])),
            Err(AuthError::BadClaim)
        );
        let custom = Authenticator::authorizer("custom:customerId");
        assert_eq!(
            custom.identify(&with_authorizer(&[("custom:customerId", &id.to_hex())])),
            Ok(id)
        );
        // Without the authorizer's context, a bearer token proves nothing in this mode.
        let token = token(app_claims(id, in_an_hour()), SECRET);
        assert_eq!(auth.identify(&with_bearer(&token)), Err(AuthError::Missing));
    }

    fn app_claims(id: ObjectId, exp: u64) -> Value {
        serde_json::json!({"Customer_id": id.to_hex(), "username": "amal", "Type": "Customer",
                           "iat": exp - 3600, "exp": exp})
    }

    fn now() -> u64 {
        in_an_hour() - 3600
    }

    #[test]
    fn the_apps_own_tokens_identify_the_customer() {
        let id = ObjectId::new();
        let auth = Authenticator::app_tokens(APP_CUSTOMER_CLAIM, SECRET.as_bytes());
        let good = token(app_claims(id, in_an_hour()), SECRET);
        assert_eq!(auth.identify(&with_bearer(&good)), Ok(id));
        // Within the leeway, an expired token still passes; past it, not.
        let just_expired = token(app_claims(id, now() - 10), SECRET);
        assert_eq!(auth.identify(&with_bearer(&just_expired)), Ok(id));
        let expired = token(app_claims(id, now() - 120), SECRET);
        assert_eq!(
            auth.identify(&with_bearer(&expired)),
            Err(AuthError::InvalidToken)
        );
    }

    #[test]
    fn app_tokens_need_the_secret_hs256_an_expiry_and_a_valid_nbf() {
        let id = ObjectId::new();
        let auth = Authenticator::app_tokens(APP_CUSTOMER_CLAIM, SECRET.as_bytes());
        let forged = token(app_claims(id, in_an_hour()), "guess");
        let mut no_expiry = app_claims(id, in_an_hour());
        no_expiry.as_object_mut().unwrap().remove("exp");
        let mut not_yet = app_claims(id, in_an_hour());
        not_yet["nbf"] = serde_json::json!(now() + 600);
        let hs512 = encode(
            &Header::new(Algorithm::HS512),
            &app_claims(id, in_an_hour()),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        for (what, bad) in [
            ("forged", forged),
            ("no exp", token(no_expiry, SECRET)),
            ("nbf in the future", token(not_yet, SECRET)),
            ("HS512", hs512),
            ("garbage", "not.a.jwt".to_owned()),
        ] {
            assert_eq!(
                auth.identify(&with_bearer(&bad)),
                Err(AuthError::InvalidToken),
                "{what}"
            );
        }
        let mut past_nbf = app_claims(id, in_an_hour());
        past_nbf["nbf"] = serde_json::json!(now() - 60);
        assert_eq!(
            auth.identify(&with_bearer(&token(past_nbf, SECRET))),
            Ok(id)
        );
    }

    #[test]
    fn a_token_that_is_not_a_customers_is_forbidden() {
        let id = ObjectId::new();
        let auth = Authenticator::app_tokens(APP_CUSTOMER_CLAIM, SECRET.as_bytes());
        let admin = token(
            serde_json::json!({"AdminId": id.to_hex(), "Customer_id": id.to_hex(),
                               "Type": "Admin", "exp": in_an_hour()}),
            SECRET,
        );
        assert_eq!(
            auth.identify(&with_bearer(&admin)),
            Err(AuthError::NotACustomer)
        );
        let untyped = token(
            serde_json::json!({"Customer_id": id.to_hex(), "exp": in_an_hour()}),
            SECRET,
        );
        assert_eq!(
            auth.identify(&with_bearer(&untyped)),
            Err(AuthError::NotACustomer)
        );
        let numeric = token(
            serde_json::json!({"Customer_id": 5, "Type": "Customer", "exp": in_an_hour()}),
            SECRET,
        );
        assert_eq!(
            auth.identify(&with_bearer(&numeric)),
            Err(AuthError::BadClaim)
        );
        let bare = lambda_http::http::Request::builder()
            .body(Body::Empty)
            .unwrap();
        assert_eq!(auth.identify(&bare), Err(AuthError::Missing));
    }
}
