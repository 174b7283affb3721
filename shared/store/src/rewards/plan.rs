//! The batch's plan (step 2 of [`super`]): one job at a time on the loaded view, through the
//! domain's pure rules, with the wallets' new balances counted exactly. No I/O: every reason a
//! job cannot be paid is its own, and fails that job alone.

use std::collections::HashMap;

use mall_domain::{ChainEnd, ChainError, JobTerms, MilliPoints, RewardPlan};
use mongodb::bson::oid::ObjectId;

use super::error::Unpayable;
use super::load::{Loaded, MAX_ANCESTORS};
use crate::documents::{CheckoutJobDoc, PurchaseOrder, RunTimeFacts};
use crate::queue::QueueSettings;

/// One job planned, before it joins the batch's writes.
pub(super) struct PlannedJob {
    pub(super) plan: RewardPlan<ObjectId>,
    pub(super) terms: JobTerms,
    /// The new balances of the job's recipients, counting the batch's earlier credits.
    pub(super) balances: Vec<(ObjectId, MilliPoints)>,
}

/// Plans one job on the batch's view, the gifts pool holding `pool` (when the batch keeps it),
/// each recipient's balance counting the batch's earlier credits (`balances`); every reason it
/// cannot be paid is its own, permanent.
pub(super) fn plan_job(
    loaded: &Loaded,
    balances: &HashMap<ObjectId, MilliPoints>,
    pool: Option<MilliPoints>,
    job: &CheckoutJobDoc,
    settings: &QueueSettings,
) -> Result<PlannedJob, Unpayable> {
    let buyer = job.customer_id;
    let this = PurchaseOrder {
        created_at: loaded
            .purchases
            .get(&job.checkout_transaction_id)
            .and_then(|p| p.created_at),
        id: job.checkout_transaction_id,
    };
    let facts = RunTimeFacts {
        // No completed purchase created before this one, whatever completed since.
        first_purchase: mall_domain::is_first_purchase(
            &this,
            loaded.buyer_purchases.get(&buyer).map(|p| &p.earliest),
        ),
        settings: loaded.settings.settings.clone(),
        level_gifts_allowed: settings.level_gifts_allowed,
    };
    let terms = job.payload.paying_terms(&facts)?;
    let chain = loaded.view.chain(&buyer).map_err(|e| match e {
        ChainError::Cycle(id) => Unpayable::Cycle(id),
        ChainError::UnknownBuyer(id) => Unpayable::UnknownBuyer(id),
    })?;
    if let Some(problem) = chain
        .members()
        .iter()
        .find_map(|m| loaded.corrupt.get(&m.id))
    {
        return Err(Unpayable::CorruptLevel(problem.clone()));
    }
    let ancestors = i64::try_from(chain.ancestors().len()).unwrap_or(i64::MAX);
    if ancestors > MAX_ANCESTORS
        || (ancestors == MAX_ANCESTORS && !matches!(chain.end(), ChainEnd::Root))
    {
        return Err(Unpayable::ChainTooLong);
    }
    let plan = loaded
        .view
        .plan_job(
            &terms,
            job.payload.reward_points,
            &buyer,
            pool.unwrap_or_default(),
        )
        .map_err(Unpayable::Plan)?;
    if let ChainEnd::MissingParent(parent) = &plan.chain_end {
        tracing::warn!(job_id = %job.id, %parent, "the referral chain ends at a missing parent");
    }
    let mut new_balances: Vec<(ObjectId, MilliPoints)> = Vec::new();
    for (id, amount) in credits(&plan) {
        let node = loaded.nodes.get(&id).ok_or(Unpayable::LeftTheChain(id))?;
        let unreadable = |problem| Unpayable::Wallet {
            customer: node.id,
            problem,
        };
        let current = match new_balances.iter().find(|(known, _)| *known == id) {
            Some((_, balance)) => *balance,
            None => match balances.get(&id) {
                Some(balance) => *balance,
                None => crate::amount::wallet_or_default(&node.points).map_err(unreadable)?,
            },
        };
        let after = current
            .checked_add(amount)
            .map_err(|problem| Unpayable::WalletOverflow {
                customer: node.id,
                problem,
            })?;
        // Refused here, not at the write, so that only this job fails.
        crate::amount::to_bson(after).map_err(unreadable)?;
        match new_balances.iter_mut().find(|(known, _)| *known == id) {
            Some((_, balance)) => *balance = after,
            None => new_balances.push((id, after)),
        }
    }
    Ok(PlannedJob {
        plan,
        terms,
        balances: new_balances,
    })
}

/// Every wallet credit of a plan: the tree payouts, the direct-referral share, the pool's gifts.
fn credits(plan: &RewardPlan<ObjectId>) -> impl Iterator<Item = (ObjectId, MilliPoints)> + '_ {
    plan.payouts
        .iter()
        .map(|p| (p.id, p.amount))
        .chain(plan.direct.iter().map(|d| (d.id, d.amount)))
        .chain(plan.gifts.iter().map(|g| (g.id, g.amount)))
}
