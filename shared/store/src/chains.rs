//! Referral chains found by `_id` probes alone, whatever the size of the customer collection.
//!
//! A batch needs each ancestor of its buyers once. This module keeps the forest's parent links
//! that this execution environment has seen ([`ParentLinks`], shared by every clone of a
//! [`Store`]) and learns the missing ones before a batch's transaction starts: level by level
//! from all of the batch's unknown customers at once (`_id: {$in: …}`), each round trip climbing
//! [`LEVELS_PER_ROUND_TRIP`] levels through nested `$lookup`s on `_id`, so shared ancestors are
//! read once per round and a chain of depth d costs about d / 16 round trips, once per
//! environment. Nothing here touches a customer off the chains.
//!
//! Guarantees: the links are a guide, never a source of truth. The batch reads every chain member
//! in its transaction's snapshot by `_id` (one `$lookup` for all) and follows the parents it
//! actually read; a parent that changed, or a customer the links do not know yet (a new signup),
//! is read again in the same snapshot ([`Rewards::confirm_chains`](crate::rewards::Rewards)). So the money a batch moves
//! depends only on its snapshot, as with a server-side walk, and a stale link costs one round
//! trip, not a wrong payout.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use futures_util::TryStreamExt;
use mongodb::bson::{doc, oid::ObjectId, Bson, Document};

use mongodb::Collection;

use crate::collections;
use crate::error::StoreError;

/// Levels a pre-walk round trip climbs above the customers it asks for, through nested
/// `$lookup`s (mongod allows 20 nested sub-pipelines; 15 stays well inside).
pub const LEVELS_PER_ROUND_TRIP: usize = 15;

/// Links kept at most; past it the cache starts again (about 40 bytes a link: 20 MB).
const MAX_LINKS: usize = 500_000;

/// The parent links this environment has read: customer → its parent (`None` for a root).
#[derive(Default)]
pub struct ParentLinks {
    links: Mutex<HashMap<ObjectId, Option<ObjectId>>>,
}

impl std::fmt::Debug for ParentLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParentLinks")
            .field("links", &self.len())
            .finish()
    }
}

/// The customers on some buyers' chains as far as the links know them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct KnownChains {
    /// Every customer met, buyers included, each once.
    pub members: Vec<ObjectId>,
    /// Customers met whose parent link is not known yet.
    pub unknown: Vec<ObjectId>,
}

impl ParentLinks {
    /// How many links are kept.
    pub fn len(&self) -> usize {
        self.links
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no link is kept.
    #[cfg(feature = "test-support")]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every link (a test's cold start).
    #[cfg(feature = "test-support")]
    pub fn clear(&self) {
        self.links
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Records what was read of customers' parents.
    pub fn learn(&self, read: impl IntoIterator<Item = (ObjectId, Option<ObjectId>)>) {
        let mut links = self.links.lock().unwrap_or_else(PoisonError::into_inner);
        for (id, parent) in read {
            if links.len() >= MAX_LINKS && !links.contains_key(&id) {
                links.clear();
            }
            links.insert(id, parent);
        }
    }

    /// Follows the known links up from each buyer, at most `max_steps` above it; a customer in
    /// `absent` (not found) ends its chain.
    pub fn chains(
        &self,
        buyers: &[ObjectId],
        absent: &HashSet<ObjectId>,
        max_steps: usize,
    ) -> KnownChains {
        let links = self.links.lock().unwrap_or_else(PoisonError::into_inner);
        let mut known = KnownChains::default();
        walk_chains(buyers, max_steps, |current| {
            known.members.push(current);
            if absent.contains(&current) {
                return None;
            }
            match links.get(&current) {
                None => {
                    known.unknown.push(current);
                    None
                }
                Some(parent) => *parent,
            }
        });
        known
    }
}

/// Walks each buyer's chain up, at most `max_steps` above it, visiting every customer once
/// across all the chains: `parent_of` is given each customer in turn and names the next one up,
/// or `None` where the chain ends (a root, or the edge of what is known).
pub(crate) fn walk_chains(
    buyers: &[ObjectId],
    max_steps: usize,
    mut parent_of: impl FnMut(ObjectId) -> Option<ObjectId>,
) {
    let mut seen = HashSet::new();
    for &buyer in buyers {
        let mut current = buyer;
        for _ in 0..=max_steps {
            if !seen.insert(current) {
                break;
            }
            match parent_of(current) {
                Some(parent) => current = parent,
                None => break,
            }
        }
    }
}

/// The nested pipeline that reads a customer's parent link and `levels` more above it.
fn climb(levels: usize) -> Vec<Document> {
    let link = doc! {"$project": {"parentCustomer": 1}};
    let mut pipeline = vec![link.clone()];
    for _ in 0..levels {
        pipeline = vec![
            link.clone(),
            doc! {"$lookup": {
                "from": collections::CUSTOMERS,
                "localField": "parentCustomer", "foreignField": "_id",
                "pipeline": pipeline,
                "as": "up",
            }},
        ];
    }
    pipeline
}

/// A customer's parent as a link: an ObjectId, or none (a root; a parent of another type is
/// left for the batch's own reading to refuse).
fn parent_of(customer: &Document) -> Option<ObjectId> {
    match customer.get("parentCustomer") {
        Some(Bson::ObjectId(parent)) => Some(*parent),
        _ => None,
    }
}

/// Every customer of a climb's answer with its parent, the nested ones included.
fn flatten(customer: &Document, into: &mut Vec<(ObjectId, Option<ObjectId>)>) {
    if let Ok(id) = customer.get_object_id("_id") {
        into.push((id, parent_of(customer)));
    }
    if let Ok(up) = customer.get_array("up") {
        for above in up.iter().filter_map(Bson::as_document) {
            flatten(above, into);
        }
    }
}

impl ParentLinks {
    /// Learns, from `customers`, the parent links of every customer on the buyers' chains that
    /// this environment does not know yet, outside any transaction (the batch confirms them in
    /// its snapshot). Returns the round trips it took.
    pub(crate) async fn learn_chains(
        &self,
        customers: &Collection<Document>,
        buyers: &[ObjectId],
        max_steps: usize,
    ) -> Result<usize, StoreError> {
        let mut absent = HashSet::new();
        let mut trips = 0;
        // Each round climbs at least one level of every chain: bounded by the longest allowed.
        while trips <= max_steps {
            let unknown = self.chains(buyers, &absent, max_steps).unknown;
            if unknown.is_empty() {
                break;
            }
            let mut pipeline = vec![doc! {"$match": {"_id": {"$in": &unknown}}}];
            pipeline.extend(climb(LEVELS_PER_ROUND_TRIP));
            let answers: Vec<Document> = customers.aggregate(pipeline).await?.try_collect().await?;
            trips += 1;
            let mut read = Vec::new();
            for answer in &answers {
                flatten(answer, &mut read);
            }
            let found: HashSet<ObjectId> = read.iter().map(|(id, _)| *id).collect();
            absent.extend(unknown.into_iter().filter(|id| !found.contains(id)));
            self.learn(read);
        }
        Ok(trips)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<ObjectId> {
        (0..n).map(|_| ObjectId::new()).collect()
    }

    #[test]
    fn chains_follow_known_links_and_stop_at_the_first_unknown() {
        let c = ids(4);
        let links = ParentLinks::default();
        // c2 → c1 → c0 (a root); c3's link is unknown.
        links.learn([(c[2], Some(c[1])), (c[1], Some(c[0])), (c[0], None)]);
        let known = links.chains(&[c[2], c[3]], &HashSet::new(), 100);
        assert_eq!(known.members, vec![c[2], c[1], c[0], c[3]]);
        assert_eq!(known.unknown, vec![c[3]]);
    }

    #[test]
    fn shared_ancestors_are_met_once_and_cycles_end() {
        let c = ids(3);
        let links = ParentLinks::default();
        links.learn([(c[0], Some(c[1])), (c[1], Some(c[0])), (c[2], Some(c[1]))]);
        let known = links.chains(&[c[0], c[2]], &HashSet::new(), 100);
        assert_eq!(known.members, vec![c[0], c[1], c[2]]);
        assert!(known.unknown.is_empty());
    }

    #[test]
    fn a_walk_is_bounded_and_absent_customers_end_it() {
        let c = ids(5);
        let links = ParentLinks::default();
        links.learn((0..4).map(|i| (c[i], Some(c[i + 1]))));
        let bounded = links.chains(&[c[0]], &HashSet::new(), 2);
        assert_eq!(bounded.members, vec![c[0], c[1], c[2]]);
        let absent = HashSet::from([c[4]]);
        let ended = links.chains(&[c[0]], &absent, 100);
        assert_eq!(ended.members, c);
        assert!(ended.unknown.is_empty());
    }

    #[test]
    fn a_climb_nests_one_lookup_per_level() {
        let pipeline = climb(3);
        let mut depth = 0;
        let mut stage = pipeline;
        while let Some(lookup) = stage.get(1).and_then(|s| s.get_document("$lookup").ok()) {
            depth += 1;
            stage = lookup
                .get_array("pipeline")
                .unwrap()
                .iter()
                .filter_map(|s| s.as_document().cloned())
                .collect();
        }
        assert_eq!(depth, 3);
    }

    #[test]
    fn flatten_reads_every_level_and_non_id_parents_as_roots() {
        let (a, b) = (ObjectId::new(), ObjectId::new());
        let answer = doc! {"_id": a, "parentCustomer": b, "up": [
            {"_id": b, "parentCustomer": "not an id", "up": []},
        ]};
        let mut read = Vec::new();
        flatten(&answer, &mut read);
        assert_eq!(read, vec![(a, Some(b)), (b, None)]);
    }
}
