//! The pure rules replayed over a database dump's customers, job after job, as one serial worker
//! would pay them: every level, every wallet and the gifts pool it leaves, to hold a real drain
//! to, to the milli-point.

use std::collections::HashMap;

use mall_domain::{
    plan_job, ChainMember, JobTerms, Level, LevelCounts, MilliPoints, ReferralChain, RewardPlan,
};
use mall_store::bson::{oid::ObjectId, Bson, Document};

#[derive(Clone)]
struct Member {
    parent: Option<ObjectId>,
    level: Level,
    active: bool,
    verified: bool,
}

/// The referral forest, every wallet in milli-points, and the gifts pool.
pub struct Replay {
    members: HashMap<ObjectId, Member>,
    children: HashMap<ObjectId, Vec<ObjectId>>,
    pub wallets: HashMap<ObjectId, MilliPoints>,
    pub pool: MilliPoints,
}

impl Replay {
    /// The customers as stored (read as the worker reads them: a missing status is `active`, a
    /// missing wallet 0), and the gifts pool's balance.
    pub fn of(customers: &[Document], pool: MilliPoints) -> Replay {
        let mut replay = Replay {
            members: HashMap::new(),
            children: HashMap::new(),
            wallets: HashMap::new(),
            pool,
        };
        for c in customers {
            let id = c.get_object_id("_id").unwrap();
            let parent = c.get_object_id("parentCustomer").ok();
            replay.members.insert(
                id,
                Member {
                    parent,
                    level: c.get_str("levelLetter").unwrap_or("A").parse().unwrap(),
                    active: c.get_str("referralStatus").unwrap_or("active") == "active",
                    verified: c.get_bool("isVerified") == Ok(true),
                },
            );
            if let Some(parent) = parent {
                replay.children.entry(parent).or_default().push(id);
            }
            let points = c.get("points").unwrap_or(&Bson::Null);
            replay.wallets.insert(
                id,
                mall_store::testing::amount::wallet_or_default(points).unwrap(),
            );
        }
        replay
    }

    /// Plans one job with the pure rules and applies it: promotions, every wallet credit, the
    /// pool. Panics if the plan does not conserve R or overdraws the pool.
    pub fn pay(
        &mut self,
        buyer: ObjectId,
        reward: MilliPoints,
        terms: &JobTerms,
    ) -> RewardPlan<ObjectId> {
        let chain = ReferralChain::walk(&buyer, |id| {
            let member = self.members.get(id)?;
            let directs = LevelCounts::from_levels(
                self.children
                    .get(id)
                    .into_iter()
                    .flatten()
                    .filter_map(|child| self.members.get(child).map(|m| m.level)),
            );
            Some(ChainMember {
                id: *id,
                parent: member.parent,
                level: member.level,
                active: member.active,
                verified: member.verified,
                directs,
            })
        })
        .unwrap();
        let plan = plan_job(terms, reward, &chain, self.pool).unwrap();
        assert!(plan.conserves());
        self.pool = plan.pool_after(self.pool).unwrap();
        assert!(!self.pool.is_negative(), "the pool never goes below zero");
        for promotion in &plan.promotions {
            let member = self.members.get_mut(&promotion.id).unwrap();
            member.level = member.level.max(promotion.to);
        }
        let credits = plan
            .payouts
            .iter()
            .map(|p| (p.id, p.amount))
            .chain(plan.direct.iter().map(|d| (d.id, d.amount)))
            .chain(plan.gifts.iter().map(|g| (g.id, g.amount)));
        for (id, credit) in credits {
            let wallet = self.wallets.get_mut(&id).unwrap();
            *wallet = wallet.checked_add(credit).unwrap();
        }
        plan
    }
}
