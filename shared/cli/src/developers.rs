//! The developers' commands: `mall simulate` (the pure reward rules on a scenario), `mall
//! token` (a bearer token in the app's own format) and `mall demo-seed` (the demo tree, products
//! and cart of `make dev`).

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::Context;

use crate::session::connect_from_env;

pub fn simulate(file: Option<PathBuf>, live_settings: bool) -> anyhow::Result<()> {
    let scenario = match file.filter(|path| path.as_os_str() != "-") {
        Some(path) => std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?,
        None => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read standard input")?;
            text
        }
    };
    let live = if live_settings {
        let (runtime, store) = connect_from_env()?;
        Some(runtime.block_on(store.operators().reward_settings_now())?)
    } else {
        None
    };
    let report = mall_domain::scenario::simulate_json(&scenario, live)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{report}").context("cannot write the report")?;
    Ok(())
}

/// Signs `claims` (the customer's id under its claim, `username`, `Type`) with `iat` and `exp`,
/// as the app's login does.
pub fn token(
    customer: &str,
    secret: &str,
    claims: &[(&str, &str)],
    ttl_seconds: u64,
) -> anyhow::Result<()> {
    let is_object_id = customer.len() == 24 && customer.bytes().all(|b| b.is_ascii_hexdigit());
    anyhow::ensure!(
        is_object_id,
        "--customer must be an ObjectId of 24 hex digits, got {customer:?}"
    );
    anyhow::ensure!(!secret.is_empty(), "the secret must not be empty");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs();
    let mut payload = serde_json::Map::new();
    for (name, value) in claims {
        payload.insert((*name).to_owned(), serde_json::Value::from(*value));
    }
    payload.insert("iat".into(), now.into());
    payload.insert("exp".into(), (now + ttl_seconds).into());
    let claims = serde_json::Value::Object(payload);
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .context("cannot sign the token")?;
    println!("{token}");
    Ok(())
}

/// One customer of the demo tree: (name, parent, level, active, verified, wallet).
type DemoCustomer = (
    &'static str,
    Option<&'static str>,
    &'static str,
    bool,
    bool,
    &'static str,
);

/// The demo referral tree: `amal` buys; `huda` has three directs (two at C), so the purchase
/// promotes her to D; `yusuf` is suspended, `noor` unverified; `layla` and `omar` share the J
/// bucket.
const DEMO_TREE: &[DemoCustomer] = &[
    ("layla", None, "J", true, true, "100"),
    ("omar", Some("layla"), "J", true, true, "100"),
    ("sara", Some("omar"), "C", true, true, "100"),
    ("yusuf", Some("sara"), "B", false, true, "100"),
    ("huda", Some("yusuf"), "B", true, true, "100"),
    ("karim", Some("huda"), "C", true, true, "100"),
    ("noor", Some("huda"), "C", true, false, "100"),
    ("amal", Some("huda"), "A", true, true, "5000"),
];
const DEMO_BUYER: &str = "amal";

pub fn demo_seed() -> anyhow::Result<()> {
    use mall_store::bson::{oid::ObjectId, DateTime};
    use mall_store::{CustomerDoc, DemoCartLine, ProductDoc};

    let (runtime, store) = connect_from_env()?;
    let buyer = runtime.block_on(async {
        store.ensure_indexes().await?;
        let existing = store.operators().customer_named(DEMO_BUYER).await?;
        let dates = match existing {
            Some(_) => store
                .operators()
                .product_named("Khalas dates, 1 kg")
                .await?
                .map(|p| p.id)
                .context("the demo product is missing; drop the database to reseed")?,
            None => {
                let now = DateTime::now();
                let mut ids = std::collections::HashMap::new();
                for (name, ..) in DEMO_TREE {
                    ids.insert(*name, ObjectId::new());
                }
                let customers = DEMO_TREE
                    .iter()
                    .map(|(name, parent, level, active, verified, wallet)| {
                        Ok(CustomerDoc {
                            id: ids[name],
                            name: Some((*name).to_owned()),
                            username: (*name).to_owned(),
                            email: format!("{name}@example.com"),
                            points: wallet.parse()?,
                            parent_customer: parent.map(|p| ids[p]),
                            level_letter: level.parse()?,
                            referral_status: if *active { "active" } else { "suspended" }.into(),
                            is_verified: *verified,
                            address: None,
                            created_at: now,
                            updated_at: now,
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                store.operators().insert_customers(&customers).await?;
                let products = [
                    ("Khalas dates, 1 kg", "تمر خلاص", "500", "50"),
                    ("Arabic coffee, 250 g", "قهوة عربية", "120", "12"),
                    ("Oud perfume, 50 ml", "عطر عود", "900", "90"),
                ]
                .into_iter()
                .map(|(name, arabic, price, reward)| {
                    Ok(ProductDoc {
                        id: ObjectId::new(),
                        name: name.into(),
                        name_arabic: arabic.into(),
                        price: price.parse()?,
                        reward_points: reward.parse()?,
                        is_active: true,
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
                let dates = products[0].id;
                store.operators().insert_products(&products).await?;
                dates
            }
        };
        let buyer = store
            .operators()
            .customer_named(DEMO_BUYER)
            .await?
            .context("the demo buyer is missing")?
            .id;
        // A cart of two boxes of dates (1000 points, 100 reward points) unless it holds items.
        store
            .operators()
            .fill_empty_cart(
                buyer,
                &[DemoCartLine {
                    product: dates,
                    product_name: "Khalas dates, 1 kg".into(),
                    price: 500,
                    quantity: 2,
                }],
            )
            .await?;
        anyhow::Ok(buyer)
    })?;
    println!("{}", buyer.to_hex());
    Ok(())
}
