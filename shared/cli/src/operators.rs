//! The operators' commands on the shared database: `mall customers`, `mall audit`, `mall
//! cutover check`, `mall jobs status` and `mall jobs redrive` (the same store code as the
//! `retry-failed` function).

use crate::session::{connect_from_env, print_report};
use crate::tables;
use crate::JobsAction;

pub fn customers(limit: i64, json: bool) -> anyhow::Result<()> {
    let (runtime, store) = connect_from_env()?;
    let customers = runtime.block_on(store.operators().list_customers(limit))?;
    let names: std::collections::HashMap<_, _> = customers
        .iter()
        .map(|c| (c.id, c.username.as_str()))
        .collect();
    let rows: Vec<serde_json::Value> = customers
        .iter()
        .map(|c| {
            serde_json::json!({
                "id": c.id.to_hex(),
                "username": c.username,
                "referrer": c.parent_customer.map(|p| names.get(&p).map_or_else(|| p.to_hex(), |n| (*n).to_owned())),
                "level": c.level_letter,
                "points": c.points.to_string(),
                "active": c.referral_status == mall_store::REFERRAL_ACTIVE,
                "verified": c.is_verified,
            })
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<24}  {:<16}  {:<16}  {:<5}  {:>14}  STATUS",
        "ID", "USERNAME", "REFERRER", "LEVEL", "POINTS"
    );
    for c in &customers {
        let referrer = c
            .parent_customer
            .map_or("-", |p| names.get(&p).copied().unwrap_or("?"));
        let status = match (
            c.referral_status == mall_store::REFERRAL_ACTIVE,
            c.is_verified,
        ) {
            (true, true) => "active",
            (true, false) => "unverified",
            (false, _) => "inactive",
        };
        println!(
            "{:<24}  {:<16}  {:<16}  {:<5}  {:>14}  {status}",
            c.id.to_hex(),
            c.username,
            referrer,
            c.level_letter.to_string(),
            c.points.to_string()
        );
    }
    Ok(())
}

pub fn audit(json: bool) -> anyhow::Result<()> {
    let (runtime, store) = connect_from_env()?;
    let report = runtime.block_on(store.operators().audit())?;
    print_report(&report, json, tables::audit)?;
    let violations = report.violations.len();
    anyhow::ensure!(violations == 0, "{violations} invariant violation(s)");
    Ok(())
}

pub fn cutover_check(json: bool) -> anyhow::Result<()> {
    let (runtime, store) = connect_from_env()?;
    let env = mall_runtime::Env::process();
    let queue = mall_runtime::config::queue_settings(&env)?;
    let policy = mall_runtime::config::reward_config(&env)?.policy;
    let mut report = runtime.block_on(store.operators().cutover_check(
        mall_store::bson::DateTime::now(),
        queue.lease,
        queue.level_gifts_allowed,
    ))?;
    report
        .warnings
        .extend(mall_store::app_jobs_rules_differ(&policy));
    print_report(&report, json, tables::cutover)?;
    let blockers = report.blockers.len();
    anyhow::ensure!(blockers == 0, "{blockers} blocker(s): not ready to switch");
    Ok(())
}

pub fn jobs(action: JobsAction) -> anyhow::Result<()> {
    use mall_store::bson::DateTime;
    use mall_store::{RedriveInput, RedriveRequest};

    match action {
        JobsAction::Status { json } => {
            let (runtime, store) = connect_from_env()?;
            let status = runtime.block_on(store.operators().queue_status(DateTime::now()))?;
            print_report(&status, json, tables::status)?;
        }
        JobsAction::Redrive {
            ids,
            all,
            failed_before,
            error_contains,
            limit,
            reason,
            dry_run,
            json,
        } => {
            let request = RedriveRequest::parse(RedriveInput {
                job_ids: (!all).then_some(ids),
                all,
                failed_before,
                error_contains,
                limit: all.then_some(limit),
                reason,
                dry_run,
            })?;
            // Connected only once the request is valid: a bad request changes nothing.
            let (runtime, store) = connect_from_env()?;
            let report = runtime.block_on(store.operators().redrive(&request, DateTime::now()))?;
            print_report(&report, json, tables::redrive)?;
        }
    }
    Ok(())
}
