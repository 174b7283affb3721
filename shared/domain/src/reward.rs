//! The reward plan of one purchase (SPEC §5.3 and §6.3): split, promotions, distribution.
//!
//! [`plan_rewards`] is a pure function of the policy, the purchase's reward `R` and the buyer's
//! referral chain. The plan it returns is everything the worker writes, in order; it conserves
//! the reward by construction (`appFinal + giftsFinal + Σ payouts = R`, see
//! [`RewardPlan::conserves`]) and never pays the buyer, an inactive or unverified ancestor, or
//! one letter A–I twice.

use serde::{Deserialize, Serialize};

use crate::chain::{ChainEnd, ReferralChain};
use crate::level::{promoted_level, Level, LevelGifts};
use crate::money::{MilliPoints, MoneyError};
use crate::policy::RewardPolicy;

/// The top-level split of `R` made at checkout: `tree`, `gifts` (and, in the app's current
/// economy, the direct-referral share `referral`) are floored shares and `app` takes what
/// flooring left, so the parts always add up to `R`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RewardSplit {
    pub app: MilliPoints,
    pub gifts: MilliPoints,
    pub tree: MilliPoints,
    /// D, the direct-referral share (zero under a fixed basis-point policy).
    pub referral: MilliPoints,
}

impl RewardSplit {
    pub fn of(reward: MilliPoints, policy: &RewardPolicy) -> Result<Self, RewardError> {
        if reward.is_negative() {
            return Err(RewardError::NegativeReward(reward));
        }
        let tree = reward.share(policy.tree_bps());
        let gifts = reward.share(policy.gifts_bps());
        let app = reward.checked_sub(tree)?.checked_sub(gifts)?;
        Ok(RewardSplit {
            app,
            gifts,
            tree,
            referral: MilliPoints::ZERO,
        })
    }

    pub fn total(&self) -> Result<MilliPoints, MoneyError> {
        MilliPoints::checked_sum([self.app, self.gifts, self.tree, self.referral])
    }

    /// The split a checkout recorded, taken as it is: tree, gifts and D as recorded, the app
    /// what they leave of R. A checkout that split R in doubles (the seed era's app: `R × 0.35`)
    /// recorded parts that, read to the milli-point, may miss R by a rounding residue; the app's
    /// entry takes that residue, so the parts add up to R exactly. Refused when a part is
    /// negative or tree, gifts and D together exceed R.
    pub fn recorded(
        reward: MilliPoints,
        tree: MilliPoints,
        gifts: MilliPoints,
        referral: MilliPoints,
    ) -> Result<Self, RewardError> {
        let parts = [reward, tree, gifts, referral];
        if parts.iter().any(|p| p.is_negative()) {
            return Err(RewardError::SplitNotWhole { reward });
        }
        let app = reward
            .checked_sub(tree)?
            .checked_sub(gifts)?
            .checked_sub(referral)?;
        if app.is_negative() {
            return Err(RewardError::SplitNotWhole { reward });
        }
        Ok(RewardSplit {
            app,
            gifts,
            tree,
            referral,
        })
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

/// Who receives the direct-referral share D of the app's current economy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirectKind {
    /// A first purchase: the buyer's parent, active and verified, is paid for referring it.
    Referral,
    /// A repeat purchase: the buyer gets D back.
    Cashback,
}

/// The first-purchase rule of the app's current economy, decided the same way wherever it is
/// decided (at our checkout, and when a job of the app's own checkout runs): a purchase is the
/// buyer's first when no completed purchase was created before it. Purchases are ordered by a
/// key `K` — when each was created, then its id (the order MongoDB sorts `{createdAt: 1, _id: 1}`
/// in, a missing time first) — and `earliest_completed` is the least key among the buyer's
/// completed purchases (this one included, or not). One total order: of any set of purchases
/// exactly one is first, however the decisions interleave.
pub fn is_first_purchase<K: Ord>(purchase: &K, earliest_completed: Option<&K>) -> bool {
    earliest_completed.is_none_or(|earliest| purchase <= earliest)
}

/// The direct-referral share paid to a wallet (`direct_referral_reward`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectReward<Id> {
    pub id: Id,
    pub kind: DirectKind,
    pub amount: MilliPoints,
}

/// A gift paid from the gifts pool, outside R.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GiftKind {
    /// The signup gift, at the buyer's first purchase (`signup_gifts_reward`).
    Signup,
    /// Reaching a letter (`level_gift_reward`).
    Level(Level),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolGift<Id> {
    pub id: Id,
    pub kind: GiftKind,
    pub amount: MilliPoints,
}

/// What a job of the app's current economy pays by, fixed at its checkout (or, for a job the
/// app's own checkout queued, read when it runs, as the app does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TodayTerms {
    /// The tree rules: the bucket of each letter, the J bucket, the promotion rule.
    pub rules: RewardPolicy,
    /// R split at checkout; its parts add up to R.
    pub split: RewardSplit,
    /// The buyer had no earlier purchase when it checked out.
    pub first_purchase: bool,
    /// The signup gift, when enabled.
    pub signup_gift: Option<MilliPoints>,
    /// The level gifts, when enabled.
    pub level_gifts: Option<LevelGifts>,
}

/// What a job pays by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobTerms {
    /// A fixed basis-point split of R (the documents' rules, or a preset of ours): promotions
    /// first, unused tree points to the gifts pool.
    Split(RewardPolicy),
    /// A job of the seed era's app: the split its checkout recorded (see
    /// [`RewardSplit::recorded`]), paid by the fixed-split tree rules `rules` (promotions first,
    /// unused tree points to the gifts pool).
    Recorded {
        rules: RewardPolicy,
        split: RewardSplit,
    },
    /// The app's current economy: distribution at the letters before this job's promotions,
    /// unused tree points to the app, the direct-referral share, gifts from the pool.
    Today(TodayTerms),
}

impl JobTerms {
    pub fn rules(&self) -> &RewardPolicy {
        match self {
            JobTerms::Split(policy) => policy,
            JobTerms::Recorded { rules, .. } => rules,
            JobTerms::Today(terms) => &terms.rules,
        }
    }
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
    /// The one `gifts_reward` entry: `gifts + tree_unused` under a fixed split, the gifts share
    /// alone in the app's current economy.
    pub gifts_final: MilliPoints,
    /// The one `app_reward` entry: the app's share, plus (current economy) the unused tree points
    /// and a direct-referral share nobody could be paid.
    pub app_final: MilliPoints,
    /// The direct-referral share paid to a wallet (current economy).
    pub direct: Option<DirectReward<Id>>,
    /// Gifts paid from the gifts pool, in order (current economy): outside R.
    pub gifts: Vec<PoolGift<Id>>,
    /// Gifts due that the pool could not cover: not paid.
    pub gifts_uncovered: Vec<PoolGift<Id>>,
    /// How the walk ended (a missing parent is worth a log line).
    pub chain_end: ChainEnd<Id>,
}

impl<Id> RewardPlan<Id> {
    /// `appFinal + giftsFinal + Σ payouts + direct == R`, to the milli-point.
    pub fn conserves(&self) -> bool {
        let payouts = MilliPoints::checked_sum(self.payouts.iter().map(|p| p.amount));
        let direct = self.direct.as_ref().map_or(MilliPoints::ZERO, |d| d.amount);
        let total = payouts.and_then(|paid| {
            MilliPoints::checked_sum([self.app_final, self.gifts_final, paid, direct])
        });
        total == Ok(self.reward) && payouts == Ok(self.tree_distributed)
    }

    /// Σ of the gifts paid from the pool.
    pub fn pool_spent(&self) -> Result<MilliPoints, MoneyError> {
        MilliPoints::checked_sum(self.gifts.iter().map(|g| g.amount))
    }

    /// The gifts pool after this job: `before + giftsFinal − spent` (never below zero when
    /// `before` was not).
    pub fn pool_after(&self, before: MilliPoints) -> Result<MilliPoints, MoneyError> {
        before
            .checked_add(self.gifts_final)?
            .checked_sub(self.pool_spent()?)
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
    #[error("the recorded split does not add up to R = {reward} (or has a negative part)")]
    SplitNotWhole { reward: MilliPoints },
}

/// Decides the promotions and payouts of one purchase with reward `reward` made by the chain's
/// buyer, under a fixed split `policy`.
pub fn plan_rewards<Id: Clone>(
    policy: &RewardPolicy,
    reward: MilliPoints,
    chain: &ReferralChain<Id>,
) -> Result<RewardPlan<Id>, RewardError> {
    plan_job(&JobTerms::Split(*policy), reward, chain, MilliPoints::ZERO)
}

/// Decides everything one job does under its terms, the gifts pool holding `pool` before it.
pub fn plan_job<Id: Clone>(
    terms: &JobTerms,
    reward: MilliPoints,
    chain: &ReferralChain<Id>,
    pool: MilliPoints,
) -> Result<RewardPlan<Id>, RewardError> {
    if reward.is_negative() {
        return Err(RewardError::NegativeReward(reward));
    }
    let rules = terms.rules();
    let split = match terms {
        JobTerms::Split(policy) => RewardSplit::of(reward, policy)?,
        JobTerms::Recorded { split, .. } => whole(*split, reward)?,
        JobTerms::Today(today) => whole(today.split, reward)?,
    };
    let (promoted, promotions) = promote(rules, chain)?;
    // The current economy distributes at the letters before this job's promotions.
    let stored: Vec<Level> = chain.members().iter().map(|m| m.level).collect();
    let levels = match terms {
        JobTerms::Split(_) | JobTerms::Recorded { .. } => &promoted,
        JobTerms::Today(_) => &stored,
    };
    let walk = distribute(rules, split.tree, chain, levels)?;
    let tree_distributed = MilliPoints::checked_sum(walk.payouts.iter().map(|p| p.amount))?;
    let tree_unused = split.tree.checked_sub(tree_distributed)?;
    let mut plan = RewardPlan {
        reward,
        split,
        promotions,
        payouts: walk.payouts,
        skipped: walk.skipped,
        tree_distributed,
        tree_unused,
        j_remainder: walk.j_remainder,
        gifts_final: split.gifts.checked_add(tree_unused)?,
        app_final: split.app,
        direct: None,
        gifts: vec![],
        gifts_uncovered: vec![],
        chain_end: chain.end().clone(),
    };
    if let JobTerms::Today(today) = terms {
        pay_today(&mut plan, today, chain, pool)?;
    }
    Ok(plan)
}

/// A recorded split, checked: no negative part, and the parts add up to R.
fn whole(split: RewardSplit, reward: MilliPoints) -> Result<RewardSplit, RewardError> {
    let parts = [split.app, split.gifts, split.tree, split.referral];
    if parts.iter().any(|p| p.is_negative()) || split.total() != Ok(reward) {
        return Err(RewardError::SplitNotWhole { reward });
    }
    Ok(split)
}

/// The current economy's part after the tree walk: unused tree points to the app, D to the
/// parent (first purchase) or back to the buyer (repeat), then the gifts the pool covers.
fn pay_today<Id: Clone>(
    plan: &mut RewardPlan<Id>,
    today: &TodayTerms,
    chain: &ReferralChain<Id>,
    pool: MilliPoints,
) -> Result<(), RewardError> {
    let buyer = &chain.members()[0];
    plan.gifts_final = plan.split.gifts;
    let mut app = plan.split.app.checked_add(plan.tree_unused)?;
    let referral = plan.split.referral;
    if !referral.is_zero() {
        let recipient = if today.first_purchase {
            chain
                .ancestors()
                .first()
                .filter(|parent| parent.active && parent.verified)
                .map(|parent| (parent.id.clone(), DirectKind::Referral))
        } else {
            Some((buyer.id.clone(), DirectKind::Cashback))
        };
        match recipient {
            Some((id, kind)) => {
                plan.direct = Some(DirectReward {
                    id,
                    kind,
                    amount: referral,
                })
            }
            // No eligible parent: D stays with the mall, in its entry.
            None => app = app.checked_add(referral)?,
        }
    }
    plan.app_final = app;

    // The gifts pool, this job's gifts share in, spent gift by gift while it covers them.
    let mut available = pool.checked_add(plan.gifts_final)?;
    let mut gifts = Vec::new();
    let signup = today
        .signup_gift
        .filter(|a| today.first_purchase && !a.is_zero());
    if let Some(amount) = signup {
        let gift = PoolGift {
            id: buyer.id.clone(),
            kind: GiftKind::Signup,
            amount,
        };
        if amount <= available {
            available = available.checked_sub(amount)?;
            gifts.push(gift);
        } else {
            plan.gifts_uncovered.push(gift);
        }
    }
    if let Some(level_gifts) = &today.level_gifts {
        for promotion in &plan.promotions {
            // Every letter reached on the way up, as one step at a time would have paid, while
            // the pool covers it: one gift per promotion (one entry per customer and purchase),
            // named by the highest letter paid. Once a letter is not covered, neither is any
            // above it (steps one at a time would have stopped there too): the entry pays the
            // letters up to the one it names, no more, and the rest are recorded as uncovered
            // in the purchase's log.
            let mut paid = MilliPoints::ZERO;
            let mut highest = None;
            let mut short = false;
            for level in Level::ALL
                .iter()
                .filter(|l| **l > promotion.from && **l <= promotion.to)
            {
                let amount = level_gifts.of(*level);
                if amount.is_zero() {
                    continue;
                }
                let gift = PoolGift {
                    id: promotion.id.clone(),
                    kind: GiftKind::Level(*level),
                    amount,
                };
                if !short && amount <= available {
                    available = available.checked_sub(amount)?;
                    paid = paid.checked_add(amount)?;
                    highest = Some(*level);
                } else {
                    short = true;
                    plan.gifts_uncovered.push(gift);
                }
            }
            if let Some(level) = highest {
                gifts.push(PoolGift {
                    id: promotion.id.clone(),
                    kind: GiftKind::Level(level),
                    amount: paid,
                });
            }
        }
    }
    plan.gifts = gifts;
    Ok(())
}

/// The tree walk's result.
struct Walk<Id> {
    payouts: Vec<Payout<Id>>,
    skipped: Vec<Skipped<Id>>,
    j_remainder: MilliPoints,
}

/// Pays the tree pool up the chain at `levels` (one per chain member, the buyer's first): one
/// level bucket per letter A–I to the nearest eligible ancestor holding it, the J bucket shared.
fn distribute<Id: Clone>(
    rules: &RewardPolicy,
    tree: MilliPoints,
    chain: &ReferralChain<Id>,
    levels: &[Level],
) -> Result<Walk<Id>, RewardError> {
    let level_bucket = tree.share(rules.level_bps());
    let j_bucket = tree.share(rules.j_shared_bps());
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
    Ok(Walk {
        payouts,
        skipped,
        j_remainder,
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

    fn today(first_purchase: bool) -> TodayTerms {
        let settings = crate::settings::AppSettings::app_defaults();
        TodayTerms {
            rules: RewardPolicy::preset(crate::policy::PolicyPreset::Current),
            split: settings.split(points("100")),
            first_purchase,
            signup_gift: settings.signup_gift,
            level_gifts: settings.payable_level_gifts(),
        }
    }

    /// R = 100 under the app's defaults: tree 50 (5 per letter), gifts 15, D 5, app 30.
    #[test]
    fn the_current_economy_on_a_first_purchase() {
        let chain = line(&[Level::A, Level::B, Level::C, Level::J, Level::J]);
        let terms = JobTerms::Today(today(true));
        let plan = plan_job(&terms, points("100"), &chain, points("100")).unwrap();
        let paid: Vec<_> = plan
            .payouts
            .iter()
            .map(|p| (p.id, p.amount.to_string()))
            .collect();
        assert_eq!(
            paid,
            [
                (1, "5.000".to_owned()),
                (2, "5.000".to_owned()),
                (3, "2.500".to_owned()),
                (4, "2.500".to_owned())
            ]
        );
        assert_eq!(plan.tree_unused, points("35"));
        assert_eq!(
            plan.app_final,
            points("65"),
            "the app's 30 and the unused 35"
        );
        assert_eq!(plan.gifts_final, points("15"), "the gifts share alone");
        assert_eq!(
            plan.direct,
            Some(DirectReward {
                id: 1,
                kind: DirectKind::Referral,
                amount: points("5")
            })
        );
        assert_eq!(
            plan.gifts,
            [PoolGift {
                id: 0,
                kind: GiftKind::Signup,
                amount: points("50")
            }]
        );
        assert_eq!(plan.pool_after(points("100")), Ok(points("65")));
        assert!(plan.conserves());
    }

    #[test]
    fn a_repeat_purchase_pays_the_buyer_its_cashback() {
        let chain = line(&[Level::A, Level::B]);
        let plan = plan_job(
            &JobTerms::Today(today(false)),
            points("100"),
            &chain,
            points("0"),
        )
        .unwrap();
        assert_eq!(
            plan.direct,
            Some(DirectReward {
                id: 0,
                kind: DirectKind::Cashback,
                amount: points("5")
            })
        );
        assert!(plan.gifts.is_empty() && plan.gifts_uncovered.is_empty());
        assert!(plan.conserves());
    }

    #[test]
    fn without_an_eligible_parent_the_direct_share_stays_with_the_app() {
        let mut members = [member(0, Some(1), Level::A), member(1, None, Level::B)];
        members[1].verified = false;
        let chain = ReferralChain::walk(&0, |id| members.get(*id as usize).cloned()).unwrap();
        let plan = plan_job(
            &JobTerms::Today(today(true)),
            points("100"),
            &chain,
            points("0"),
        )
        .unwrap();
        assert_eq!(plan.direct, None);
        // 30 app + 50 tree unused (the only ancestor is unverified) + 5 D.
        assert_eq!(plan.app_final, points("85"));
        // The pool holds only this job's 15: the signup gift of 50 is not covered.
        assert!(plan.gifts.is_empty());
        assert_eq!(plan.gifts_uncovered.len(), 1);
        assert!(plan.conserves());
    }

    #[test]
    fn the_current_economy_pays_at_the_letters_before_its_promotions_then_level_gifts() {
        // The buyer (A) has two directs at C: promoted to D. Its parent stays at B.
        let mut buyer = member(0, Some(1), Level::A);
        buyer.directs = LevelCounts::from_levels([Level::C, Level::C]);
        let mut parent = member(1, None, Level::B);
        parent.directs = LevelCounts::from_levels([Level::A]);
        let members = [buyer, parent];
        let chain = ReferralChain::walk(&0, |id| members.get(*id as usize).cloned()).unwrap();
        let plan = plan_job(
            &JobTerms::Today(today(false)),
            points("100"),
            &chain,
            points("1000"),
        )
        .unwrap();
        assert_eq!(plan.promotions.len(), 1);
        assert_eq!(plan.payouts[0].level, Level::B);
        // A → D passes B (10) and D (20): one gift of both, named by D.
        let gifts: Vec<_> = plan.gifts.iter().map(|g| (g.kind, g.amount)).collect();
        assert_eq!(gifts, [(GiftKind::Level(Level::D), points("30"))]);
        // A pool of 25 covers B only.
        let short = plan_job(
            &JobTerms::Today(today(false)),
            points("100"),
            &chain,
            points("10"),
        )
        .unwrap();
        let gifts: Vec<_> = short.gifts.iter().map(|g| (g.kind, g.amount)).collect();
        assert_eq!(gifts, [(GiftKind::Level(Level::B), points("10"))]);
        assert_eq!(short.gifts_uncovered.len(), 1);
        let mut off = today(false);
        off.level_gifts = None;
        let plan = plan_job(&JobTerms::Today(off), points("100"), &chain, points("1000")).unwrap();
        assert!(plan.gifts.is_empty());
    }

    #[test]
    fn a_recorded_split_that_is_not_r_is_refused() {
        let chain = line(&[Level::A]);
        let mut terms = today(true);
        terms.split.app = points("31");
        assert_eq!(
            plan_job(&JobTerms::Today(terms), points("100"), &chain, points("0")),
            Err(RewardError::SplitNotWhole {
                reward: points("100")
            })
        );
    }

    /// A seed-era job recorded R = 12.05 as tree 6.025, gifts 1.8075 and app 4.2175 in doubles:
    /// read to the milli-point (gifts 1.808, app 4.218) they miss R by 0.001, which the app's
    /// entry gives back; every customer is paid from the recorded tree share.
    #[test]
    fn a_recorded_split_with_cents_pays_its_tree_and_leaves_the_residue_to_the_app() {
        let split = RewardSplit::recorded(
            points("12.05"),
            points("6.025"),
            points("1.808"),
            MilliPoints::ZERO,
        )
        .unwrap();
        assert_eq!(split.app, points("4.217"));
        let chain = line(&[Level::A, Level::B, Level::J]);
        let terms = JobTerms::Recorded {
            rules: RewardPolicy::preset(crate::policy::PolicyPreset::Original),
            split,
        };
        let plan = plan_job(&terms, points("12.05"), &chain, MilliPoints::ZERO).unwrap();
        // 10 % of the recorded tree share per letter, floored: 0.602; the J bucket likewise.
        let paid: Vec<_> = plan.payouts.iter().map(|p| p.amount.to_string()).collect();
        assert_eq!(paid, ["0.602", "0.602"]);
        assert_eq!(plan.app_final, points("4.217"));
        assert_eq!(
            plan.gifts_final,
            points("1.808")
                .checked_add(points("6.025").checked_sub(points("1.204")).unwrap())
                .unwrap()
        );
        assert!(plan.conserves());
        // More than R recorded, or a negative part, is refused.
        assert!(RewardSplit::recorded(
            points("1"),
            points("0.6"),
            points("0.5"),
            MilliPoints::ZERO
        )
        .is_err());
        assert!(RewardSplit::recorded(
            points("1"),
            points("-0.1"),
            points("0.5"),
            MilliPoints::ZERO
        )
        .is_err());
    }

    #[test]
    fn the_first_purchase_is_the_earliest_whatever_else_completed_since() {
        // (created at, id): the buyer's purchases at t = 5 (this one) and t = 9 (completed
        // later, while this one's job waited): this one is still the first.
        assert!(is_first_purchase(&(Some(5), 1), Some(&(Some(5), 1))));
        assert!(is_first_purchase(&(Some(5), 1), Some(&(Some(9), 2))));
        assert!(is_first_purchase(&(Some(5), 1), None));
        assert!(!is_first_purchase(&(Some(9), 2), Some(&(Some(5), 1))));
        // Two purchases of the same second: the id decides; a missing time sorts first.
        assert!(!is_first_purchase(&(Some(5), 2), Some(&(Some(5), 1))));
        assert!(!is_first_purchase(&(Some(5), 1), Some(&(None, 7))));
    }

    /// A promotion past three gift letters when the pool covers the first and the third but not
    /// the second: only the first is paid, and the entry is named by it.
    #[test]
    fn a_level_gift_the_pool_cannot_cover_stops_the_gifts_above_it() {
        let mut buyer = member(0, Some(1), Level::A);
        buyer.directs = LevelCounts::from_levels([Level::E, Level::E]);
        let parent = {
            let mut p = member(1, None, Level::B);
            p.directs = LevelCounts::from_levels([Level::A]);
            p
        };
        let members = [buyer, parent];
        let chain = ReferralChain::walk(&0, |id| members.get(*id as usize).cloned()).unwrap();
        let mut terms = today(false);
        let mut gifts = LevelGifts::default();
        gifts.set(Level::B, points("10"));
        gifts.set(Level::D, points("30"));
        gifts.set(Level::F, points("5"));
        terms.level_gifts = Some(gifts);
        // A → F. The pool holds 10 + this job's 15: B (10) is paid, D (30) is not, and F (5),
        // which the rest would cover, is not paid past D.
        let plan = plan_job(&JobTerms::Today(terms), points("100"), &chain, points("10")).unwrap();
        assert_eq!(plan.promotions[0].to, Level::F);
        let paid: Vec<_> = plan.gifts.iter().map(|g| (g.kind, g.amount)).collect();
        assert_eq!(paid, [(GiftKind::Level(Level::B), points("10"))]);
        let uncovered: Vec<_> = plan.gifts_uncovered.iter().map(|g| g.kind).collect();
        assert_eq!(
            uncovered,
            [GiftKind::Level(Level::D), GiftKind::Level(Level::F)]
        );
    }

    /// A pool the app overdrew: no gift is paid from it, and the job's gifts share lifts it.
    #[test]
    fn a_pool_below_zero_pays_no_gift_and_is_never_taken_lower() {
        let chain = line(&[Level::A, Level::B]);
        let pool = points("-149.5");
        let plan = plan_job(&JobTerms::Today(today(true)), points("100"), &chain, pool).unwrap();
        assert!(plan.gifts.is_empty());
        assert_eq!(plan.gifts_uncovered.len(), 1);
        assert_eq!(plan.pool_after(pool), Ok(points("-134.5")));
    }

    proptest::proptest! {
        /// Every job of the current economy conserves R, and never spends more than the pool holds.
        #[test]
        fn the_current_economy_conserves_r_and_never_overdraws_the_pool(
            levels in proptest::collection::vec(0usize..10, 1..12),
            reward in 0i64..10_000_000,
            pool in 0i64..200_000,
            first in proptest::bool::ANY,
            inactive in proptest::collection::vec(proptest::bool::weighted(0.2), 12),
        ) {
            let levels: Vec<Level> = levels.iter().map(|&i| Level::ALL[i]).collect();
            let n = u32::try_from(levels.len()).unwrap();
            let members: Vec<_> = levels.iter().enumerate().map(|(i, &level)| {
                let i = u32::try_from(i).unwrap();
                let mut m = member(i, (i + 1 < n).then_some(i + 1), level);
                m.active = !inactive[i as usize];
                if i > 0 {
                    m.directs = LevelCounts::from_levels([levels[i as usize - 1], Level::J]);
                }
                m
            }).collect();
            let chain = ReferralChain::walk(&0, |id| members.get(*id as usize).cloned()).unwrap();
            let reward = MilliPoints::from_milli(reward);
            let mut terms = today(first);
            terms.split = crate::settings::AppSettings::app_defaults().split(reward);
            let pool = MilliPoints::from_milli(pool);
            let plan = plan_job(&JobTerms::Today(terms), reward, &chain, pool).unwrap();
            proptest::prop_assert!(plan.conserves());
            let after = plan.pool_after(pool).unwrap();
            proptest::prop_assert!(!after.is_negative());
            proptest::prop_assert_eq!(
                after.checked_add(plan.pool_spent().unwrap()).unwrap(),
                pool.checked_add(plan.gifts_final).unwrap()
            );
        }
    }
}
