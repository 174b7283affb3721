//! The buyer's referral chain: the buyer, then each ancestor by `parentCustomer`, nearest first.
//!
//! Building the chain is where a cycle is found (a customer seen twice, a permanent error) and
//! where a missing parent ends the walk. It is generic over the customer id, so the worker uses
//! MongoDB ObjectIds and the simulator uses the scenario's strings.

use std::collections::HashSet;
use std::hash::Hash;

use crate::level::{Level, LevelCounts};

/// What the rules need to know about one customer on the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainMember<Id> {
    pub id: Id,
    pub parent: Option<Id>,
    pub level: Level,
    /// `referralStatus == "active"`.
    pub active: bool,
    /// `isVerified == true`.
    pub verified: bool,
    /// The levels of all of this customer's direct referrals (active or not), as stored.
    pub directs: LevelCounts,
}

/// How the walk up the chain ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainEnd<Id> {
    /// The last member has no parent.
    Root,
    /// The last member names a parent that does not exist (logged by the caller).
    MissingParent(Id),
}

/// The buyer (first) and its ancestors, nearest first. Non-empty, and no id appears twice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferralChain<Id> {
    members: Vec<ChainMember<Id>>,
    end: ChainEnd<Id>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError<Id: std::fmt::Debug> {
    #[error("the buyer {0:?} does not exist")]
    UnknownBuyer(Id),
    #[error("the referral chain has a cycle: customer {0:?} is its own ancestor")]
    Cycle(Id),
}

impl<Id: Clone + Eq + Hash + std::fmt::Debug> ReferralChain<Id> {
    /// Walks from `buyer` up through `parent` links, asking `lookup` for each customer.
    pub fn walk<F>(buyer: &Id, mut lookup: F) -> Result<Self, ChainError<Id>>
    where
        F: FnMut(&Id) -> Option<ChainMember<Id>>,
    {
        let first = lookup(buyer).ok_or_else(|| ChainError::UnknownBuyer(buyer.clone()))?;
        let mut seen: HashSet<Id> = HashSet::from([first.id.clone()]);
        let mut members = vec![first];
        loop {
            let Some(parent_id) = members.last().and_then(|m| m.parent.clone()) else {
                return Ok(ReferralChain {
                    members,
                    end: ChainEnd::Root,
                });
            };
            if !seen.insert(parent_id.clone()) {
                return Err(ChainError::Cycle(parent_id));
            }
            match lookup(&parent_id) {
                Some(parent) => members.push(parent),
                None => {
                    return Ok(ReferralChain {
                        members,
                        end: ChainEnd::MissingParent(parent_id),
                    })
                }
            }
        }
    }
}

impl<Id> ReferralChain<Id> {
    /// The buyer, then its ancestors nearest first.
    pub fn members(&self) -> &[ChainMember<Id>] {
        &self.members
    }

    pub fn buyer(&self) -> &ChainMember<Id> {
        // `walk` never builds an empty chain.
        &self.members[0]
    }

    /// The ancestors, nearest first (everyone but the buyer).
    pub fn ancestors(&self) -> &[ChainMember<Id>] {
        &self.members[1..]
    }

    pub fn end(&self) -> &ChainEnd<Id> {
        &self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn member(id: &'static str, parent: Option<&'static str>) -> ChainMember<&'static str> {
        ChainMember {
            id,
            parent,
            level: Level::A,
            active: true,
            verified: true,
            directs: LevelCounts::default(),
        }
    }

    fn walk(
        buyer: &'static str,
        people: &[ChainMember<&'static str>],
    ) -> Result<ReferralChain<&'static str>, ChainError<&'static str>> {
        let by_id: HashMap<_, _> = people.iter().map(|m| (m.id, m.clone())).collect();
        ReferralChain::walk(&buyer, |id| by_id.get(id).cloned())
    }

    #[test]
    fn walks_nearest_first_to_the_root() {
        let chain = walk(
            "b",
            &[
                member("b", Some("p")),
                member("p", Some("g")),
                member("g", None),
            ],
        )
        .unwrap();
        let ids: Vec<_> = chain.members().iter().map(|m| m.id).collect();
        assert_eq!(ids, ["b", "p", "g"]);
        assert_eq!(chain.end(), &ChainEnd::Root);
        assert_eq!(chain.ancestors().len(), 2);
    }

    #[test]
    fn a_missing_parent_ends_the_walk() {
        let chain = walk("b", &[member("b", Some("p")), member("p", Some("ghost"))]).unwrap();
        assert_eq!(chain.members().len(), 2);
        assert_eq!(chain.end(), &ChainEnd::MissingParent("ghost"));
    }

    #[test]
    fn a_customer_seen_twice_is_a_cycle() {
        let people = [
            member("b", Some("p")),
            member("p", Some("g")),
            member("g", Some("p")),
        ];
        assert_eq!(walk("b", &people), Err(ChainError::Cycle("p")));
        assert_eq!(
            walk("s", &[member("s", Some("s"))]),
            Err(ChainError::Cycle("s"))
        );
    }

    #[test]
    fn an_unknown_buyer_is_an_error() {
        assert_eq!(walk("x", &[]), Err(ChainError::UnknownBuyer("x")));
    }
}
