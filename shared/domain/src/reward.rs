//! The reward plan of one purchase (SPEC §5.3 and §6.3): split, promotions, distribution.
//!
//! [`plan_rewards`] is a pure function of the policy, the purchase's reward `R` and the buyer's
//! referral chain. The plan it returns is everything the worker writes, in order; it conserves
//! the reward by construction (`appFinal + giftsFinal + Σ payouts = R`, see
//! [`RewardPlan::conserves`]) and never pays the buyer, an inactive or unverified ancestor, or
//! one letter A–I twice.

use serde::{Deserialize, Serialize};

use crate::chain::{ChainEnd, ReferralChain};
use crate::level::{promoted_level, Level};
use crate::money::{MilliPoints, MoneyError};
use crate::policy::RewardPolicy;

/// The top-level split of `R` made at checkout: `tree` and `gifts` are floored shares and `app`
/// takes what flooring left, so the three always add up to `R`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RewardSplit {
    pub app: MilliPoints,
    pub gifts: MilliPoints,
    pub tree: MilliPoints,
}

impl RewardSplit {
    pub fn of(reward: MilliPoints, policy: &RewardPolicy) -> Result<Self, RewardError> {
        if reward.is_negative() {
            return Err(RewardError::NegativeReward(reward));
        }
        let tree = reward.share(policy.tree_bps());
        let gifts = reward.share(policy.gifts_bps());
        let app = reward.checked_sub(tree)?.checked_sub(gifts)?;
        Ok(RewardSplit { app, gifts, tree })
    }

    pub fn total(&self) -> Result<MilliPoints, MoneyError> {
        MilliPoints::checked_sum([self.app, self.gifts, self.tree])
    }
}

/// A level raised by the promotion pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Promotion<Id> {
    pub id: Id,
    pub from: Level,
    pub to: Level,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayoutKind {
    /// One level bucket for a letter A–I (`tree_reward`).
    Level,
    /// An equal part of the J bucket among `members` J ancestors (`tree_reward_shared`).
    Shared { members: u32 },
}

/// One credit to an ancestor's wallet. Never zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payout<Id> {
    pub id: Id,
    pub level: Level,
    pub kind: PayoutKind,
    pub amount: MilliPoints,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// `referralStatus` is not `"active"` (checked first).
    Inactive,
    /// `isVerified` is not true.
    Unverified,
    /// The ancestor's letter was already paid nearer the buyer.
    DuplicateLevel,
}

impl SkipReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            SkipReason::Inactive => "inactive",
            SkipReason::Unverified => "unverified",
            SkipReason::DuplicateLevel => "duplicate_level",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped<Id> {
    pub id: Id,
    pub reason: SkipReason,
}

/// Everything one reward job does, decided before anything is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RewardPlan<Id> {
    /// `R`, the purchase's reward points.
    pub reward: MilliPoints,
    pub split: RewardSplit,
    /// In evaluation order: the buyer first, then ancestors bottom-up.
    pub promotions: Vec<Promotion<Id>>,
    /// In walk order, the J group's entries last (in walk order).
    pub payouts: Vec<Payout<Id>>,
    /// In walk order.
    pub skipped: Vec<Skipped<Id>>,
    /// Σ payouts.
    pub tree_distributed: MilliPoints,
    /// `tree − tree_distributed`: unpaid level buckets, the J bucket's remainder (or all of it when
    /// no J ancestor is paid), and whatever the buckets leave of the pool.
    pub tree_unused: MilliPoints,
    /// The part of `tree_unused` left by dividing the J bucket among its members.
    pub j_remainder: MilliPoints,
    /// `gifts + tree_unused`: the one `gifts_reward` entry.
    pub gifts_final: MilliPoints,
    /// The one `app_reward` entry.
    pub app_final: MilliPoints,
    /// How the walk ended (a missing parent is worth a log line).
    pub chain_end: ChainEnd<Id>,
}

impl<Id> RewardPlan<Id> {
    /// `appFinal + giftsFinal + Σ payouts == R`, to the milli-point.
    pub fn conserves(&self) -> bool {
        let payouts = MilliPoints::checked_sum(self.payouts.iter().map(|p| p.amount));
        let total = payouts
            .and_then(|paid| MilliPoints::checked_sum([self.app_final, self.gifts_final, paid]));
        total == Ok(self.reward) && payouts == Ok(self.tree_distributed)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewardError {
    #[error("reward points must not be negative, got {0}")]
    NegativeReward(MilliPoints),
    #[error(transparent)]
    Money(#[from] MoneyError),
    #[error("the directs of chain member #{position} do not include its promoted referral")]
    InconsistentDirects { position: usize },
    #[error("the J group has more members than can be counted")]
    TooManyJMembers,
}

/// Decides the promotions and payouts of one purchase with reward `reward` made by the chain's
/// buyer, under `policy`.
pub fn plan_rewards<Id: Clone>(
    policy: &RewardPolicy,
    reward: MilliPoints,
    chain: &ReferralChain<Id>,
) -> Result<RewardPlan<Id>, RewardError> {
    let split = RewardSplit::of(reward, policy)?;
    let (levels, promotions) = promote(policy, chain)?;

    let level_bucket = split.tree.share(policy.level_bps());
    let j_bucket = split.tree.share(policy.j_shared_bps());
    let mut paid_letters = [false; Level::ALL.len()];
    let mut payouts = Vec::new();
    let mut skipped = Vec::new();
    let mut j_group = Vec::new();

    // levels[0] is the buyer's, who earns nothing from its own purchase.
    for (ancestor, &level) in chain.ancestors().iter().zip(&levels[1..]) {
        let skip = |reason| Skipped {
            id: ancestor.id.clone(),
            reason,
        };
        if !ancestor.active {
            skipped.push(skip(SkipReason::Inactive));
        } else if !ancestor.verified {
            skipped.push(skip(SkipReason::Unverified));
        } else if level == Level::J {
            j_group.push(ancestor.id.clone());
        } else if paid_letters[level.index()] {
            skipped.push(skip(SkipReason::DuplicateLevel));
        } else {
            paid_letters[level.index()] = true;
            if !level_bucket.is_zero() {
                payouts.push(Payout {
                    id: ancestor.id.clone(),
                    level,
                    kind: PayoutKind::Level,
                    amount: level_bucket,
                });
            }
        }
    }

    let mut j_remainder = MilliPoints::ZERO;
    if !j_group.is_empty() {
        let members = u32::try_from(j_group.len()).map_err(|_| RewardError::TooManyJMembers)?;
        let (each, remainder) = j_bucket
            .split_evenly(members)
            .ok_or(RewardError::TooManyJMembers)?;
        j_remainder = remainder;
        if each.is_zero() {
            j_remainder = j_bucket;
        } else {
            payouts.extend(j_group.into_iter().map(|id| Payout {
                id,
                level: Level::J,
                kind: PayoutKind::Shared { members },
                amount: each,
            }));
        }
    }

    let tree_distributed = MilliPoints::checked_sum(payouts.iter().map(|p| p.amount))?;
    let tree_unused = split.tree.checked_sub(tree_distributed)?;
    let gifts_final = split.gifts.checked_add(tree_unused)?;
    Ok(RewardPlan {
        reward,
        split,
        promotions,
        payouts,
        skipped,
        tree_distributed,
        tree_unused,
        j_remainder,
        gifts_final,
        app_final: split.app,
        chain_end: chain.end().clone(),
    })
}

/// The promotion pass: the buyer first, then each ancestor bottom-up, each seeing the promotion
/// of the referral below it. Returns every chain member's level afterwards, and the promotions.
fn promote<Id: Clone>(
    policy: &RewardPolicy,
    chain: &ReferralChain<Id>,
) -> Result<(Vec<Level>, Vec<Promotion<Id>>), RewardError> {
    let mut levels = Vec::with_capacity(chain.members().len());
    let mut promotions = Vec::new();
    let mut promoted_child: Option<(Level, Level)> = None;
    for (position, member) in chain.members().iter().enumerate() {
        let mut directs = member.directs;
        if let Some((from, to)) = promoted_child {
            if !directs.move_one(from, to) {
                return Err(RewardError::InconsistentDirects { position });
            }
        }
        let level = promoted_level(member.level, &directs, policy.promotion_directs());
        promoted_child = (level != member.level).then_some((member.level, level));
        if level != member.level {
            promotions.push(Promotion {
                id: member.id.clone(),
                from: member.level,
                to: level,
            });
        }
        levels.push(level);
    }
    Ok((levels, promotions))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::ChainMember;
    use crate::level::LevelCounts;

    fn member(id: u32, parent: Option<u32>, level: Level) -> ChainMember<u32> {
        ChainMember {
            id,
            parent,
            level,
            active: true,
            verified: true,
            directs: LevelCounts::default(),
        }
    }

    /// A straight line: member i's parent is i+1, and each has its child as its only direct.
    fn line(levels: &[Level]) -> ReferralChain<u32> {
        let n = u32::try_from(levels.len()).unwrap();
        let members: Vec<_> = levels
            .iter()
            .enumerate()
            .map(|(i, &level)| {
                let i = u32::try_from(i).unwrap();
                let mut m = member(i, (i + 1 < n).then_some(i + 1), level);
                if i > 0 {
                    m.directs = LevelCounts::from_levels([levels[i as usize - 1]]);
                }
                m
            })
            .collect();
        ReferralChain::walk(&0, |id| members.get(*id as usize).cloned()).unwrap()
    }

    fn points(text: &str) -> MilliPoints {
        text.parse().unwrap()
    }

    #[test]
    fn split_of_the_seed_example() {
        let split = RewardSplit::of(points("100"), &RewardPolicy::default()).unwrap();
        assert_eq!(
            (split.app, split.gifts, split.tree),
            (points("50"), points("15"), points("35"))
        );
    }

    #[test]
    fn split_gives_what_flooring_leaves_to_the_app() {
        let split = RewardSplit::of(MilliPoints::from_milli(7), &RewardPolicy::default()).unwrap();
        assert_eq!(split.tree.as_milli(), 2); // floor(7 × 0.35)
        assert_eq!(split.gifts.as_milli(), 1); // floor(7 × 0.15)
        assert_eq!(split.app.as_milli(), 4);
        assert_eq!(split.total(), Ok(MilliPoints::from_milli(7)));
    }

    #[test]
    fn negative_reward_is_refused() {
        let chain = line(&[Level::A]);
        assert_eq!(
            plan_rewards(
                &RewardPolicy::default(),
                MilliPoints::from_milli(-1),
                &chain
            ),
            Err(RewardError::NegativeReward(MilliPoints::from_milli(-1)))
        );
    }

    /// The seeds' worked example: parent at B and grandparent at C each get 1.75 of a 35-point
    /// pool, two J ancestors share 1.75, and unpaid levels go to gifts.
    #[test]
    fn seed_worked_example() {
        let chain = line(&[Level::A, Level::B, Level::C, Level::J, Level::J]);
        let plan = plan_rewards(&RewardPolicy::default(), points("100"), &chain).unwrap();
        assert!(plan.promotions.is_empty());
        let paid: Vec<_> = plan
            .payouts
            .iter()
            .map(|p| (p.id, p.level, p.kind, p.amount.to_string()))
            .collect();
        let shared = PayoutKind::Shared { members: 2 };
        assert_eq!(
            paid,
            [
                (1, Level::B, PayoutKind::Level, "1.750".to_owned()),
                (2, Level::C, PayoutKind::Level, "1.750".to_owned()),
                (3, Level::J, shared, "0.875".to_owned()),
                (4, Level::J, shared, "0.875".to_owned()),
            ]
        );
        assert_eq!(plan.tree_distributed, points("5.25"));
        assert_eq!(plan.tree_unused, points("29.75"));
        assert_eq!(plan.gifts_final, points("44.75"));
        assert_eq!(plan.app_final, points("50"));
        assert_eq!(plan.j_remainder, MilliPoints::ZERO);
        assert!(plan.conserves());
    }

    #[test]
    fn a_promotion_is_visible_to_the_parent_in_the_same_pass() {
        // 0 (buyer, A) has two directs at C → becomes D. 1 (A) has directs {0, x@D}: with 0 now at
        // D its second-highest direct is D → becomes E.
        let mut buyer = member(0, Some(1), Level::A);
        buyer.directs = LevelCounts::from_levels([Level::C, Level::C]);
        let mut parent = member(1, None, Level::A);
        parent.directs = LevelCounts::from_levels([Level::A, Level::D]);
        let members = [buyer, parent];
        let chain = ReferralChain::walk(&0, |id| members.get(*id as usize).cloned()).unwrap();
        let plan = plan_rewards(&RewardPolicy::default(), points("100"), &chain).unwrap();
        assert_eq!(
            plan.promotions,
            [
                Promotion {
                    id: 0,
                    from: Level::A,
                    to: Level::D
                },
                Promotion {
                    id: 1,
                    from: Level::A,
                    to: Level::E
                },
            ]
        );
        assert_eq!(
            plan.payouts[0].level,
            Level::E,
            "paid at the promoted level"
        );
    }

    #[test]
    fn directs_that_miss_the_promoted_child_are_inconsistent() {
        let mut buyer = member(0, Some(1), Level::A);
        buyer.directs = LevelCounts::from_levels([Level::C, Level::C]);
        let parent = member(1, None, Level::A); // claims no directs at all
        let members = [buyer, parent];
        let chain = ReferralChain::walk(&0, |id| members.get(*id as usize).cloned()).unwrap();
        assert_eq!(
            plan_rewards(&RewardPolicy::default(), points("100"), &chain),
            Err(RewardError::InconsistentDirects { position: 1 })
        );
    }

    #[test]
    fn tiny_rewards_write_no_zero_entries() {
        // R = 0.010 → tree 0.003, level bucket floor(3 × 500 / 10000) = 0.
        let chain = line(&[Level::A, Level::B, Level::J]);
        let plan = plan_rewards(
            &RewardPolicy::default(),
            MilliPoints::from_milli(10),
            &chain,
        )
        .unwrap();
        assert!(plan.payouts.is_empty());
        assert_eq!(plan.j_remainder, MilliPoints::ZERO); // the J bucket is zero too
        assert_eq!(plan.gifts_final.as_milli(), 1 + 3);
        assert!(plan.conserves());
    }

    #[test]
    fn the_j_remainder_goes_to_gifts() {
        // tree 35.000, J bucket 1.750 shared by 3 → 0.583 each, remainder 0.001.
        let chain = line(&[Level::A, Level::J, Level::J, Level::J]);
        let plan = plan_rewards(&RewardPolicy::default(), points("100"), &chain).unwrap();
        assert_eq!(plan.payouts.len(), 3);
        assert!(plan.payouts.iter().all(|p| p.amount == points("0.583")));
        assert_eq!(plan.j_remainder, points("0.001"));
        assert_eq!(
            plan.gifts_final,
            points("15").checked_add(points("33.251")).unwrap()
        );
        assert!(plan.conserves());
    }

    #[test]
    fn letters_a_to_i_are_paid_once() {
        let chain = line(&[Level::A, Level::C, Level::C, Level::B]);
        let plan = plan_rewards(&RewardPolicy::default(), points("100"), &chain).unwrap();
        let paid: Vec<_> = plan.payouts.iter().map(|p| p.id).collect();
        assert_eq!(paid, [1, 3]);
        assert_eq!(
            plan.skipped,
            [Skipped {
                id: 2,
                reason: SkipReason::DuplicateLevel
            }]
        );
    }
}
