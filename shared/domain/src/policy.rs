//! The reward policy (SPEC §5.3): how a purchase's reward is split and how the tree pool is paid.
//!
//! A [`RewardPolicy`] can only exist validated: `app + gifts + tree = 10000`,
//! `9 × level + jShared <= 10000` (so the tree pool can never be overspent) and
//! `promotionDirects >= 1`. It is built from a preset plus optional field overrides, the form of
//! the `REWARD_POLICY` variable, the settings document and the simulator's `policy` object.

use serde::{Deserialize, Serialize};

/// A share in basis points (1/100 of a percent): an integer in `0..=10000`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct BasisPoints(u16);

impl BasisPoints {
    /// 100 %.
    pub const WHOLE: u16 = 10_000;

    pub fn new(value: u32) -> Option<Self> {
        u16::try_from(value)
            .ok()
            .filter(|v| *v <= Self::WHOLE)
            .map(BasisPoints)
    }

    pub const fn get(self) -> u16 {
        self.0
    }
}

/// Letters A..I each have one level bucket; J has the shared bucket.
const LEVEL_BUCKETS: u32 = 9;

/// Why a policy was refused. Each message names the field and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("{field} must be a whole number of basis points in 0..=10000, got {value}")]
    OutOfRange { field: &'static str, value: u64 },
    #[error("appBps + giftsBps + treeBps must equal 10000, got {sum}")]
    SplitNotWhole { sum: u32 },
    #[error("9 × levelBps + jSharedBps must be at most 10000, got {sum}")]
    TreeOverspent { sum: u32 },
    #[error("promotionDirects must be at least 1")]
    NoPromotionDirects,
    #[error("invalid reward policy JSON: {0}")]
    Json(String),
}

/// A named starting point for a policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PolicyPreset {
    /// The split documented by the seeds: app 50 %, gifts 15 %, tree 35 %, 5 % of the tree pool per
    /// level and for the J bucket.
    #[default]
    Default,
    /// What the original Node.js system ran: app 35 %, gifts 15 %, tree 50 %, 10 % per level.
    Original,
    /// The app's current economy (its 2026-01 version): the split comes from the admin's
    /// `rewardsettings` at each checkout; the tree is paid 10 % per letter and 10 % for the J
    /// bucket. The basis-point split of this preset (the app's defaults with the direct-referral
    /// share counted in the app's 35 %) only serves where no settings apply.
    Current,
}

/// A validated reward policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RewardPolicy {
    app_bps: BasisPoints,
    gifts_bps: BasisPoints,
    tree_bps: BasisPoints,
    level_bps: BasisPoints,
    j_shared_bps: BasisPoints,
    promotion_directs: u32,
}

/// A policy as written by people: a JSON object with a preset and any fields to override, all
/// optional. Unknown fields are refused so that a misspelt field cannot silently fall back to a
/// default, and so is anything but an object (serde would otherwise read `[]` as "all defaults").
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(
    rename_all = "camelCase",
    deny_unknown_fields,
    try_from = "serde_json::Map<String, serde_json::Value>"
)]
pub struct PolicyOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preset: Option<PolicyPreset>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_bps: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gifts_bps: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tree_bps: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level_bps: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub j_shared_bps: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promotion_directs: Option<u64>,
}

impl TryFrom<serde_json::Map<String, serde_json::Value>> for PolicyOverrides {
    type Error = serde_json::Error;

    fn try_from(object: serde_json::Map<String, serde_json::Value>) -> Result<Self, Self::Error> {
        /// The same fields, read without the object-only guard.
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct Fields {
            #[serde(default)]
            preset: Option<PolicyPreset>,
            #[serde(default)]
            app_bps: Option<u64>,
            #[serde(default)]
            gifts_bps: Option<u64>,
            #[serde(default)]
            tree_bps: Option<u64>,
            #[serde(default)]
            level_bps: Option<u64>,
            #[serde(default)]
            j_shared_bps: Option<u64>,
            #[serde(default)]
            promotion_directs: Option<u64>,
        }
        let f: Fields = serde_json::from_value(serde_json::Value::Object(object))?;
        Ok(PolicyOverrides {
            preset: f.preset,
            app_bps: f.app_bps,
            gifts_bps: f.gifts_bps,
            tree_bps: f.tree_bps,
            level_bps: f.level_bps,
            j_shared_bps: f.j_shared_bps,
            promotion_directs: f.promotion_directs,
        })
    }
}

impl Default for RewardPolicy {
    fn default() -> Self {
        Self::preset(PolicyPreset::Default)
    }
}

impl RewardPolicy {
    /// Builds and validates a policy from raw basis-point values.
    pub fn new(
        app_bps: u32,
        gifts_bps: u32,
        tree_bps: u32,
        level_bps: u32,
        j_shared_bps: u32,
        promotion_directs: u32,
    ) -> Result<Self, PolicyError> {
        PolicyOverrides {
            preset: None,
            app_bps: Some(app_bps.into()),
            gifts_bps: Some(gifts_bps.into()),
            tree_bps: Some(tree_bps.into()),
            level_bps: Some(level_bps.into()),
            j_shared_bps: Some(j_shared_bps.into()),
            promotion_directs: Some(promotion_directs.into()),
        }
        .resolve()
    }

    /// One of the named presets (always valid).
    pub fn preset(preset: PolicyPreset) -> Self {
        let (app, gifts, tree, level, j_shared) = match preset {
            PolicyPreset::Default => (5000, 1500, 3500, 500, 500),
            PolicyPreset::Original | PolicyPreset::Current => (3500, 1500, 5000, 1000, 1000),
        };
        RewardPolicy {
            app_bps: BasisPoints(app),
            gifts_bps: BasisPoints(gifts),
            tree_bps: BasisPoints(tree),
            level_bps: BasisPoints(level),
            j_shared_bps: BasisPoints(j_shared),
            promotion_directs: 2,
        }
    }

    /// Parses the `REWARD_POLICY` form ([`PolicyOverrides::from_json`]) and resolves it.
    pub fn from_json(text: &str) -> Result<Self, PolicyError> {
        PolicyOverrides::from_json(text)?.resolve()
    }

    pub const fn app_bps(&self) -> BasisPoints {
        self.app_bps
    }
    pub const fn gifts_bps(&self) -> BasisPoints {
        self.gifts_bps
    }
    pub const fn tree_bps(&self) -> BasisPoints {
        self.tree_bps
    }
    pub const fn level_bps(&self) -> BasisPoints {
        self.level_bps
    }
    pub const fn j_shared_bps(&self) -> BasisPoints {
        self.j_shared_bps
    }
    pub const fn promotion_directs(&self) -> u32 {
        self.promotion_directs
    }

    /// The fields of this policy as overrides (every field set), e.g. to store it beside a job.
    pub fn to_overrides(&self) -> PolicyOverrides {
        PolicyOverrides {
            preset: None,
            app_bps: Some(self.app_bps.get().into()),
            gifts_bps: Some(self.gifts_bps.get().into()),
            tree_bps: Some(self.tree_bps.get().into()),
            level_bps: Some(self.level_bps.get().into()),
            j_shared_bps: Some(self.j_shared_bps.get().into()),
            promotion_directs: Some(self.promotion_directs.into()),
        }
    }
}

impl PolicyOverrides {
    /// Applies the overrides to their preset (the default preset when none is named) and
    /// validates the result.
    /// Parses the `REWARD_POLICY` form: a JSON object of overrides (not yet resolved).
    pub fn from_json(text: &str) -> Result<Self, PolicyError> {
        serde_json::from_str(text).map_err(|e| PolicyError::Json(e.to_string()))
    }

    pub fn resolve(&self) -> Result<RewardPolicy, PolicyError> {
        self.apply_to(&RewardPolicy::default())
    }

    /// Applies the overrides on top of `base` (or of the named preset, when one is named) and
    /// validates the result: how a settings document refines the configured policy.
    pub fn apply_to(&self, base: &RewardPolicy) -> Result<RewardPolicy, PolicyError> {
        let base = self.preset.map(RewardPolicy::preset).unwrap_or(*base);
        let bps = |field: &'static str, value: Option<u64>, default: BasisPoints| match value {
            None => Ok(default),
            Some(v) => u32::try_from(v)
                .ok()
                .and_then(BasisPoints::new)
                .ok_or(PolicyError::OutOfRange { field, value: v }),
        };
        let policy = RewardPolicy {
            app_bps: bps("appBps", self.app_bps, base.app_bps)?,
            gifts_bps: bps("giftsBps", self.gifts_bps, base.gifts_bps)?,
            tree_bps: bps("treeBps", self.tree_bps, base.tree_bps)?,
            level_bps: bps("levelBps", self.level_bps, base.level_bps)?,
            j_shared_bps: bps("jSharedBps", self.j_shared_bps, base.j_shared_bps)?,
            promotion_directs: match self.promotion_directs {
                None => base.promotion_directs,
                Some(0) => return Err(PolicyError::NoPromotionDirects),
                Some(v) => u32::try_from(v).unwrap_or(u32::MAX),
            },
        };

        let split: u32 = [policy.app_bps, policy.gifts_bps, policy.tree_bps]
            .iter()
            .map(|b| u32::from(b.get()))
            .sum();
        if split != u32::from(BasisPoints::WHOLE) {
            return Err(PolicyError::SplitNotWhole { sum: split });
        }
        let tree = LEVEL_BUCKETS * u32::from(policy.level_bps.get())
            + u32::from(policy.j_shared_bps.get());
        if tree > u32::from(BasisPoints::WHOLE) {
            return Err(PolicyError::TreeOverspent { sum: tree });
        }
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_is_the_seeds_split() {
        let p = RewardPolicy::default();
        assert_eq!(
            (
                p.app_bps().get(),
                p.gifts_bps().get(),
                p.tree_bps().get(),
                p.level_bps().get(),
                p.j_shared_bps().get(),
                p.promotion_directs()
            ),
            (5000, 1500, 3500, 500, 500, 2)
        );
    }

    #[test]
    fn original_preset_is_the_node_systems_split() {
        let p = RewardPolicy::from_json(r#"{"preset": "original"}"#).unwrap();
        assert_eq!(
            p,
            RewardPolicy::new(3500, 1500, 5000, 1000, 1000, 2).unwrap()
        );
    }

    #[test]
    fn overrides_apply_on_top_of_the_preset() {
        let p = RewardPolicy::from_json(r#"{"promotionDirects": 3, "levelBps": 400}"#).unwrap();
        assert_eq!(p.promotion_directs(), 3);
        assert_eq!(p.level_bps().get(), 400);
        assert_eq!(p.tree_bps().get(), 3500);
        assert_eq!(
            RewardPolicy::from_json("{}").unwrap(),
            RewardPolicy::default()
        );
    }

    #[test]
    fn refuses_a_split_that_is_not_whole() {
        assert_eq!(
            RewardPolicy::from_json(r#"{"appBps": 5001}"#),
            Err(PolicyError::SplitNotWhole { sum: 10_001 })
        );
    }

    #[test]
    fn refuses_tree_buckets_that_overspend_the_pool() {
        assert_eq!(
            RewardPolicy::new(5000, 1500, 3500, 1000, 1001, 2),
            Err(PolicyError::TreeOverspent { sum: 10_001 })
        );
        assert!(RewardPolicy::new(5000, 1500, 3500, 1000, 1000, 2).is_ok());
    }

    #[test]
    fn refuses_out_of_range_and_zero_directs() {
        assert_eq!(
            RewardPolicy::from_json(r#"{"giftsBps": 10001}"#),
            Err(PolicyError::OutOfRange {
                field: "giftsBps",
                value: 10_001
            })
        );
        assert_eq!(
            RewardPolicy::from_json(r#"{"promotionDirects": 0}"#),
            Err(PolicyError::NoPromotionDirects)
        );
    }

    #[test]
    fn refuses_unknown_fields_negative_and_fractional_values() {
        for bad in [
            r#"{"appBPS": 5000}"#,
            r#"{"appBps": -1}"#,
            r#"{"appBps": 50.5}"#,
            r#"{"appBps": "5000"}"#,
            r#"{"preset": "generous"}"#,
            "[]",
            "",
        ] {
            assert!(
                matches!(RewardPolicy::from_json(bad), Err(PolicyError::Json(_))),
                "{bad} should be refused as JSON"
            );
        }
    }

    #[test]
    fn overrides_refine_a_base_policy_unless_they_name_a_preset() {
        let base = RewardPolicy::preset(PolicyPreset::Original);
        let more_directs: PolicyOverrides =
            serde_json::from_str(r#"{"promotionDirects": 3}"#).unwrap();
        let refined = more_directs.apply_to(&base).unwrap();
        assert_eq!(refined.tree_bps().get(), 5000);
        assert_eq!(refined.promotion_directs(), 3);
        let reset: PolicyOverrides = serde_json::from_str(r#"{"preset": "default"}"#).unwrap();
        assert_eq!(reset.apply_to(&base), Ok(RewardPolicy::default()));
    }

    #[test]
    fn overrides_round_trip() {
        let p = RewardPolicy::preset(PolicyPreset::Original);
        assert_eq!(p.to_overrides().resolve(), Ok(p));
    }
}
