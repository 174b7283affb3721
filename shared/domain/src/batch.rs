//! Many reward jobs planned on one in-memory view of the referral forest they touch.
//!
//! A batch of jobs is processed in one transaction: the store loads every buyer's chain once
//! (the union of the chains, each shared ancestor once) and the level counts of every loaded
//! customer's directs, builds a [`ForestView`], and plans the jobs one by one in claim order.
//! After a job is planned, [`ForestView::apply`] makes its promotions visible to the next job —
//! the promoted customer's level, and its parent's count of directs per level — so that planning
//! a batch gives exactly the plans that processing the same jobs one at a time, in that order,
//! would give (a property test below checks this against views rebuilt from scratch per job).
//!
//! Planning never changes the view: a job whose plan fails (a cycle, a missing buyer) or that the
//! store refuses afterwards (an unreadable wallet) simply is not applied, and leaves the batch
//! without affecting the others.

use std::collections::HashMap;
use std::hash::Hash;

use crate::chain::{ChainError, ChainMember, ReferralChain};
use crate::level::{Level, LevelCounts};
use crate::money::MilliPoints;
use crate::policy::RewardPolicy;
use crate::reward::{plan_job, JobTerms, RewardError, RewardPlan};

/// What the rules know of one customer of the view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewMember<Id> {
    pub parent: Option<Id>,
    pub level: Level,
    pub active: bool,
    pub verified: bool,
    /// The levels of all of this customer's direct referrals, as of the view.
    pub directs: LevelCounts,
}

/// Why one job of a batch cannot be planned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchPlanError<Id: std::fmt::Debug> {
    #[error(transparent)]
    Chain(#[from] ChainError<Id>),
    #[error(transparent)]
    Reward(#[from] RewardError),
    #[error("the reward plan does not add up to R")]
    NotConserved,
}

/// The customers a batch touches, with its promotions so far applied.
#[derive(Clone, Debug, Default)]
pub struct ForestView<Id> {
    members: HashMap<Id, ViewMember<Id>>,
}

impl<Id: Clone + Eq + Hash + std::fmt::Debug> ForestView<Id> {
    pub fn new() -> Self {
        ForestView {
            members: HashMap::new(),
        }
    }

    pub fn insert(&mut self, id: Id, member: ViewMember<Id>) {
        self.members.insert(id, member);
    }

    pub fn get(&self, id: &Id) -> Option<&ViewMember<Id>> {
        self.members.get(id)
    }

    /// The buyer's chain as the view has it now.
    pub fn chain(&self, buyer: &Id) -> Result<ReferralChain<Id>, ChainError<Id>> {
        ReferralChain::walk(buyer, |id| {
            self.members.get(id).map(|m| ChainMember {
                id: id.clone(),
                parent: m.parent.clone(),
                level: m.level,
                active: m.active,
                verified: m.verified,
                directs: m.directs,
            })
        })
    }

    /// Plans one job of a fixed split on the view as it is now, without changing it.
    pub fn plan(
        &self,
        policy: &RewardPolicy,
        reward: MilliPoints,
        buyer: &Id,
    ) -> Result<RewardPlan<Id>, BatchPlanError<Id>> {
        self.plan_job(&JobTerms::Split(*policy), reward, buyer, MilliPoints::ZERO)
    }

    /// Plans one job under its terms on the view as it is now, the gifts pool holding `pool`,
    /// without changing either.
    pub fn plan_job(
        &self,
        terms: &JobTerms,
        reward: MilliPoints,
        buyer: &Id,
        pool: MilliPoints,
    ) -> Result<RewardPlan<Id>, BatchPlanError<Id>> {
        let chain = self.chain(buyer)?;
        let plan = plan_job(terms, reward, &chain, pool)?;
        if !plan.conserves() {
            return Err(BatchPlanError::NotConserved);
        }
        Ok(plan)
    }

    /// Makes a planned job's promotions visible to the jobs planned after it.
    pub fn apply(&mut self, plan: &RewardPlan<Id>) {
        for promotion in &plan.promotions {
            let parent = match self.members.get_mut(&promotion.id) {
                Some(member) => {
                    member.level = member.level.max(promotion.to);
                    member.parent.clone()
                }
                None => None,
            };
            if let Some(parent) = parent.and_then(|p| self.members.get_mut(&p)) {
                // The plan was made on this view, so the parent counts the promoted direct at
                // its old level.
                parent.directs.move_one(promotion.from, promotion.to);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A forest as parent indexes (always earlier customers, or none) with levels and flags.
    #[derive(Clone, Debug)]
    struct Forest {
        parent: Vec<Option<usize>>,
        level: Vec<Level>,
        active: Vec<bool>,
        verified: Vec<bool>,
    }

    impl Forest {
        /// The view a store would load now: directs counted from the current levels.
        fn view(&self) -> ForestView<usize> {
            let mut view = ForestView::new();
            for (i, parent) in self.parent.iter().enumerate() {
                let directs = LevelCounts::from_levels(
                    (0..self.parent.len())
                        .filter(|&c| self.parent[c] == Some(i))
                        .map(|c| self.level[c]),
                );
                view.insert(
                    i,
                    ViewMember {
                        parent: *parent,
                        level: self.level[i],
                        active: self.active[i],
                        verified: self.verified[i],
                        directs,
                    },
                );
            }
            view
        }
    }

    fn forest() -> impl Strategy<Value = Forest> {
        (2usize..40)
            .prop_flat_map(|n| {
                (
                    proptest::collection::vec((any::<prop::sample::Index>(), 0u8..5), n),
                    proptest::collection::vec(0usize..10, n),
                    proptest::collection::vec(any::<bool>(), n),
                    proptest::collection::vec(prop::bool::weighted(0.9), n),
                )
            })
            .prop_map(|(parents, levels, active, verified)| Forest {
                parent: parents
                    .iter()
                    .enumerate()
                    .map(|(i, (pick, root))| (i > 0 && *root != 0).then(|| pick.index(i)))
                    .collect(),
                level: levels.into_iter().map(|l| Level::ALL[l % 4]).collect(),
                active,
                verified,
            })
    }

    fn policy(directs: u64) -> RewardPolicy {
        crate::policy::PolicyOverrides {
            promotion_directs: Some(directs),
            ..Default::default()
        }
        .resolve()
        .unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// Planning a batch on one view, job after job, gives the plans of processing each job
        /// alone against the forest as the jobs before it left it.
        #[test]
        fn a_batch_plans_exactly_as_one_job_at_a_time(
            forest in forest(),
            jobs in proptest::collection::vec((any::<prop::sample::Index>(), 0i64..1_000_000), 1..25),
            directs in 1u64..4,
        ) {
            let policy = policy(directs);
            let mut batch_view = forest.view();
            let mut serial = forest.clone();
            for (pick, reward) in jobs {
                let buyer = pick.index(forest.parent.len());
                let reward = MilliPoints::from_milli(reward);
                let batched = batch_view.plan(&policy, reward, &buyer).unwrap();
                let alone = serial.view().plan(&policy, reward, &buyer).unwrap();
                prop_assert_eq!(&batched, &alone);
                batch_view.apply(&batched);
                for promotion in &alone.promotions {
                    serial.level[promotion.id] = promotion.to;
                }
            }
            // The views agree afterwards too.
            let rebuilt = serial.view();
            for i in 0..forest.parent.len() {
                prop_assert_eq!(batch_view.get(&i), rebuilt.get(&i));
            }
        }
    }

    #[test]
    fn a_promotion_in_one_job_promotes_the_parent_in_the_next() {
        // P (0) has directs X (1) and Y (2), all at A; X and Y have two directs at B each. With
        // promotion by the 2nd highest direct, job 1 (bought under X) promotes X to C and P to B
        // (its directs are C and A); job 2 (bought under Y) promotes Y to C, and P, now with
        // directs C and C, to D — which job 2 alone, on the forest as stored, would not see.
        let policy = policy(2);
        let forest = Forest {
            parent: vec![None, Some(0), Some(0), Some(1), Some(1), Some(2), Some(2)],
            level: vec![
                Level::A,
                Level::A,
                Level::A,
                Level::B,
                Level::B,
                Level::B,
                Level::B,
            ],
            active: vec![true; 7],
            verified: vec![true; 7],
        };
        let promotions = |plan: &RewardPlan<usize>| {
            plan.promotions
                .iter()
                .map(|p| (p.id, p.to))
                .collect::<Vec<_>>()
        };
        let reward = MilliPoints::from_milli(100_000);
        let mut view = forest.view();
        let first = view.plan(&policy, reward, &3).unwrap();
        assert_eq!(promotions(&first), vec![(1, Level::C), (0, Level::B)]);
        view.apply(&first);
        let second = view.plan(&policy, reward, &5).unwrap();
        assert_eq!(promotions(&second), vec![(2, Level::C), (0, Level::D)]);
        let alone = forest.view().plan(&policy, reward, &5).unwrap();
        assert_eq!(promotions(&alone), vec![(2, Level::C), (0, Level::B)]);
    }

    #[test]
    fn planning_a_job_that_fails_changes_nothing() {
        let mut view: ForestView<u32> = ForestView::new();
        let member = |parent| ViewMember {
            parent,
            level: Level::A,
            active: true,
            verified: true,
            directs: LevelCounts::default(),
        };
        view.insert(1, member(Some(2)));
        view.insert(2, member(Some(1)));
        let before = view.clone();
        assert!(matches!(
            view.plan(&RewardPolicy::default(), MilliPoints::from_milli(1), &1),
            Err(BatchPlanError::Chain(ChainError::Cycle(_)))
        ));
        assert!(matches!(
            view.plan(&RewardPolicy::default(), MilliPoints::from_milli(1), &9),
            Err(BatchPlanError::Chain(ChainError::UnknownBuyer(9)))
        ));
        assert_eq!(view.get(&1), before.get(&1));
        assert_eq!(view.get(&2), before.get(&2));
    }
}
