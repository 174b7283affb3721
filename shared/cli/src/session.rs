//! What every command that reads the database shares: the store the environment names, on a
//! runtime of its own, and a report printed as a table or as JSON.

use anyhow::Context;

/// What every database command starts from: an async runtime and the store the environment names.
pub fn connect_from_env() -> anyhow::Result<(tokio::runtime::Runtime, mall_store::Store)> {
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
pub fn print_report<T: serde::Serialize>(
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
