//! Local bearer tokens in the app's own format, as `mall token` mints them for a function run
//! with `LOCAL_JWT_SECRET`.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use mall_store::bson::oid::ObjectId;
use serde_json::{json, Value};

/// The HS256 secret the tests run the functions with (`LOCAL_JWT_SECRET`).
pub const LOCAL_JWT_SECRET: &str = "test-local-jwt-secret-not-for-production";

/// Seconds since the epoch, an hour from now.
pub fn in_an_hour() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600
}

/// A token with these claims, signed with [`LOCAL_JWT_SECRET`].
pub fn token_with(claims: Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(LOCAL_JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

/// A token for `customer` in the app's own format (`Customer_id`, `username`, `Type:
/// Customer`, issued now, valid for an hour), as the mobile app sends it.
pub fn local_token(customer: ObjectId) -> String {
    token_with(json!({
        "Customer_id": customer.to_hex(),
        "username": "customer",
        "Type": "Customer",
        "iat": in_an_hour() - 3600,
        "exp": in_an_hour(),
    }))
}
