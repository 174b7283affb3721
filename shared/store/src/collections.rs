//! Collection names, as in the original app (SPEC §4).

pub const CUSTOMERS: &str = "customers";
pub const PRODUCTS: &str = "products";
pub const CARTS: &str = "carts";
pub const TRANSACTIONS: &str = "transactions";
pub const CHECKOUT_JOBS: &str = "checkoutjobs";
pub const SETTINGS: &str = "settings";
/// The admin's reward settings: the app's, read and never written by us.
pub const REWARD_SETTINGS: &str = "rewardsettings";
/// Ours: the gifts pool's balance (`{_id: "gifts"}`), kept by the batches that move it.
pub const REWARD_POOLS: &str = "rewardpools";
/// One document ([`crate::rewards::BATCH_TURN_ID`]) that reward batches take turns on.
pub const REWARD_TURNS: &str = "rewardturns";
