//! `mall`: the command for operators and developers.
//!
//! `mall simulate [FILE]` runs the pure reward rules on a SPEC §9 scenario (from FILE, or standard
//! input when FILE is absent or `-`) and prints the report as JSON. On invalid input it prints one
//! line on standard error, nothing on standard output, and exits non-zero.

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
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Simulate { file } => simulate(file),
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

fn simulate(file: Option<PathBuf>) -> anyhow::Result<()> {
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
    let report = mall_domain::scenario::simulate_json(&scenario)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{report}").context("cannot write the report")?;
    Ok(())
}
