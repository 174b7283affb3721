//! Who is calling: the customer id comes only from a verified token, never from the body.
//!
//! In the cloud, API Gateway's JWT authorizer has verified the token and passes its claims in the
//! request context. Locally (no authorizer context) and only when `LOCAL_JWT_SECRET` is set, the
//! function verifies an HS256 `Authorization: Bearer` token itself. Anything else is
//! unauthenticated, decided before any database access.

use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use lambda_http::http::header::AUTHORIZATION;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use mall_store::bson::oid::ObjectId;
use serde_json::{Map, Value};

/// Why a request has no verified identity (all are `401`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no verified identity on the request")]
    Missing,
    #[error("the bearer token is invalid or expired")]
    InvalidToken,
    #[error("the identity claim is not a customer id")]
    BadClaim,
}

pub struct Authenticator {
    claim: String,
    local: Option<(DecodingKey, Validation)>,
}

impl Authenticator {
    /// `claim` names the token claim holding the customer's ObjectId (`CUSTOMER_ID_CLAIM`);
    /// `local_secret` is `LOCAL_JWT_SECRET`, for local use only.
    pub fn new(claim: impl Into<String>, local_secret: Option<&str>) -> Self {
        let local = local_secret.map(|secret| {
            let mut validation = Validation::new(Algorithm::HS256);
            validation.leeway = 5;
            (DecodingKey::from_secret(secret.as_bytes()), validation)
        });
        Authenticator {
            claim: claim.into(),
            local,
        }
    }

    /// The verified customer id of a request.
    pub fn identify(&self, request: &Request) -> Result<ObjectId, AuthError> {
        if let Some(claims) = authorizer_claims(request) {
            let value = claims.get(&self.claim).ok_or(AuthError::BadClaim)?;
            return ObjectId::parse_str(value).map_err(|_| AuthError::BadClaim);
        }
        let (key, validation) = self.local.as_ref().ok_or(AuthError::Missing)?;
        let token = bearer_token(request).ok_or(AuthError::Missing)?;
        let claims = decode::<Map<String, Value>>(token, key, validation)
            .map_err(|_| AuthError::InvalidToken)?
            .claims;
        match claims.get(&self.claim) {
            Some(Value::String(id)) => ObjectId::parse_str(id).map_err(|_| AuthError::BadClaim),
            _ => Err(AuthError::BadClaim),
        }
    }
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
        let auth = Authenticator::new("sub", None);
        assert_eq!(
            auth.identify(&with_authorizer(&[("sub", &id.to_hex())])),
            Ok(id)
        );
        assert_eq!(
            auth.identify(&with_authorizer(&[("sub", "not-an-id")])),
            Err(AuthError::BadClaim)
        );
        let custom = Authenticator::new("custom:customerId", None);
        assert_eq!(
            custom.identify(&with_authorizer(&[("custom:customerId", &id.to_hex())])),
            Ok(id)
        );
    }

    #[test]
    fn local_tokens_need_the_secret_and_a_future_expiry() {
        let id = ObjectId::new();
        let auth = Authenticator::new("sub", Some(SECRET));
        let good = token(
            serde_json::json!({"sub": id.to_hex(), "exp": in_an_hour()}),
            SECRET,
        );
        assert_eq!(auth.identify(&with_bearer(&good)), Ok(id));

        let forged = token(
            serde_json::json!({"sub": id.to_hex(), "exp": in_an_hour()}),
            "guess",
        );
        assert_eq!(
            auth.identify(&with_bearer(&forged)),
            Err(AuthError::InvalidToken)
        );
        let expired = token(
            serde_json::json!({"sub": id.to_hex(), "exp": 1_000}),
            SECRET,
        );
        assert_eq!(
            auth.identify(&with_bearer(&expired)),
            Err(AuthError::InvalidToken)
        );
        let no_expiry = token(serde_json::json!({"sub": id.to_hex()}), SECRET);
        assert_eq!(
            auth.identify(&with_bearer(&no_expiry)),
            Err(AuthError::InvalidToken)
        );
        let numeric = token(serde_json::json!({"sub": 5, "exp": in_an_hour()}), SECRET);
        assert_eq!(
            auth.identify(&with_bearer(&numeric)),
            Err(AuthError::BadClaim)
        );
        assert_eq!(
            auth.identify(&with_bearer("not.a.jwt")),
            Err(AuthError::InvalidToken)
        );
    }

    #[test]
    fn without_an_authorizer_or_a_local_secret_nobody_is_known() {
        let id = ObjectId::new();
        let token = token(
            serde_json::json!({"sub": id.to_hex(), "exp": in_an_hour()}),
            SECRET,
        );
        let cloud = Authenticator::new("sub", None);
        assert_eq!(
            cloud.identify(&with_bearer(&token)),
            Err(AuthError::Missing)
        );
        let local = Authenticator::new("sub", Some(SECRET));
        let bare = lambda_http::http::Request::builder()
            .body(Body::Empty)
            .unwrap();
        assert_eq!(local.identify(&bare), Err(AuthError::Missing));
    }
}
