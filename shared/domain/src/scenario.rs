//! The reward simulator's public format (SPEC §9): a JSON scenario in, a JSON report out.
//!
//! The report is [`plan_rewards`] applied to the scenario, amounts rendered as strings with
//! exactly three decimals. Any invalid scenario (bad JSON, unknown or duplicate ids, bad letters,
//! a bad policy or amount, a cycle on the buyer's chain) is a [`ScenarioError`] with a one-line
//! message; the rules never see it.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::chain::{ChainError, ChainMember, ReferralChain};
use crate::level::{Level, LevelCounts};
use crate::money::{self, MilliPoints};
use crate::policy::{PolicyError, PolicyOverrides};
use crate::reward::{plan_rewards, PayoutKind, RewardError, RewardPlan};

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    pub policy: Option<PolicyOverrides>,
    pub buyer: String,
    #[serde(with = "money::decimal_string")]
    pub reward_points: MilliPoints,
    pub customers: Vec<ScenarioCustomer>,
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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SplitView {
    #[serde(with = "money::decimal_string")]
    pub app: MilliPoints,
    #[serde(with = "money::decimal_string")]
    pub gifts: MilliPoints,
    #[serde(with = "money::decimal_string")]
    pub tree: MilliPoints,
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

    /// Runs the rules on this scenario.
    pub fn plan(&self) -> Result<RewardPlan<String>, ScenarioError> {
        let policy = self
            .policy
            .clone()
            .unwrap_or_default()
            .resolve()
            .map_err(ScenarioError::Policy)?;

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
        Ok(plan_rewards(&policy, self.reward_points, &chain)?)
    }
}

impl From<RewardPlan<String>> for Report {
    fn from(plan: RewardPlan<String>) -> Self {
        Report {
            split: SplitView {
                app: plan.split.app,
                gifts: plan.split.gifts,
                tree: plan.split.tree,
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
        }
    }
}

/// The whole simulator: scenario JSON in, report JSON out (pretty-printed).
pub fn simulate_json(scenario: &str) -> Result<String, ScenarioError> {
    let report = Report::from(Scenario::from_json(scenario)?.plan()?);
    serde_json::to_string_pretty(&report).map_err(|e| ScenarioError::Json(e.to_string()))
}
