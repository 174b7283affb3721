//! The reward policy at start-up: an invalid or unreadable settings document stops the function
//! from starting (so no instance ever splits by another policy than the one configured); an
//! unreachable database defers the read to the first request that finds it, with `503` until
//! then.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use checkout::policy::PolicySource;
use mall_domain::{PolicyPreset, RewardPolicy};
use mall_store::bson::{doc, Document};
use mall_store::Store;
use serde_json::json;
use support::*;

async fn with_settings(settings: Document) -> TestApp {
    let t = TestApp::new().await;
    t.store
        .database()
        .collection::<Document>("settings")
        .insert_one(settings)
        .await
        .unwrap();
    t
}

#[tokio::test]
async fn an_invalid_or_unreadable_settings_document_refuses_to_start() {
    for settings in [
        doc! {"_id": "rewardPolicy", "treeBPS": 4000},
        doc! {"_id": "rewardPolicy", "appBps": "half"},
        doc! {"_id": "rewardPolicy", "appBps": 9000},
    ] {
        let t = with_settings(settings.clone()).await;
        let started = PolicySource::at_start(&t.store, RewardPolicy::default()).await;
        assert!(started.is_err(), "{settings}");
    }
}

#[tokio::test]
async fn a_valid_settings_document_is_the_policy_every_checkout_splits_by() {
    let t = with_settings(doc! {"_id": "rewardPolicy", "preset": "original"}).await;
    let source = PolicySource::at_start(&t.store, RewardPolicy::default())
        .await
        .unwrap();
    assert_eq!(
        source.get(&t.store).await.ok(),
        Some(RewardPolicy::preset(PolicyPreset::Original))
    );
}

#[tokio::test]
async fn an_unreachable_database_at_start_defers_the_policy_and_answers_503() {
    let mut options =
        mongodb::options::ClientOptions::parse("mongodb://127.0.0.1:1/?directConnection=true")
            .await
            .unwrap();
    options.server_selection_timeout = Some(std::time::Duration::from_millis(300));
    let store = Store::with_options(options, "nowhere").unwrap();
    let source = PolicySource::at_start(&store, RewardPolicy::default())
        .await
        .expect("an outage at start-up is not a reason to refuse to start");
    let mut app = app_on(store);
    app.policy = source;
    let response = app
        .handle(checkout_request(
            mall_store::bson::oid::ObjectId::new(),
            "{}",
            None,
        ))
        .await;
    assert_eq!(response.status(), 503);
    assert_eq!(json(&response)["error"]["code"], json!("UNAVAILABLE"));
}
