//! `checkoutjobs`: the reward job, one per purchase, in the shape the app's jobs dashboard
//! reads, and what pays it ([`JobPayloadDoc::paying_terms`]) whichever checkout wrote it.

use mall_domain::{
    JobTerms, MilliPoints, MoneyError, PolicyError, PolicyOverrides, PolicyPreset, RewardPolicy,
    RewardSplit, SettingsProblem, TodayTerms,
};
use mongodb::bson::{oid::ObjectId, DateTime, Document};
use serde::{Deserialize, Serialize};

use super::words::{JobErrorKind, JobStatus};

/// A reward job (SPEC §6.1), one per purchase, in the shape the app's jobs dashboard reads
/// (`status`, `attempts`, `payload.*` in points, `startedAt`, `completedAt`, `error.message`)
/// with our queue fields beside it. The original system's own jobs read as this type too: they
/// have no `runAfter` (due at once), no claim and no `payload.policy`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckoutJobDoc {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    /// The purchase; unique.
    pub checkout_transaction_id: ObjectId,
    /// The buyer.
    pub customer_id: ObjectId,
    pub status: JobStatus,
    /// Claims so far by any worker (the app's jobs dashboard reads it; the app's own worker adds
    /// two per claim).
    pub attempts: i32,
    /// Our own claims so far: what `maxAttempts` counts. Absent until our first claim of a job the
    /// app queued (its attempts are the app's worker's, not ours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<i32>,
    /// When our last claim was made (it also sets `startedAt`: a `startedAt` that differs was
    /// written by another worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_at: Option<DateTime>,
    #[serde(default = "default_max_attempts")]
    pub max_attempts: i32,
    /// When the job is due; absent on the original's jobs (due at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_after: Option<DateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until: Option<DateTime>,
    /// The current claim; every write after a claim is fenced by `{_id, claimToken}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_token: Option<ObjectId>,
    pub payload: JobPayloadDoc,
    /// The app's view of the last error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<LastErrorDoc>,
    /// The last 20 attempts' errors, oldest first.
    #[serde(default)]
    pub errors: Vec<JobErrorDoc>,
    #[serde(default)]
    pub redrives: Vec<RedriveDoc>,
    pub created_at: DateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime>,
    /// When the job last finished an attempt (the app's field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_at: Option<DateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<DateTime>,
    /// When a TTL index may delete the job (set on completion, for retention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime>,
}

/// The app's schema default for a job without `maxAttempts` (APP-DATA: "`maxAttempts`
/// (default 3)"): the app's fact, not our `JOB_MAX_ATTEMPTS`, though both are 3 today.
fn default_max_attempts() -> i32 {
    3
}

impl CheckoutJobDoc {
    /// Written by the app's own checkout, of either era (it carries no policy of ours).
    pub fn is_legacy(&self) -> bool {
        self.payload.policy.is_none()
    }
}

/// What checkout computed, in points, so the job pays exactly what the buyer was shown. Every
/// job we write satisfies the app's current job schema (its five payload numbers), so the app's
/// jobs dashboard — and, after a rollback, its worker — can read and pay it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobPayloadDoc {
    /// R.
    #[serde(rename = "totalRewardPoints", with = "crate::amount::points")]
    pub reward_points: MilliPoints,
    #[serde(with = "crate::amount::points")]
    pub app_points_share: MilliPoints,
    #[serde(with = "crate::amount::points")]
    pub gifts_points_share: MilliPoints,
    #[serde(with = "crate::amount::points")]
    pub tree_points_share: MilliPoints,
    /// D, the direct-referral share: required by the app's current job schema (0 under a fixed
    /// split); absent on the seed era's jobs.
    #[serde(
        default,
        with = "crate::amount::optional_points",
        skip_serializing_if = "Option::is_none"
    )]
    pub direct_referral_share: Option<MilliPoints>,
    /// The tree rules in force at checkout, every field set; absent on the app's own jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyOverrides>,
    /// `current`: a job of the app's current economy made by our checkout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub economy: Option<String>,
    /// The buyer had no earlier purchase (decided in the checkout's transaction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_purchase: Option<bool>,
    /// The admin's settings at checkout, in the app's `rewardsettings` shape: the gifts this job
    /// pays, whatever the admin changes later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<Document>,
}

/// `payload.economy` of a job of the app's current economy.
pub const ECONOMY_CURRENT: &str = "current";

/// Who wrote a job, and so what it pays by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobEra {
    /// Ours, with a fixed basis-point split (`payload.policy`).
    OursSplit,
    /// Ours, in the app's current economy (`payload.economy: current`).
    OursCurrent,
    /// The app's current checkout (`payload.directReferralShare`, no policy of ours): the current
    /// economy from its recorded payload, first purchase and gifts decided when it runs.
    AppCurrent,
    /// The seed era's app (neither): the `original` preset.
    SeedEra,
}

/// What a job of the app's own checkout is paid with that it did not record: decided when the
/// job runs, as the app decides it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunTimeFacts {
    /// The buyer has no other completed purchase.
    pub first_purchase: bool,
    /// The settings in force now.
    pub settings: mall_domain::AppSettings,
    /// The deployment allows level gifts.
    pub level_gifts_allowed: bool,
}

impl JobEra {
    /// Its jobs may pay gifts from the gifts pool (the current economy's).
    pub fn spends_gifts_pool(self) -> bool {
        matches!(self, JobEra::OursCurrent | JobEra::AppCurrent)
    }
}

impl JobPayloadDoc {
    pub fn era(&self) -> JobEra {
        match (
            &self.policy,
            self.economy.as_deref(),
            self.direct_referral_share,
        ) {
            (Some(_), Some(ECONOMY_CURRENT), _) => JobEra::OursCurrent,
            (Some(_), _, _) => JobEra::OursSplit,
            (None, _, Some(_)) => JobEra::AppCurrent,
            (None, _, None) => JobEra::SeedEra,
        }
    }

    /// What pays this job: the terms recorded at checkout, or for the app's own jobs its
    /// era's rules (the facts of `at_run_time` for the app's current jobs).
    pub fn paying_terms(&self, at_run_time: &RunTimeFacts) -> Result<JobTerms, TermsError> {
        match self.era() {
            JobEra::OursSplit => self.paying_policy().map(JobTerms::Split),
            JobEra::SeedEra => Ok(JobTerms::Recorded {
                rules: self.recorded_policy()?,
                split: RewardSplit::recorded(
                    self.reward_points,
                    self.tree_points_share,
                    self.gifts_points_share,
                    MilliPoints::ZERO,
                )
                .map_err(|_| self.split_not_whole(MilliPoints::ZERO))?,
            }),
            JobEra::OursCurrent => {
                let rules = self.recorded_policy()?;
                let settings = match &self.settings {
                    Some(copy) => crate::settings::raw_settings(copy)
                        .resolve()
                        .map_err(TermsError::Settings)?,
                    None => return Err(TermsError::NoSettings),
                };
                Ok(JobTerms::Today(TodayTerms {
                    rules,
                    split: self.recorded_split(true)?,
                    first_purchase: self.first_purchase.ok_or(TermsError::NoFirstPurchase)?,
                    signup_gift: settings.signup_gift,
                    level_gifts: settings.payable_level_gifts(),
                }))
            }
            JobEra::AppCurrent => Ok(JobTerms::Today(TodayTerms {
                rules: RewardPolicy::preset(PolicyPreset::Current),
                split: self.recorded_split(false)?,
                first_purchase: at_run_time.first_purchase,
                signup_gift: at_run_time.settings.signup_gift,
                level_gifts: at_run_time
                    .settings
                    .payable_level_gifts()
                    .filter(|_| at_run_time.level_gifts_allowed),
            })),
        }
    }

    /// The split a job of the current economy recorded. Ours add up to R exactly; the app's
    /// checkout multiplied doubles by shares that need not add up to 1, so for its jobs the
    /// app's part is what the other three leave of R (never below zero).
    fn recorded_split(&self, exact: bool) -> Result<RewardSplit, TermsError> {
        let referral = self.direct_referral_share.unwrap_or_default();
        let parts = [
            self.tree_points_share,
            self.gifts_points_share,
            referral,
            self.app_points_share,
        ];
        if parts.iter().any(|p| p.is_negative()) || self.reward_points.is_negative() {
            return Err(TermsError::NegativeAmount);
        }
        let rest = self
            .reward_points
            .checked_sub(self.tree_points_share)
            .and_then(|r| r.checked_sub(self.gifts_points_share))
            .and_then(|r| r.checked_sub(referral))?;
        if rest.is_negative() || (exact && rest != self.app_points_share) {
            return Err(self.split_not_whole(referral));
        }
        Ok(RewardSplit {
            app: rest,
            gifts: self.gifts_points_share,
            tree: self.tree_points_share,
            referral,
        })
    }

    fn split_not_whole(&self, referral: MilliPoints) -> TermsError {
        TermsError::SplitNotWhole {
            tree: self.tree_points_share,
            gifts: self.gifts_points_share,
            referral,
            app: self.app_points_share,
            reward: self.reward_points,
        }
    }

    fn recorded_policy(&self) -> Result<RewardPolicy, TermsError> {
        match &self.policy {
            Some(policy) => policy.resolve().map_err(TermsError::Policy),
            None => Ok(RewardPolicy::preset(PolicyPreset::Original)),
        }
    }

    /// The policy that pays a job of ours with a fixed split: the one recorded at checkout.
    pub fn paying_policy(&self) -> Result<RewardPolicy, TermsError> {
        if self.policy.is_none() {
            return Err(TermsError::NotOurs);
        }
        self.recorded_policy()
    }
}

/// Why a job's payload does not say what pays it: the job fails for good (the text is kept in
/// its errors, where the app's jobs dashboard shows it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TermsError {
    #[error("the job's settings cannot be read: {}", join(.0))]
    Settings(Vec<SettingsProblem>),
    #[error("the job records no settings")]
    NoSettings,
    #[error("the job does not record whether it was a first purchase")]
    NoFirstPurchase,
    #[error("the job's payload has a negative amount")]
    NegativeAmount,
    #[error(
        "the job's split (tree {tree} + gifts {gifts} + direct referral {referral} + app {app}) \
         does not add up to R = {reward}"
    )]
    SplitNotWhole {
        tree: MilliPoints,
        gifts: MilliPoints,
        referral: MilliPoints,
        app: MilliPoints,
        reward: MilliPoints,
    },
    #[error(transparent)]
    Money(#[from] MoneyError),
    #[error("the job's policy is invalid: {0}")]
    Policy(PolicyError),
    #[error("the job was queued by the app's checkout: no policy of ours")]
    NotOurs,
}

fn join(problems: &[SettingsProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The app's `error` field of a job: the last error's message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastErrorDoc {
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<DateTime>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobErrorDoc {
    pub attempt: i32,
    pub at: DateTime,
    pub kind: JobErrorKind,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RedriveDoc {
    pub at: DateTime,
    pub reason: String,
}
