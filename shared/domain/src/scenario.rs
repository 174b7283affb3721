//! The reward simulator's public format (SPEC §9): a JSON scenario in, a JSON report out.
//!
//! The report is [`plan_rewards`] applied to the scenario, amounts rendered as strings with
//! exactly three decimals. Any invalid scenario (bad JSON, unknown or duplicate ids, bad letters,
//! a bad policy or amount, a cycle on the buyer's chain) is a [`ScenarioError`] with a one-line
//! message; the rules never see it.
//!
//! A scenario with `"economy": "current"` runs the app's current economy with the same pure code
//! the worker pays by ([`plan_job`] on [`TodayTerms`]): the admin's settings (`settings`, in the
//! app's `rewardsettings` shape, read field by field as [`RawSettings::read`] reads the stored
//! document; or the live document, or the app's defaults), whether the purchase is the buyer's
//! first (`firstPurchase`, default true) and the gifts pool before it (`giftsPool`, default 0).
//! Its report adds D, the gifts, the pool after, and every settings field it could not use: an
//! operator sees what a change of the settings would pay before it is saved.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::chain::{ChainError, ChainMember, ReferralChain};
use crate::level::{Level, LevelCounts};
use crate::money::{self, MilliPoints};
use crate::policy::{PolicyError, PolicyOverrides};
use crate::policy::{PolicyPreset, RewardPolicy};
use crate::reward::{
    plan_job, plan_rewards, DirectKind, GiftKind, JobTerms, PayoutKind, PoolGift, RewardError,
    RewardPlan, TodayTerms,
};
use crate::settings::{AppSettings, RawSettings, RawValue, SettingsProblem, SettingsRead};

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    pub policy: Option<PolicyOverrides>,
    pub buyer: String,
    #[serde(with = "money::decimal_string")]
    pub reward_points: MilliPoints,
    pub customers: Vec<ScenarioCustomer>,
    /// `current`: the app's current economy (the fields below); absent: the fixed split.
    #[serde(default)]
    pub economy: Option<Economy>,
    /// The admin's settings in the app's `rewardsettings` shape (current economy).
    #[serde(default)]
    pub settings: Option<serde_json::Map<String, serde_json::Value>>,
    /// The buyer has no earlier completed purchase (current economy; default true).
    #[serde(default)]
    pub first_purchase: Option<bool>,
    /// The gifts pool before this purchase (current economy; default 0).
    #[serde(default, with = "money::optional_decimal_string")]
    pub gifts_pool: Option<MilliPoints>,
}

/// The economies the simulator runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Economy {
    Current,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioCustomer {
    pub id: String,
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub level: Level,
    pub active: bool,
    pub verified: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioError {
    #[error("invalid scenario: {0}")]
    Json(String),
    #[error("invalid policy: {0}")]
    Policy(PolicyError),
    #[error("customer id {0:?} appears more than once")]
    DuplicateCustomer(String),
    #[error(transparent)]
    Chain(#[from] ChainError<String>),
    #[error(transparent)]
    Reward(#[from] RewardError),
    #[error("{0} is only read with \"economy\": \"current\"")]
    NotCurrent(&'static str),
}

/// The simulator's output document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub split: SplitView,
    pub promotions: Vec<PromotionView>,
    pub payouts: Vec<PayoutView>,
    pub skipped: Vec<SkippedView>,
    #[serde(with = "money::decimal_string")]
    pub tree_distributed: MilliPoints,
    #[serde(with = "money::decimal_string")]
    pub tree_unused: MilliPoints,
    #[serde(with = "money::decimal_string")]
    pub gifts_final: MilliPoints,
    #[serde(with = "money::decimal_string")]
    pub app_final: MilliPoints,
    /// The current economy's part (absent under a fixed split).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub today: Option<TodayView>,
}

/// What the app's current economy adds to a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TodayView {
    /// D paid to a wallet: to the parent (`referral`) or back to the buyer (`cashback`).
    pub direct: Option<DirectView>,
    /// Gifts paid from the gifts pool.
    pub gifts: Vec<GiftView>,
    /// Gifts due that the pool does not cover: not paid.
    pub gifts_uncovered: Vec<GiftView>,
    #[serde(with = "money::decimal_string")]
    pub gifts_pool_after: MilliPoints,
    /// The settings the plan used (the shares as applied, the gifts on or off).
    pub settings: SettingsView,
    /// Fields of the settings that could not be used, and what applies instead.
    pub settings_problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirectView {
    pub id: String,
    pub kind: &'static str,
    #[serde(with = "money::decimal_string")]
    pub amount: MilliPoints,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GiftView {
    pub id: String,
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    #[serde(with = "money::decimal_string")]
    pub amount: MilliPoints,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsView {
    pub tree_share: String,
    pub gifts_share: String,
    pub first_payment_referral: String,
    /// Points, or none when off.
    pub signup_gift: Option<String>,
    /// Letter → points, none when off.
    pub level_gifts: Option<std::collections::BTreeMap<Level, String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SplitView {
    #[serde(with = "money::decimal_string")]
    pub app: MilliPoints,
    #[serde(with = "money::decimal_string")]
    pub gifts: MilliPoints,
    #[serde(with = "money::decimal_string")]
    pub tree: MilliPoints,
    /// D, the direct-referral share (current economy only).
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "money::optional_decimal_string"
    )]
    pub referral: Option<MilliPoints>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PromotionView {
    pub id: String,
    pub from: Level,
    pub to: Level,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PayoutView {
    pub id: String,
    pub level: Level,
    pub kind: &'static str,
    #[serde(with = "money::decimal_string")]
    pub amount: MilliPoints,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_with: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedView {
    pub id: String,
    pub reason: &'static str,
}

impl Scenario {
    pub fn from_json(text: &str) -> Result<Self, ScenarioError> {
        serde_json::from_str(text).map_err(|e| ScenarioError::Json(e.to_string()))
    }

    /// Runs the rules on this scenario (a fixed split; see [`Scenario::report`] for every
    /// economy).
    pub fn plan(&self) -> Result<RewardPlan<String>, ScenarioError> {
        let policy = self.policy(PolicyPreset::Default)?;
        Ok(plan_rewards(&policy, self.reward_points, &self.chain()?)?)
    }

    /// The scenario's report. `live`: the settings stored now, for a current-economy scenario
    /// that carries none (else the app's defaults).
    pub fn report(&self, live: Option<SettingsRead>) -> Result<Report, ScenarioError> {
        let Some(Economy::Current) = self.economy else {
            for (field, given) in [
                ("settings", self.settings.is_some()),
                ("firstPurchase", self.first_purchase.is_some()),
                ("giftsPool", self.gifts_pool.is_some()),
            ] {
                if given {
                    return Err(ScenarioError::NotCurrent(field));
                }
            }
            return Ok(Report::from(self.plan()?));
        };
        let read = match &self.settings {
            Some(document) => RawSettings::from_json(document).read(),
            None => live.unwrap_or(SettingsRead {
                settings: AppSettings::app_defaults(),
                problems: vec![],
            }),
        };
        let settings = &read.settings;
        let terms = TodayTerms {
            rules: self.policy(PolicyPreset::Current)?,
            split: settings.split(self.reward_points),
            first_purchase: self.first_purchase.unwrap_or(true),
            signup_gift: settings.signup_gift,
            level_gifts: settings.payable_level_gifts(),
        };
        let pool = self.gifts_pool.unwrap_or_default();
        let plan = plan_job(
            &JobTerms::Today(terms),
            self.reward_points,
            &self.chain()?,
            pool,
        )?;
        let view = TodayView {
            direct: plan.direct.as_ref().map(|d| DirectView {
                id: d.id.clone(),
                kind: match d.kind {
                    DirectKind::Referral => "referral",
                    DirectKind::Cashback => "cashback",
                },
                amount: d.amount,
            }),
            gifts: plan.gifts.iter().map(GiftView::of).collect(),
            gifts_uncovered: plan.gifts_uncovered.iter().map(GiftView::of).collect(),
            gifts_pool_after: plan.pool_after(pool).map_err(RewardError::from)?,
            settings: SettingsView::of(settings),
            settings_problems: read
                .problems
                .iter()
                .map(SettingsProblem::to_string)
                .collect(),
        };
        let referral = plan.split.referral;
        let mut report = Report::from(plan);
        report.split.referral = Some(referral);
        report.today = Some(view);
        Ok(report)
    }

    fn policy(&self, preset: PolicyPreset) -> Result<RewardPolicy, ScenarioError> {
        self.policy
            .clone()
            .unwrap_or_default()
            .apply_to(&RewardPolicy::preset(preset))
            .map_err(ScenarioError::Policy)
    }

    /// The buyer's chain in the scenario's forest.
    fn chain(&self) -> Result<ReferralChain<String>, ScenarioError> {
        let mut by_id: HashMap<&str, &ScenarioCustomer> = HashMap::new();
        let mut directs: HashMap<&str, LevelCounts> = HashMap::new();
        for customer in &self.customers {
            if by_id.insert(&customer.id, customer).is_some() {
                return Err(ScenarioError::DuplicateCustomer(customer.id.clone()));
            }
            if let Some(parent) = &customer.parent {
                directs.entry(parent).or_default().add(customer.level, 1);
            }
        }

        let chain = ReferralChain::walk(&self.buyer, |id| {
            by_id.get(id.as_str()).map(|c| ChainMember {
                id: c.id.clone(),
                parent: c.parent.clone(),
                level: c.level,
                active: c.active,
                verified: c.verified,
                directs: directs.get(id.as_str()).copied().unwrap_or_default(),
            })
        })?;
        Ok(chain)
    }
}

impl GiftView {
    fn of(gift: &PoolGift<String>) -> Self {
        let (kind, level) = match gift.kind {
            GiftKind::Signup => ("signup", None),
            GiftKind::Level(level) => ("level", Some(level)),
        };
        GiftView {
            id: gift.id.clone(),
            kind,
            level,
            amount: gift.amount,
        }
    }
}

impl SettingsView {
    fn of(settings: &AppSettings) -> Self {
        SettingsView {
            tree_share: settings.tree_share.to_string(),
            gifts_share: settings.gifts_share.to_string(),
            first_payment_referral: settings.referral_share.to_string(),
            signup_gift: settings.signup_gift.map(|a| a.to_string()),
            level_gifts: settings.payable_level_gifts().map(|gifts| {
                gifts
                    .iter()
                    .map(|(level, amount)| (level, amount.to_string()))
                    .collect()
            }),
        }
    }
}

impl RawSettings {
    /// A `rewardsettings` document written as JSON (the app's shape): numbers at their shortest
    /// decimal form, `null` kept apart from a missing field.
    pub fn from_json(document: &serde_json::Map<String, serde_json::Value>) -> RawSettings {
        RawSettings::from_fields(|name| document.get(name).map_or(RawValue::Missing, raw_json))
    }
}

fn raw_json(value: &serde_json::Value) -> RawValue {
    use serde_json::Value;
    match value {
        Value::Null => RawValue::Null,
        Value::Bool(b) => RawValue::Bool(*b),
        // serde_json prints a double at its shortest round-trip form, as JavaScript does.
        Value::Number(n) => RawValue::Number(n.to_string()),
        Value::String(_) => RawValue::Other("string"),
        Value::Array(_) => RawValue::Other("list"),
        Value::Object(fields) => RawValue::Document(
            fields
                .iter()
                .map(|(key, value)| (key.clone(), raw_json(value)))
                .collect(),
        ),
    }
}

impl From<RewardPlan<String>> for Report {
    fn from(plan: RewardPlan<String>) -> Self {
        Report {
            split: SplitView {
                app: plan.split.app,
                gifts: plan.split.gifts,
                tree: plan.split.tree,
                referral: None,
            },
            promotions: plan
                .promotions
                .into_iter()
                .map(|p| PromotionView {
                    id: p.id,
                    from: p.from,
                    to: p.to,
                })
                .collect(),
            payouts: plan
                .payouts
                .into_iter()
                .map(|p| {
                    let (kind, shared_with) = match p.kind {
                        PayoutKind::Level => ("level", None),
                        PayoutKind::Shared { members } => ("shared", Some(members)),
                    };
                    PayoutView {
                        id: p.id,
                        level: p.level,
                        kind,
                        amount: p.amount,
                        shared_with,
                    }
                })
                .collect(),
            skipped: plan
                .skipped
                .into_iter()
                .map(|s| SkippedView {
                    id: s.id,
                    reason: s.reason.as_str(),
                })
                .collect(),
            tree_distributed: plan.tree_distributed,
            tree_unused: plan.tree_unused,
            gifts_final: plan.gifts_final,
            app_final: plan.app_final,
            today: None,
        }
    }
}

/// The whole simulator: scenario JSON in, report JSON out (pretty-printed). `live`: the stored
/// settings, for a current-economy scenario that carries none.
pub fn simulate_json(scenario: &str, live: Option<SettingsRead>) -> Result<String, ScenarioError> {
    let report = Scenario::from_json(scenario)?.report(live)?;
    serde_json::to_string_pretty(&report).map_err(|e| ScenarioError::Json(e.to_string()))
}
