//! An instance that starts while the database is unreachable (a cold start during an outage):
//! it answers `503 UNAVAILABLE` with `Retry-After` while the database is down, and serves
//! normally as soon as the database answers again — never `500`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod support;

use std::time::Duration;

use mall_store::Store;
use mall_testkit::db::fresh_database_name;
use mall_testkit::seed;
use mall_testkit::server::PrivateServer;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_start_during_an_outage_answers_503_then_serves_once_the_database_is_back() {
    let mut server = PrivateServer::start();
    let database = fresh_database_name();
    let seeding = Store::with_options(
        mongodb::options::ClientOptions::parse(server.uri())
            .await
            .unwrap(),
        &database,
    )
    .unwrap();
    seeding.ensure_indexes().await.unwrap();
    let buyer = seed::customer(&seeding, "5000").await;
    let dates = seed::product(&seeding, "500", "50", true).await;
    seed::fill_cart(&seeding, buyer, &[(dates, 2)]).await;
    server.stop();

    // The instance starts now, with the database down: its client has never seen the server.
    let mut options = mongodb::options::ClientOptions::parse(server.uri())
        .await
        .unwrap();
    options.server_selection_timeout = Some(Duration::from_millis(500));
    let app = app_on(Store::with_options(options, &database).unwrap());
    let refused = app.handle(checkout_request(buyer, "{}", None)).await;
    assert_eq!(refused.status(), 503, "{}", json(&refused));
    assert_eq!(refused.headers()["retry-after"], "1");

    server.restart();
    // From the first request after the restart on, never a 500: a 503 while the client finds
    // the server again, then the checkout itself.
    let mut statuses = Vec::new();
    for _ in 0..40 {
        let response = app.handle(checkout_request(buyer, "{}", None)).await;
        statuses.push(response.status().as_u16());
        if response.status() == 200 {
            break;
        }
        assert_eq!(response.status(), 503, "{statuses:?}: {}", json(&response));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(statuses.last(), Some(&200), "{statuses:?}");
}
