//! The mall's pure reward rules: milli-point money, the reward policy, referral levels, the
//! promotion and distribution rules, and the simulator's scenario format.
//!
//! Nothing here does I/O or knows about MongoDB, Lambda or async: every function is a plain
//! computation over values, tested on its own. The store layer feeds it data and applies the
//! [`RewardPlan`] it returns.

pub mod batch;
pub mod chain;
pub mod checkout;
pub mod level;
pub mod money;
pub mod policy;
pub mod retry;
pub mod reward;
pub mod scenario;
pub mod settings;

pub use batch::{BatchPlanError, ForestView, ViewMember};
pub use chain::{ChainEnd, ChainError, ChainMember, ReferralChain};
pub use level::{promoted_level, Level, LevelCounts, LevelGifts};
pub use money::{MilliPoints, MoneyError, ParseAmountError, RoundAmountError};
pub use policy::{BasisPoints, PolicyError, PolicyOverrides, PolicyPreset, RewardPolicy};
pub use retry::{RetryDecision, RetryPolicy};
pub use reward::{
    is_first_purchase, plan_job, plan_rewards, DirectKind, DirectReward, GiftKind, JobTerms,
    Payout, PayoutKind, PoolGift, Promotion, RewardError, RewardPlan, RewardSplit, SkipReason,
    Skipped, TodayTerms,
};
pub use settings::{
    AppSettings, RawSettings, RawValue, SettingsProblem, SettingsRead, Share, ShareError,
};
