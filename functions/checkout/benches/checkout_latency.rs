//! Checkout latency: 200 sequential checkouts through the real handler against the local
//! MongoDB wire server (`make bench-checkout`), with the database commands of each counted.
//! A benchmark run, not a test: it prints figures and fails only if a checkout fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use mall_testkit::stats::percentile;
use support::*;

const WARM_UP: usize = 10;
const CHECKOUTS: usize = 200;

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let t = TestApp::new().await;
        let buyer = t.customer("1000000000").await;
        let product = t.product("12.5", "1.25", true).await;

        let mut latencies = Vec::with_capacity(CHECKOUTS);
        let mut commands = Vec::with_capacity(CHECKOUTS);
        for i in 0..WARM_UP + CHECKOUTS {
            t.fill_cart(buyer, &[(product, 2)]).await;
            let key = format!("bench-key-{i:06}");
            let request = checkout_request(buyer, r#"{"deliveryAddress": "1 Bench St"}"#, Some(&key));
            t.commands.clear();
            let started = Instant::now();
            let response = t.send(request).await;
            let elapsed = started.elapsed();
            assert_eq!(response.status(), 200, "checkout {i} failed: {:?}", json(&response));
            if i >= WARM_UP {
                latencies.push(elapsed);
                commands.push(t.commands.count());
            }
        }
        latencies.sort();
        let mean = latencies.iter().sum::<Duration>() / latencies.len() as u32;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!("checkout latency over {CHECKOUTS} sequential checkouts (in-process handler, local SecantusDB):");
        println!("  p50   {:8.2} ms", ms(percentile(&latencies, 50.0)));
        println!("  p95   {:8.2} ms", ms(percentile(&latencies, 95.0)));
        println!("  p99   {:8.2} ms", ms(percentile(&latencies, 99.0)));
        println!("  mean  {:8.2} ms", ms(mean));
        println!("  max   {:8.2} ms", ms(*latencies.last().unwrap()));
        println!(
            "  database commands per checkout: min {} max {}",
            commands.iter().min().unwrap(),
            commands.iter().max().unwrap()
        );
    });
}
