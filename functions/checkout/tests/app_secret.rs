//! The app's token secret, read from Secrets Manager (moto's server on loopback, started by
//! `infra/with-test-services.sh`) through the function's own AWS client, as `main` does once per
//! execution environment; then the app's tokens verify with it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use checkout::auth::{fetch_app_secret, Authenticator, SecretError, APP_CUSTOMER_CLAIM};
use mall_store::bson::oid::ObjectId;
use support::{aws_config_at, local_aws_endpoint};

async fn secrets_manager() -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&aws_config_at(&local_aws_endpoint()).await)
}

#[tokio::test]
async fn the_apps_secret_is_read_once_and_verifies_the_apps_tokens() {
    let client = secrets_manager().await;
    let name = format!("mall/app-jwt-{}", ObjectId::new().to_hex());
    let created = client
        .create_secret()
        .name(&name)
        .secret_string("the-node-apps-JWT_SECRET")
        .send()
        .await
        .unwrap();
    let arn = created.arn().unwrap();

    let secret = fetch_app_secret(&client, arn).await.unwrap();
    assert_eq!(secret, "the-node-apps-JWT_SECRET");

    let customer = ObjectId::new();
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"Customer_id": customer.to_hex(), "username": "amal",
                            "Type": "Customer", "exp": mall_testkit::auth::in_an_hour()}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    let request = lambda_http::http::Request::builder()
        .header("authorization", format!("Bearer {token}"))
        .body(lambda_http::Body::Empty)
        .unwrap();
    let auth = Authenticator::app_tokens(APP_CUSTOMER_CLAIM, secret.as_bytes());
    assert_eq!(auth.identify(&request), Ok(customer));

    // A secret that is not there is a start-up error naming it (the function refuses to start).
    let missing = format!("{arn}-gone");
    match fetch_app_secret(&client, &missing).await {
        Err(SecretError::Unreadable { secret_id, .. }) => assert_eq!(secret_id, missing),
        other => panic!("{other:?}"),
    }
}
