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

mod developers;
mod drain;
mod operators;
mod session;
mod tables;

use std::path::PathBuf;
use std::process::ExitCode;

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
        /// Batches in flight at once (default: WORKER_CONCURRENCY, else its default in `mall env`).
        #[arg(long)]
        concurrency: Option<usize>,
        /// Jobs per batch, within WORKER_BATCH_SIZE's range (default: WORKER_BATCH_SIZE, else
        /// its default in `mall env`).
        #[arg(long, value_parser = clap::value_parser!(u8)
            .range(1..=mall_runtime::env::WORKER_BATCH_SIZE.integer_max().unwrap_or(1)))]
        batch_size: Option<u8>,
        /// Stop after this many claims (default: WORKER_MAX_JOBS, else its default in `mall env`).
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
        } => developers::simulate(file, live_settings),
        Command::Token {
            customer,
            username,
            token_type,
            secret,
            claim,
            ttl_seconds,
        } => developers::token(
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
        } => drain::drain(concurrency, batch_size, max_jobs),
        Command::Env => {
            print!("{}", mall_runtime::env::markdown_table());
            Ok(())
        }
        Command::Jobs { action } => operators::jobs(action),
        Command::DemoSeed => developers::demo_seed(),
        Command::Audit { json } => operators::audit(json),
        Command::Cutover {
            action: CutoverAction::Check { json },
        } => operators::cutover_check(json),
        Command::Customers { limit, json } => operators::customers(limit, json),
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
