//! `mall`: the command for operators and developers.
//!
//! - `mall simulate [FILE]` runs the pure reward rules on a SPEC §9 scenario (from FILE, or
//!   standard input when FILE is absent or `-`) and prints the report as JSON.
//! - `mall token --customer ID` mints a local HS256 bearer token for the checkout function
//!   running with `LOCAL_JWT_SECRET` (local development only).
//! - `mall drain` drains the reward queue once with the worker's own code and configuration,
//!   against `MONGODB_URI`, and prints the summary.
//! - `mall env` prints every environment variable the binaries read, as the README's table.
//! - `mall demo-seed` puts demo data (a referral tree, products, a cart) into an empty database
//!   and prints the demo buyer's id; on a database that has it already, it only refills the cart.
//! - `mall customers` lists customers with their level and wallet (oldest first; `--json`).
//! - `mall audit` reads the whole database and checks its invariants (one job per purchase, every
//!   completed reward conserved to the milli-point, no duplicate payout, no wallet below zero,
//!   every dead job with its errors); exit status 1 when anything is violated.
//! - `mall cutover check` reports, read-only, what the shared database holds before the functions
//!   take over from the original worker (amount types, the original's jobs and their fate,
//!   indexes, unreadable records, blockers); exit status 1 when anything blocks the switch.
//! - `mall jobs status` and `mall jobs redrive …` are the operators' `retry-failed` actions run
//!   from a shell with database access: the same store code, tables by default, `--json` for
//!   scripts.
//!
//! On invalid input a command prints one line on standard error, nothing on standard output, and
//! exits non-zero.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "mall",
    version,
    about = "Mall checkout and rewards: operator and developer tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the reward rules on a JSON scenario and print the split, promotions and payouts.
    Simulate {
        /// Scenario file; standard input when absent or `-`.
        file: Option<PathBuf>,
        /// For a scenario of the app's current economy that carries no `settings`: the admin's
        /// settings stored now (MONGODB_URI), read as a checkout reads them. Read-only.
        #[arg(long)]
        live_settings: bool,
    },
    /// Mint a bearer token in the mobile app's own format (HS256 with the app's secret:
    /// Customer_id, username, Type, iat, exp) for a checkout function run with LOCAL_JWT_SECRET.
    Token {
        /// The customer's ObjectId (24 hex digits).
        #[arg(long)]
        customer: String,
        /// The `username` claim the app puts in its tokens.
        #[arg(long, default_value = "customer")]
        username: String,
        /// The `Type` claim: `Customer` for the app's customers (anything else is refused with
        /// 403, as an admin's token would be).
        #[arg(long = "type", default_value = "Customer")]
        token_type: String,
        /// The signing secret; the function must run with the same LOCAL_JWT_SECRET.
        #[arg(long, env = "LOCAL_JWT_SECRET", hide_env_values = true)]
        secret: String,
        /// The claim that carries the customer id (CUSTOMER_ID_CLAIM).
        #[arg(long, env = "CUSTOMER_ID_CLAIM", default_value = mall_runtime::env::APP_CUSTOMER_CLAIM)]
        claim: String,
        /// Lifetime of the token in seconds.
        #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=604_800))]
        ttl_seconds: u64,
    },
    /// Queue status and re-drive of dead jobs, for operators (reads MONGODB_URI).
    Jobs {
        #[command(subcommand)]
        action: JobsAction,
    },
    /// List customers with their referrer, level and wallet, oldest first (reads MONGODB_URI).
    Customers {
        /// At most this many.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        limit: i64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check the database's invariants; exit 1 on any violation (reads MONGODB_URI).
    Audit {
        /// Print JSON instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Before switching from the original system: what the database holds (reads MONGODB_URI).
    Cutover {
        #[command(subcommand)]
        action: CutoverAction,
    },
    /// Seed demo data if the database has none (reads MONGODB_URI); print the demo buyer's id.
    DemoSeed,
    /// Print the environment variables the binaries read (defaults, allowed values, readers)
    /// as the README's Markdown table.
    Env,
    /// Drain the reward queue once with the worker's own drain and configuration (reads
    /// MONGODB_URI and the JOB_* and WORKER_* variables). Unlike a scheduled invocation it takes
    /// no drainer lease, so several may run at once (the batches' turn keeps them correct).
    Drain {
        /// Batches in flight at once (default: WORKER_CONCURRENCY or 4).
        #[arg(long)]
        concurrency: Option<usize>,
        /// Jobs per batch, 1 to 50 (default: WORKER_BATCH_SIZE or 50).
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=50))]
        batch_size: Option<u8>,
        /// Stop after this many claims (default: WORKER_MAX_JOBS or 1000).
        #[arg(long)]
        max_jobs: Option<usize>,
    },
}

#[derive(Subcommand)]
enum CutoverAction {
    /// Read-only report: amount types, the original's jobs, indexes, unreadable records and
    /// blockers; exit 1 when anything blocks the switch (uses JOB_LEASE_SECONDS).
    Check {
        /// Print JSON instead of a report.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum JobsAction {
    /// Counts per status, oldest pending age, expired leases, recent failures, processing times.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Put failed jobs back to pending (only failed jobs are ever touched).
    Redrive {
        /// A job to re-drive (repeatable).
        #[arg(long = "id", required_unless_present = "all", conflicts_with = "all")]
        ids: Vec<String>,
        /// Every failed job that matches the filters below.
        #[arg(long)]
        all: bool,
        /// Only jobs that failed before this RFC 3339 time (with --all).
        #[arg(long, requires = "all")]
        failed_before: Option<String>,
        /// Only jobs with an error message containing this text, case-insensitive (with --all).
        #[arg(long, requires = "all")]
        error_contains: Option<String>,
        /// At most this many jobs (with --all; 1 to 1000).
        #[arg(long, requires = "all", default_value_t = mall_store::DEFAULT_REDRIVE_LIMIT)]
        limit: usize,
        /// Why (kept on each job).
        #[arg(long)]
        reason: String,
        /// Report what would be re-driven, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Simulate {
            file,
            live_settings,
        } => simulate(file, live_settings),
        Command::Token {
            customer,
            username,
            token_type,
            secret,
            claim,
            ttl_seconds,
        } => token(
            &customer,
            &secret,
            &[
                (claim.as_str(), customer.as_str()),
                ("username", &username),
                ("Type", &token_type),
            ],
            ttl_seconds,
        ),
        Command::Drain {
            concurrency,
            batch_size,
            max_jobs,
        } => drain(concurrency, batch_size, max_jobs),
        Command::Env => {
            print!("{}", mall_runtime::env::markdown_table());
            Ok(())
        }
        Command::Jobs { action } => jobs(action),
        Command::DemoSeed => demo_seed(),
        Command::Audit { json } => audit(json),
        Command::Cutover {
            action: CutoverAction::Check { json },
        } => cutover_check(json),
        Command::Customers { limit, json } => customers(limit, json),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line, whatever the error chain: scripts and support tools read it.
            let message = format!("{err:#}").replace('\n', " ");
            eprintln!("mall: {message}");
            ExitCode::FAILURE
        }
    }
}

fn simulate(file: Option<PathBuf>, live_settings: bool) -> anyhow::Result<()> {
    let scenario = match file.filter(|path| path.as_os_str() != "-") {
        Some(path) => std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?,
        None => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read standard input")?;
            text
        }
    };
    let live = if live_settings {
        let (runtime, store) = connect_from_env()?;
        Some(runtime.block_on(store.operators().reward_settings_now())?)
    } else {
        None
    };
    let report = mall_domain::scenario::simulate_json(&scenario, live)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{report}").context("cannot write the report")?;
    Ok(())
}

/// Signs `claims` (the customer's id under its claim, `username`, `Type`) with `iat` and `exp`,
/// as the app's login does.
fn token(
    customer: &str,
    secret: &str,
    claims: &[(&str, &str)],
    ttl_seconds: u64,
) -> anyhow::Result<()> {
    let is_object_id = customer.len() == 24 && customer.bytes().all(|b| b.is_ascii_hexdigit());
    anyhow::ensure!(
        is_object_id,
        "--customer must be an ObjectId of 24 hex digits, got {customer:?}"
    );
    anyhow::ensure!(!secret.is_empty(), "the secret must not be empty");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs();
    let mut payload = serde_json::Map::new();
    for (name, value) in claims {
        payload.insert((*name).to_owned(), serde_json::Value::from(*value));
    }
    payload.insert("iat".into(), now.into());
    payload.insert("exp".into(), (now + ttl_seconds).into());
    let claims = serde_json::Value::Object(payload);
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .context("cannot sign the token")?;
    println!("{token}");
    Ok(())
}

fn drain(
    concurrency: Option<usize>,
    batch_size: Option<u8>,
    max_jobs: Option<usize>,
) -> anyhow::Result<()> {
    use reward_worker::drain::{drain_queue, StopReason, SystemClock};
    let config = reward_worker::WorkerConfig::read(&mall_runtime::Env::process())?;
    let mut limits = config.limits;
    limits.concurrency = concurrency.unwrap_or(limits.concurrency).max(1);
    limits.batch_size = batch_size.map_or(limits.batch_size, usize::from);
    limits.max_jobs = max_jobs.unwrap_or(limits.max_jobs);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let summary = runtime.block_on(async {
        let store = mall_store::Store::connect(&config.store).await?;
        store.ensure_indexes().await?;
        let clock = std::sync::Arc::new(SystemClock);
        anyhow::Ok(drain_queue(&store, config.queue, limits, clock).await)
    })?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    anyhow::ensure!(
        summary.stopped != Some(StopReason::DatabaseError),
        "the drain stopped on a database error (see the log)"
    );
    Ok(())
}

/// What every database command starts from: an async runtime and the store the environment names.
fn connect_from_env() -> anyhow::Result<(tokio::runtime::Runtime, mall_store::Store)> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let env = mall_runtime::Env::process();
    // As many connections as `mall drain` runs batches at once.
    let lanes = reward_worker::config::drain_limits(&env)?.concurrency;
    let config =
        mall_runtime::config::store_config(&env, u32::try_from(lanes).unwrap_or(u32::MAX))?;
    let store = runtime.block_on(mall_store::Store::connect(&config))?;
    Ok((runtime, store))
}

/// Prints a report as pretty JSON (`--json`), or as its plain-text table.
fn print_report<T: serde::Serialize>(
    report: &T,
    json: bool,
    table: fn(&T) -> String,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", table(report));
    }
    Ok(())
}

fn customers(limit: i64, json: bool) -> anyhow::Result<()> {
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

fn audit(json: bool) -> anyhow::Result<()> {
    let (runtime, store) = connect_from_env()?;
    let report = runtime.block_on(store.operators().audit())?;
    print_report(&report, json, tables::audit)?;
    let violations = report.violations.len();
    anyhow::ensure!(violations == 0, "{violations} invariant violation(s)");
    Ok(())
}

fn cutover_check(json: bool) -> anyhow::Result<()> {
    let (runtime, store) = connect_from_env()?;
    let env = mall_runtime::Env::process();
    let queue = mall_runtime::config::queue_settings(&env)?;
    let policy = mall_runtime::config::reward_policy(&env)?;
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

fn jobs(action: JobsAction) -> anyhow::Result<()> {
    use mall_store::bson::{oid::ObjectId, DateTime};
    use mall_store::{RedriveRequest, RedriveSelection};

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
            let selection = if all {
                RedriveSelection::Failed {
                    failed_before: failed_before
                        .as_deref()
                        .map(|t| {
                            DateTime::parse_rfc3339_str(t).with_context(|| {
                                format!("--failed-before {t:?} is not an RFC 3339 time")
                            })
                        })
                        .transpose()?,
                    error_contains,
                    limit,
                }
            } else {
                RedriveSelection::Ids(
                    ids.iter()
                        .map(|id| {
                            ObjectId::parse_str(id)
                                .with_context(|| format!("{id:?} is not a job id (24 hex digits)"))
                        })
                        .collect::<anyhow::Result<_>>()?,
                )
            };
            let request = RedriveRequest::new(selection, &reason, dry_run)?;
            // Connected only once the request is valid: a bad request changes nothing.
            let (runtime, store) = connect_from_env()?;
            let report = runtime.block_on(store.operators().redrive(&request, DateTime::now()))?;
            print_report(&report, json, tables::redrive)?;
        }
    }
    Ok(())
}

/// Plain-text tables for operators.
mod tables {
    use std::fmt::Write;

    use mall_store::{
        AuditReport, CutoverReport, IndexState, NotRedriven, QueueStatus, RedriveReport,
    };

    pub fn cutover(r: &CutoverReport) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}",
            if r.ready {
                "READY       nothing blocks the switch"
            } else {
                "NOT READY   see the blockers"
            }
        );
        for blocker in &r.blockers {
            let _ = writeln!(out, "BLOCKER     {blocker}");
        }
        for warning in &r.warnings {
            let _ = writeln!(out, "WARNING     {warning}");
        }
        let _ = writeln!(out, "\nAMOUNT TYPES");
        for f in &r.amount_types {
            let types: Vec<String> = f.types.iter().map(|(t, n)| format!("{t} {n}")).collect();
            let _ = writeln!(
                out,
                "  {:<40} {}",
                format!("{}.{}", f.collection, f.field),
                types.join(", ")
            );
        }
        let _ = writeln!(out, "\nTHE APP'S OWN JOBS");
        if r.legacy_jobs.is_empty() {
            let _ = writeln!(out, "  none");
        }
        for j in &r.legacy_jobs {
            let _ = writeln!(
                out,
                "  {:<9} {:<11} {:>6}  {}",
                j.era, j.status, j.count, j.fate
            );
        }
        if !r.seed_era_jobs.is_empty() {
            let _ = writeln!(out, "\nOPEN SEED-ERA JOBS (oldest first)");
            for j in &r.seed_era_jobs {
                let _ = writeln!(
                    out,
                    "  {}  {:<10} age {:>9} s  R {:>12}  attempts {}",
                    j.id, j.status, j.age_seconds, j.reward_points, j.attempts
                );
            }
        }
        if !r.redrivable_jobs.is_empty() {
            let _ = writeln!(out, "\nFAILED SEED-ERA JOBS PAYABLE NOW (re-drive them)");
            for id in &r.redrivable_jobs {
                let _ = writeln!(out, "  {id}");
            }
        }
        let p = &r.gifts_pool;
        let _ = writeln!(
            out,
            "\nGIFTS POOL  document {}   ledger (the app's formula) {}   not counted yet {} ({} entries)   {}",
            p.document.as_deref().unwrap_or("none yet"),
            p.ledger,
            p.uncounted,
            p.uncounted_entries,
            if p.agrees { "agree" } else { "DIFFER: see the warnings" }
        );
        let s = &r.settings;
        let _ = writeln!(
            out,
            "\nREWARD SETTINGS  {}",
            match (s.found, s.invalid_fields.is_empty()) {
                (false, _) => "no document: the app's defaults".to_owned(),
                (true, true) => "the admin's document".to_owned(),
                (true, false) => format!(
                    "the admin's document, with UNUSABLE fields ({}): see the warnings",
                    s.invalid_fields.join(", ")
                ),
            }
        );
        let _ = writeln!(
            out,
            "  tree {}   gifts {}   direct referral {}   app {} (configured {})",
            s.tree_share,
            s.gifts_share,
            s.referral_share,
            s.app_share_applied,
            s.app_share_configured
        );
        let _ = writeln!(
            out,
            "  signup gift {}   level gifts paid {}",
            s.signup_gift.as_deref().unwrap_or("off"),
            if s.level_gifts_paid.is_empty() {
                "none".to_owned()
            } else {
                s.level_gifts_paid
                    .iter()
                    .map(|(l, p)| format!("{l} {p}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        let _ = writeln!(out, "\nINDEXES");
        for i in &r.indexes {
            let state = match &i.state {
                IndexState::Present => "present".to_owned(),
                IndexState::Equivalent { existing } => format!("equivalent: {existing}"),
                IndexState::Missing => "missing: created at start-up".to_owned(),
                IndexState::Conflicting { existing, why } => {
                    format!("conflicting: {existing} ({why})")
                }
            };
            let _ = writeln!(
                out,
                "  {:<45} {}{}",
                format!("{}.{}", i.collection, i.name),
                state,
                if i.guarantee { "  [guarantee]" } else { "" }
            );
        }
        let _ = writeln!(out, "\nUNREADABLE RECORDS  {}", r.unreadable_count);
        for u in &r.unreadable {
            let _ = writeln!(out, "  {:<13} {}  {}", u.collection, u.id, u.problem);
        }
        out
    }

    pub fn audit(r: &AuditReport) -> String {
        let mut out = String::new();
        let j = &r.jobs_by_status;
        let _ = writeln!(
            out,
            "READ        customers {}   purchases {}   jobs {}   reward entries {}",
            r.customers, r.purchases, r.jobs, r.entries
        );
        let _ = writeln!(
            out,
            "JOBS        pending {}   processing {}   completed {}   failed {}   retired {}",
            j.pending, j.processing, j.completed, j.failed, r.jobs_retired
        );
        let _ = writeln!(
            out,
            "REWARDS     completed R total {} milli-points",
            r.rewards_completed_milli
        );
        if r.legacy_purchases > 0 || r.legacy_entries > 0 {
            let _ = writeln!(
                out,
                "LEGACY      purchases {}   reward entries {}   (the original system's, not checked)",
                r.legacy_purchases, r.legacy_entries
            );
        }
        for warning in &r.warnings {
            let _ = writeln!(out, "WARNING     {warning}");
        }
        if r.violations.is_empty() {
            let _ = writeln!(out, "OK          no invariant violated");
        } else {
            let _ = writeln!(out, "VIOLATIONS  {}", r.violations.len());
            for v in &r.violations {
                let line = serde_json::to_string(v).unwrap_or_else(|_| format!("{v:?}"));
                let _ = writeln!(out, "  {line}");
            }
        }
        out
    }

    fn or_dash<T: std::fmt::Display>(value: Option<T>) -> String {
        value.map_or_else(|| "-".to_owned(), |v| v.to_string())
    }

    pub fn status(s: &QueueStatus) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "JOBS        pending {}   processing {}   completed {}   failed {}",
            s.pending, s.processing, s.completed, s.failed
        );
        let _ = writeln!(
            out,
            "oldest pending   {} s",
            or_dash(s.oldest_pending_age_seconds)
        );
        let _ = writeln!(out, "expired leases   {}", s.expired_leases);
        let _ = writeln!(
            out,
            "processing time  avg {} ms   max {} ms",
            or_dash(s.processing_ms_avg),
            or_dash(s.processing_ms_max)
        );
        if s.recent_failures.is_empty() {
            let _ = writeln!(out, "no failed jobs");
        } else {
            let _ = writeln!(
                out,
                "\nRECENT FAILURES\n{:<24}  {:<24}  {:>8}  LAST ERROR",
                "JOB", "FAILED AT", "ATTEMPTS"
            );
            for f in &s.recent_failures {
                let failed_at = f.failed_at.and_then(|t| t.try_to_rfc3339_string().ok());
                let error = f
                    .last_error
                    .as_ref()
                    .map(|e| format!("[{:?}] {}", e.kind, e.message));
                let _ = writeln!(
                    out,
                    "{:<24}  {:<24}  {:>8}  {}",
                    f.job_id.to_hex(),
                    or_dash(failed_at),
                    f.attempts,
                    or_dash(error)
                );
            }
        }
        out
    }

    pub fn redrive(r: &RedriveReport) -> String {
        let mut out = String::new();
        let verb = if r.dry_run {
            "would re-drive"
        } else {
            "re-driven"
        };
        let _ = writeln!(
            out,
            "matched {}   {} {}   skipped {}{}",
            r.matched.len(),
            verb,
            if r.dry_run {
                r.matched.len()
            } else {
                r.redriven.len()
            },
            r.skipped.len(),
            if r.dry_run {
                "   (dry run: nothing changed)"
            } else {
                ""
            }
        );
        for id in if r.dry_run { &r.matched } else { &r.redriven } {
            let _ = writeln!(out, "  {}  {verb}", id.to_hex());
        }
        for s in &r.skipped {
            let why = match &s.reason {
                NotRedriven::UnknownId => "skipped: no such job".to_owned(),
                NotRedriven::NotFailed { status } => format!("skipped: {status:?}, not failed"),
            };
            let _ = writeln!(out, "  {}  {why}", s.job_id.to_hex());
        }
        out
    }
}

/// One customer of the demo tree: (name, parent, level, active, verified, wallet).
type DemoCustomer = (
    &'static str,
    Option<&'static str>,
    &'static str,
    bool,
    bool,
    &'static str,
);

/// The demo referral tree: `amal` buys; `huda` has three directs (two at C), so the purchase
/// promotes her to D; `yusuf` is suspended, `noor` unverified; `layla` and `omar` share the J
/// bucket.
const DEMO_TREE: &[DemoCustomer] = &[
    ("layla", None, "J", true, true, "100"),
    ("omar", Some("layla"), "J", true, true, "100"),
    ("sara", Some("omar"), "C", true, true, "100"),
    ("yusuf", Some("sara"), "B", false, true, "100"),
    ("huda", Some("yusuf"), "B", true, true, "100"),
    ("karim", Some("huda"), "C", true, true, "100"),
    ("noor", Some("huda"), "C", true, false, "100"),
    ("amal", Some("huda"), "A", true, true, "5000"),
];
const DEMO_BUYER: &str = "amal";

fn demo_seed() -> anyhow::Result<()> {
    use mall_store::bson::{oid::ObjectId, DateTime};
    use mall_store::{CustomerDoc, DemoCartLine, ProductDoc};

    let (runtime, store) = connect_from_env()?;
    let buyer = runtime.block_on(async {
        store.ensure_indexes().await?;
        let existing = store.operators().customer_named(DEMO_BUYER).await?;
        let dates = match existing {
            Some(_) => store
                .operators()
                .product_named("Khalas dates, 1 kg")
                .await?
                .map(|p| p.id)
                .context("the demo product is missing; drop the database to reseed")?,
            None => {
                let now = DateTime::now();
                let mut ids = std::collections::HashMap::new();
                for (name, ..) in DEMO_TREE {
                    ids.insert(*name, ObjectId::new());
                }
                let customers = DEMO_TREE
                    .iter()
                    .map(|(name, parent, level, active, verified, wallet)| {
                        Ok(CustomerDoc {
                            id: ids[name],
                            name: Some((*name).to_owned()),
                            username: (*name).to_owned(),
                            email: format!("{name}@example.com"),
                            points: wallet.parse()?,
                            parent_customer: parent.map(|p| ids[p]),
                            level_letter: level.parse()?,
                            referral_status: if *active { "active" } else { "suspended" }.into(),
                            is_verified: *verified,
                            address: None,
                            created_at: now,
                            updated_at: now,
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                store.operators().insert_customers(&customers).await?;
                let products = [
                    ("Khalas dates, 1 kg", "تمر خلاص", "500", "50"),
                    ("Arabic coffee, 250 g", "قهوة عربية", "120", "12"),
                    ("Oud perfume, 50 ml", "عطر عود", "900", "90"),
                ]
                .into_iter()
                .map(|(name, arabic, price, reward)| {
                    Ok(ProductDoc {
                        id: ObjectId::new(),
                        name: name.into(),
                        name_arabic: arabic.into(),
                        price: price.parse()?,
                        reward_points: reward.parse()?,
                        is_active: true,
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
                let dates = products[0].id;
                store.operators().insert_products(&products).await?;
                dates
            }
        };
        let buyer = store
            .operators()
            .customer_named(DEMO_BUYER)
            .await?
            .context("the demo buyer is missing")?
            .id;
        // A cart of two boxes of dates (1000 points, 100 reward points) unless it holds items.
        store
            .operators()
            .fill_empty_cart(
                buyer,
                &[DemoCartLine {
                    product: dates,
                    product_name: "Khalas dates, 1 kg".into(),
                    price: 500,
                    quantity: 2,
                }],
            )
            .await?;
        anyhow::Ok(buyer)
    })?;
    println!("{}", buyer.to_hex());
    Ok(())
}
