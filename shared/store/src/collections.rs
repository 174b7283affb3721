//! Collection names, as in the original app (SPEC §4), and the fixed ids of our shared documents.

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
/// One document ([`BATCH_TURN_ID`]) that reward batches take turns on.
pub const REWARD_TURNS: &str = "rewardturns";

// Documents of ours with fixed ids that more than one module names (the drainer's lease,
// `drainer::DRAINER_ID`, is the drainer's alone).

/// The gifts pool's document in [`REWARD_POOLS`]: its balance in points.
pub const GIFTS_POOL_ID: &str = "gifts";
/// The document of [`REWARD_TURNS`] every reward batch writes first: batches take turns.
pub const BATCH_TURN_ID: &str = "rewards";
