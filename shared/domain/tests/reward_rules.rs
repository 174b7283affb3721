//! Property tests of the reward rules over random referral trees and random valid policies.
//!
//! The centrepiece compares the simulator against `reference`, a deliberately naive second
//! implementation of SPEC §6.3 written from the text alone (lists instead of level counts, a
//! mutable level map instead of a promotion pass, its own amount formatting), so that the
//! production code's shortcuts are checked against the rule as written.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::collections::{HashMap, HashSet};

use mall_domain::scenario::{simulate_json, Scenario};
use mall_domain::{Level, MilliPoints, PayoutKind, RewardPolicy, SkipReason};
use proptest::prelude::*;
use serde_json::{json, Value};

const CASES: u32 = 2_000;

/// A random customer as the generator makes it; `parent` indexes into the list, or names a
/// customer that does not exist.
#[derive(Clone, Debug)]
enum Parent {
    Root,
    Index(usize),
    Missing,
}

#[derive(Clone, Debug)]
struct GenCustomer {
    parent: Parent,
    level: u8,
    active: bool,
    verified: bool,
}

#[derive(Clone, Debug)]
struct GenPolicy {
    app: u32,
    gifts: u32,
    tree: u32,
    level: u32,
    j_shared: u32,
    directs: u32,
}

fn policy_strategy() -> impl Strategy<Value = GenPolicy> {
    (
        0u32..=10_000,
        0u32..=10_000,
        0u32..=1_111,
        0u32..=10_000,
        1u32..=4,
    )
        .prop_map(|(tree, gifts_raw, level, j_raw, directs)| {
            let gifts = gifts_raw % (10_001 - tree);
            let j_shared = j_raw % (10_001 - 9 * level);
            GenPolicy {
                app: 10_000 - tree - gifts,
                gifts,
                tree,
                level,
                j_shared,
                directs,
            }
        })
}

/// Trees where customer i's parent has a larger index, so there is never a cycle. Levels lean
/// towards a few letters so that duplicates, J groups and promotions are common.
fn forest_strategy() -> impl Strategy<Value = Vec<GenCustomer>> {
    (2usize..40).prop_flat_map(|n| {
        proptest::collection::vec(
            (
                0usize..n,
                0u8..10,
                prop_oneof![3 => Just(9u8), 7 => 0u8..10],
                proptest::bool::weighted(0.8),
                proptest::bool::weighted(0.8),
                0u8..20,
            ),
            n,
        )
        .prop_map(move |raw| {
            raw.into_iter()
                .enumerate()
                .map(|(i, (parent_pick, kind, level, active, verified, roll))| {
                    let parent = if i + 1 >= n || roll == 0 {
                        Parent::Root
                    } else if roll == 1 {
                        Parent::Missing
                    } else {
                        // Mostly the next few customers, so chains are long.
                        let span = (n - i - 1).min(if kind < 7 { 3 } else { n });
                        Parent::Index(i + 1 + parent_pick % span)
                    };
                    GenCustomer {
                        parent,
                        level,
                        active,
                        verified,
                    }
                })
                .collect()
        })
    })
}

fn reward_strategy() -> impl Strategy<Value = i64> {
    prop_oneof![
        2 => 0i64..=2_000,
        5 => 0i64..=10_000_000,
        1 => 0i64..=i64::MAX,
        1 => Just(i64::MAX),
    ]
}

fn level_letter(level: u8) -> String {
    char::from(b'A' + level).to_string()
}

fn scenario_json(
    policy: &GenPolicy,
    buyer: usize,
    reward: i64,
    customers: &[GenCustomer],
) -> Value {
    let customers: Vec<Value> = customers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let parent = match c.parent {
                Parent::Root => Value::Null,
                Parent::Index(p) => json!(format!("c{p}")),
                Parent::Missing => json!(format!("ghost{i}")),
            };
            json!({"id": format!("c{i}"), "parent": parent, "level": level_letter(c.level),
                   "active": c.active, "verified": c.verified})
        })
        .collect();
    json!({
        "policy": {"appBps": policy.app, "giftsBps": policy.gifts, "treeBps": policy.tree,
                   "levelBps": policy.level, "jSharedBps": policy.j_shared,
                   "promotionDirects": policy.directs},
        "buyer": format!("c{buyer}"),
        "rewardPoints": MilliPoints::from_milli(reward).to_string(),
        "customers": customers,
    })
}

/// SPEC §6.3 read literally, on the scenario JSON, with its own arithmetic and formatting.
mod reference {
    use super::*;

    fn fmt(milli: i128) -> String {
        format!("{}.{:03}", milli / 1000, milli % 1000)
    }

    fn floor_share(pool: i128, bps: i128) -> i128 {
        pool * bps / 10_000
    }

    pub fn simulate(scenario: &Value) -> Result<Value, String> {
        let policy = &scenario["policy"];
        let bps = |name: &str| i128::from(policy[name].as_i64().unwrap_or(0));
        let k = usize::try_from(policy["promotionDirects"].as_u64().unwrap_or(2)).unwrap();
        let text = scenario["rewardPoints"].as_str().unwrap();
        let (whole, frac) = text.split_once('.').unwrap();
        let r: i128 = whole.parse::<i128>().unwrap() * 1000 + frac.parse::<i128>().unwrap();

        let customers = scenario["customers"].as_array().unwrap();
        let by_id: HashMap<&str, &Value> = customers
            .iter()
            .map(|c| (c["id"].as_str().unwrap(), c))
            .collect();
        let mut level: HashMap<&str, u8> = customers
            .iter()
            .map(|c| {
                (
                    c["id"].as_str().unwrap(),
                    c["level"].as_str().unwrap().as_bytes()[0] - b'A',
                )
            })
            .collect();

        // The chain: buyer, then parents, nearest first.
        let buyer = scenario["buyer"].as_str().unwrap();
        let mut chain = vec![buyer];
        loop {
            let last = by_id[chain.last().unwrap()];
            let Some(parent) = last["parent"].as_str() else {
                break;
            };
            if chain.contains(&parent) {
                return Err("cycle".into());
            }
            if !by_id.contains_key(parent) {
                break;
            }
            chain.push(parent);
        }

        // Promotion, bottom-up, each step seeing the ones before.
        let mut promotions = vec![];
        for &c in &chain {
            let mut directs: Vec<u8> = customers
                .iter()
                .filter(|d| d["parent"].as_str() == Some(c))
                .map(|d| level[d["id"].as_str().unwrap()])
                .collect();
            if directs.len() < k {
                continue;
            }
            directs.sort_unstable_by(|a, b| b.cmp(a));
            let candidate = (directs[k - 1] + 1).min(9);
            let current = level[c];
            if candidate > current {
                level.insert(c, candidate);
                promotions.push(json!({"id": c, "from": level_letter(current),
                                       "to": level_letter(candidate)}));
            }
        }

        // Distribution.
        let tree = floor_share(r, bps("treeBps"));
        let gifts = floor_share(r, bps("giftsBps"));
        let app = r - tree - gifts;
        let bucket = floor_share(tree, bps("levelBps"));
        let j_bucket = floor_share(tree, bps("jSharedBps"));
        let mut paid_letters = HashSet::new();
        let mut payouts = vec![];
        let mut skipped = vec![];
        let mut j_members = vec![];
        let mut distributed = 0i128;
        for &a in &chain[1..] {
            let c = by_id[a];
            if c["active"] != json!(true) {
                skipped.push(json!({"id": a, "reason": "inactive"}));
            } else if c["verified"] != json!(true) {
                skipped.push(json!({"id": a, "reason": "unverified"}));
            } else if level[a] == 9 {
                j_members.push(a);
            } else if !paid_letters.insert(level[a]) {
                skipped.push(json!({"id": a, "reason": "duplicate_level"}));
            } else if bucket > 0 {
                distributed += bucket;
                payouts.push(
                    json!({"id": a, "level": level_letter(level[a]), "kind": "level",
                                    "amount": fmt(bucket)}),
                );
            }
        }
        if !j_members.is_empty() {
            let each = j_bucket / j_members.len() as i128;
            if each > 0 {
                for a in &j_members {
                    distributed += each;
                    payouts.push(json!({"id": a, "level": "J", "kind": "shared",
                                        "amount": fmt(each), "sharedWith": j_members.len()}));
                }
            }
        }
        Ok(json!({
            "split": {"app": fmt(app), "gifts": fmt(gifts), "tree": fmt(tree)},
            "promotions": promotions,
            "payouts": payouts,
            "skipped": skipped,
            "treeDistributed": fmt(distributed),
            "treeUnused": fmt(tree - distributed),
            "giftsFinal": fmt(gifts + tree - distributed),
            "appFinal": fmt(app),
        }))
    }
}

fn simulate(scenario: &Value) -> Result<Value, String> {
    simulate_json(&scenario.to_string(), None)
        .map(|text| serde_json::from_str(&text).unwrap())
        .map_err(|e| e.to_string())
}

fn plan_of(scenario: &Value) -> mall_domain::RewardPlan<String> {
    Scenario::from_json(&scenario.to_string())
        .unwrap()
        .plan()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn simulator_agrees_with_the_literal_reading_of_the_spec(
        policy in policy_strategy(),
        customers in forest_strategy(),
        buyer_pick in any::<prop::sample::Index>(),
        reward in reward_strategy(),
    ) {
        let buyer = buyer_pick.index(customers.len());
        let scenario = scenario_json(&policy, buyer, reward, &customers);
        prop_assert_eq!(simulate(&scenario), reference::simulate(&scenario));
    }

    #[test]
    fn every_plan_conserves_the_reward_to_the_milli_point(
        policy in policy_strategy(),
        customers in forest_strategy(),
        buyer_pick in any::<prop::sample::Index>(),
        reward in reward_strategy(),
    ) {
        let buyer = buyer_pick.index(customers.len());
        let plan = plan_of(&scenario_json(&policy, buyer, reward, &customers));
        prop_assert!(plan.conserves());
        let paid: i128 = plan.payouts.iter().map(|p| i128::from(p.amount.as_milli())).sum();
        let total = i128::from(plan.app_final.as_milli()) + i128::from(plan.gifts_final.as_milli()) + paid;
        prop_assert_eq!(total, i128::from(reward));
        prop_assert_eq!(
            plan.split.total().unwrap().as_milli(), reward, "the split adds up to R");
        prop_assert!(plan.payouts.iter().all(|p| p.amount.as_milli() > 0), "no zero entries");
        prop_assert!(!plan.tree_unused.is_negative());
    }

    #[test]
    fn only_active_verified_ancestors_are_paid_and_each_letter_once(
        policy in policy_strategy(),
        customers in forest_strategy(),
        buyer_pick in any::<prop::sample::Index>(),
        reward in reward_strategy(),
    ) {
        let buyer = buyer_pick.index(customers.len());
        let plan = plan_of(&scenario_json(&policy, buyer, reward, &customers));
        let mut letters = HashSet::new();
        for payout in &plan.payouts {
            let index: usize = payout.id[1..].parse().unwrap();
            prop_assert_ne!(index, buyer, "the buyer is never paid");
            prop_assert!(customers[index].active && customers[index].verified);
            if payout.kind == PayoutKind::Level {
                prop_assert!(payout.level != Level::J);
                prop_assert!(letters.insert(payout.level), "letter {} paid twice", payout.level);
            }
        }
        let ids: HashSet<_> = plan.payouts.iter().map(|p| &p.id).collect();
        prop_assert_eq!(ids.len(), plan.payouts.len(), "nobody is paid twice");
        for skip in &plan.skipped {
            let index: usize = skip.id[1..].parse().unwrap();
            let c = &customers[index];
            let expected_first = if !c.active { Some(SkipReason::Inactive) }
                else if !c.verified { Some(SkipReason::Unverified) } else { None };
            if let Some(reason) = expected_first {
                prop_assert_eq!(skip.reason, reason);
            } else {
                prop_assert_eq!(skip.reason, SkipReason::DuplicateLevel);
            }
        }
    }

    #[test]
    fn the_j_group_shares_equally_and_its_remainder_goes_to_gifts(
        policy in policy_strategy(),
        customers in forest_strategy(),
        buyer_pick in any::<prop::sample::Index>(),
        reward in reward_strategy(),
    ) {
        let buyer = buyer_pick.index(customers.len());
        let plan = plan_of(&scenario_json(&policy, buyer, reward, &customers));
        let shared: Vec<_> = plan.payouts.iter()
            .filter(|p| matches!(p.kind, PayoutKind::Shared { .. })).collect();
        let first_shared = plan.payouts.iter()
            .position(|p| matches!(p.kind, PayoutKind::Shared { .. }))
            .unwrap_or(plan.payouts.len());
        prop_assert_eq!(first_shared + shared.len(), plan.payouts.len(), "J entries come last");
        if let Some(first) = shared.first() {
            let members = u32::try_from(shared.len()).unwrap();
            prop_assert!(shared.iter().all(|p| p.amount == first.amount));
            let expected_kind = PayoutKind::Shared { members };
            prop_assert!(shared.iter().all(|p| p.kind == expected_kind));
            let j_bucket = plan.split.tree.share(RewardPolicy::new(
                policy.app, policy.gifts, policy.tree, policy.level, policy.j_shared,
                policy.directs).unwrap().j_shared_bps());
            let shared_total = first.amount.checked_mul(i64::from(members)).unwrap();
            prop_assert_eq!(shared_total.checked_add(plan.j_remainder).unwrap(), j_bucket);
            prop_assert!(plan.j_remainder.as_milli() < i64::from(members));
        }
    }

    #[test]
    fn levels_only_go_up_and_one_pass_reaches_the_fixed_point(
        policy in policy_strategy(),
        customers in forest_strategy(),
        buyer_pick in any::<prop::sample::Index>(),
    ) {
        let buyer = buyer_pick.index(customers.len());
        let scenario = scenario_json(&policy, buyer, 100_000, &customers);
        let plan = plan_of(&scenario);
        let mut again = scenario.clone();
        for promotion in &plan.promotions {
            prop_assert!(promotion.to > promotion.from);
            let index: usize = promotion.id[1..].parse().unwrap();
            again["customers"][index]["level"] = json!(promotion.to.to_string());
        }
        prop_assert!(plan_of(&again).promotions.is_empty(), "a second pass promotes nobody");
    }

    #[test]
    fn a_cycle_on_the_chain_is_refused_by_both_readings(
        customers in forest_strategy(),
        buyer_pick in any::<prop::sample::Index>(),
        back_pick in any::<prop::sample::Index>(),
    ) {
        // Point the chain's root back at a member of the chain.
        let buyer = buyer_pick.index(customers.len());
        let mut chain = vec![buyer];
        let mut customers = customers;
        while let Parent::Index(p) = customers[*chain.last().unwrap()].parent {
            chain.push(p);
        }
        let root = *chain.last().unwrap();
        customers[root].parent = Parent::Index(chain[back_pick.index(chain.len())]);
        let policy = GenPolicy { app: 5000, gifts: 1500, tree: 3500, level: 500, j_shared: 500, directs: 2 };
        let scenario = scenario_json(&policy, buyer, 100_000, &customers);
        prop_assert!(simulate(&scenario).unwrap_err().contains("cycle"));
        prop_assert!(reference::simulate(&scenario).is_err());
    }

    #[test]
    fn amounts_round_trip_through_their_decimal_form(milli in any::<i64>()) {
        let amount = MilliPoints::from_milli(milli);
        prop_assert_eq!(amount.to_string().parse::<MilliPoints>(), Ok(amount));
        prop_assert_eq!(amount.to_compact_string().parse::<MilliPoints>(), Ok(amount));
    }

    #[test]
    fn arithmetic_overflow_is_an_error_never_a_wrap(a in any::<i64>(), b in any::<i64>()) {
        let (x, y) = (MilliPoints::from_milli(a), MilliPoints::from_milli(b));
        let exact = |v: i128| i64::try_from(v).ok().map(MilliPoints::from_milli).ok_or(mall_domain::MoneyError::Overflow);
        prop_assert_eq!(x.checked_add(y), exact(i128::from(a) + i128::from(b)));
        prop_assert_eq!(x.checked_sub(y), exact(i128::from(a) - i128::from(b)));
        prop_assert_eq!(x.checked_mul(b), exact(i128::from(a) * i128::from(b)));
    }
}

#[test]
fn spec_section_9_example_is_reproduced_exactly() {
    let scenario = include_str!("../../../infra/scenarios/spec-section-9.json");
    let expected: Value = serde_json::from_str(include_str!(
        "../../../infra/scenarios/spec-section-9.expected.json"
    ))
    .unwrap();
    let actual: Value = serde_json::from_str(&simulate_json(scenario, None).unwrap()).unwrap();
    assert_eq!(actual, expected);
}

#[test]
fn invalid_scenarios_are_refused_with_a_reason() {
    let cases = [
        (
            r#"{"buyer": "x", "rewardPoints": "1", "customers": []}"#,
            "does not exist",
        ),
        (
            r#"{"buyer": "a", "rewardPoints": "1", "customers": [
                {"id": "a", "level": "K", "active": true, "verified": true}]}"#,
            "unknown variant `K`",
        ),
        (
            r#"{"buyer": "a", "rewardPoints": "1", "customers": [
                {"id": "a", "active": true, "verified": true},
                {"id": "a", "active": true, "verified": true}]}"#,
            "more than once",
        ),
        (
            r#"{"policy": {"treeBps": 9000}, "buyer": "a", "rewardPoints": "1", "customers": [
                {"id": "a", "active": true, "verified": true}]}"#,
            "must equal 10000",
        ),
        (
            r#"{"buyer": "a", "rewardPoints": "1.0001", "customers": [
                {"id": "a", "active": true, "verified": true}]}"#,
            "more than 3 decimal places",
        ),
        (
            r#"{"buyer": "a", "rewardPoints": "-1", "customers": [
                {"id": "a", "active": true, "verified": true}]}"#,
            "must not be negative",
        ),
        (
            r#"{"buyer": "a", "rewardPoints": 100, "customers": [
                {"id": "a", "active": true, "verified": true}]}"#,
            "invalid type",
        ),
        (
            r#"{"buyer": "a", "rewardPoints": "1", "customers": [], "extra": 1}"#,
            "unknown field",
        ),
        ("not json", "invalid scenario"),
    ];
    for (input, expected) in cases {
        let err = simulate_json(input, None).unwrap_err().to_string();
        assert!(
            err.contains(expected),
            "{input}: {err:?} should mention {expected:?}"
        );
        assert!(!err.contains('\n'), "one line: {err:?}");
    }
}
