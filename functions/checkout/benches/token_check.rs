//! What verifying the app's own token costs a checkout (identity mode `app-token`): the
//! function checks the HS256 signature, `exp`, `nbf` and `Type` itself on every request, with a
//! secret read once per execution environment. `cargo bench -p checkout --bench token_check`
//! (`make bench-token`) prints the time per verification; no database, no network.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use checkout::auth::{Authenticator, APP_CUSTOMER_CLAIM};
use mall_store::bson::oid::ObjectId;

const ROUNDS: u32 = 200_000;

fn main() {
    let secret = b"a-production-length-jwt-secret-of-the-node-app-0123456789";
    let customer = ObjectId::new();
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"Customer_id": customer.to_hex(), "username": "user0965",
                            "Type": "Customer", "iat": exp - 3600, "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap();
    let request = lambda_http::http::Request::builder()
        .header("authorization", format!("Bearer {token}"))
        .body(lambda_http::Body::Empty)
        .unwrap();
    let auth = Authenticator::app_tokens(APP_CUSTOMER_CLAIM, secret);

    // Warm up, then measure.
    for _ in 0..10_000 {
        assert_eq!(auth.identify(&request), Ok(customer));
    }
    let started = Instant::now();
    for _ in 0..ROUNDS {
        assert_eq!(auth.identify(&request), Ok(customer));
    }
    let per = started.elapsed() / ROUNDS;
    println!(
        "app token verification (HS256, exp, nbf, Type, customer id): {:.2} µs per request over {ROUNDS} requests",
        per.as_secs_f64() * 1e6
    );
    println!("{{\"token_check_us\": {:.3}}}", per.as_secs_f64() * 1e6);
}
